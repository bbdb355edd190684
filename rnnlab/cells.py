"""Recurrent cells: one time step on a (B, I) batch, as pure functions of named parameters.

A `Cell` is a description, not a container. It names and shapes its parameters, projects inputs (for all
time steps in one matmul when a layer asks) and advances the state by one step:

    px_t = project(params, x_t)                  # (B, I) -> (B, G*H), G gate blocks
    state_t, gates_t = step(params, px_t, state_{t-1})

Used on its own, a cell is a module that owns its parameters under `torch.nn.LSTMCell`'s names and is
called as torch's cells are: `RNNCell`/`GRUCell` return `h` (a Tensor), `LSTMCell` returns `(h, c)`.
Inside `rnnlab.Recurrent` the layer owns the parameters (under torch's names `weight_ih_l0`, ...) and keeps
each cell as a *description* with no parameters of its own, calling `step(params, ...)` with the layer's
tensors; the layer tells its descriptions where it lives, so `layer.cell.init_state(B)` is a real zero
state on the layer's device and dtype. A new cell is a subclass with `gate_names`, `parameter_shapes`
(when it differs from torch's four) and `step`; masking, direction, stacking and diagnostics come from the
layer, and `CELLS` (below) is the registry that `cell_type`, the config and the tests read.

`gates_t` maps a name to an activation of shape (B, H) so that diagnostics can measure saturation without
recomputing anything: `sigmoid_gates` and `tanh_units` list which names are which.

A cell may keep a parameter on a manifold: `constraints()` maps its local name to a `Constraint` (the
orthogonal cell's `weight_hh` -> `Orthogonal`), and whoever owns the parameter (the layer, or a cell of its
own) registers it once initialised (`constrain`). The weight is then computed from the trained tensors by
torch's parametrization whenever it is read (`getattr`, `units()`), and written only through it: an
initialiser writes into a draft that `writable` brings onto the constraint and assigns on leaving.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from rnnlab.init import henaff

Params = Mapping[str, Tensor]
Gates = dict[str, Tensor]


class HiddenState(NamedTuple):
    """State of the cells that carry only `h` (RNN, GRU, IndRNN): (B, H)."""

    h: Tensor


class LSTMState(NamedTuple):
    """State of the LSTM cells, in PyTorch's order `(h, c)`: each (B, H)."""

    h: Tensor
    c: Tensor


class Cell(nn.Module):
    """One recurrent step as a pure function of named parameters (see the module docstring).

    Args:
        input_size: features I of `x_t`.
        hidden_size: units H of `h_t`.
        bias: whether the cell has bias parameters.
        device, dtype: where its own parameters live (`"meta"` for a bare description).

    Shape:
        `forward(x_t, state)`: x_t (B, I), state a NamedTuple of (B, H) tensors (or None for zeros).
    """

    #: names of the gate blocks stacked along dim 0 of `weight_ih` / `weight_hh`, in torch's order.
    gate_names: ClassVar[tuple[str, ...]] = ("h",)
    #: the state's NamedTuple; its first field is always `h`, the cell's output.
    state_type: ClassVar[type[Any]] = HiddenState
    #: parameters that the input / recurrent initialisers act on.
    input_weights: ClassVar[tuple[str, ...]] = ("weight_ih",)
    recurrent_weights: ClassVar[tuple[str, ...]] = ("weight_hh",)
    #: biases whose gate blocks add up to the effective gate bias (forget bias goes into the first).
    gate_biases: ClassVar[tuple[str, ...]] = ("bias_ih", "bias_hh")
    #: gate names that `forget_bias` / `chrono` act on (the gate that keeps the past), if any.
    keep_gate: ClassVar[str | None] = None
    #: gates passed through a sigmoid and units passed through a tanh, for saturation diagnostics.
    sigmoid_gates: ClassVar[tuple[str, ...]] = ()
    tanh_units: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, *, device: Any = None, dtype: Any = None
    ) -> None:
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got input_size={input_size}, "
                f"hidden_size={hidden_size}"
            )
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        #: (device, dtype) of the states this cell makes; a layer keeps its descriptions' up to date.
        self.placement = (torch.device("cpu"), torch.get_default_dtype())
        for name, shape in self.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        if device is not None and torch.device(device).type == "meta":
            self.describe_only()
        else:
            self.reset_parameters()
            constrain(self, self.constraints())

    def describe_only(self, device: Any = None, dtype: Any = None) -> Cell:
        """Drop this cell's own parameters: it becomes the description of a layer's cell (see the module
        docstring), whose states go to `device` and `dtype`."""
        for name in list(self._parameters):
            del self._parameters[name]
        self.place(device or "cpu", dtype or torch.get_default_dtype())
        return self

    @property
    def is_description(self) -> bool:
        """True for a layer's cell, which holds no parameters of its own."""
        return not self._parameters

    def place(self, device: Any, dtype: torch.dtype) -> None:
        """Where the states of a description go (the layer calls this whenever it moves)."""
        self.placement = (torch.device(device), dtype)

    @property
    def gate_count(self) -> int:
        return len(self.gate_names)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter; torch's layout by default."""
        g, h = self.gate_count * self.hidden_size, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (g, self.input_size), "weight_hh": (g, h)}
        if self.bias:
            shapes |= {"bias_ih": (g,), "bias_hh": (g,)}
        return shapes

    def constraints(self) -> dict[str, Constraint]:
        """Local name -> the constraint that keeps that parameter on its manifold; none by default."""
        return {}

    @contextmanager
    def writable_parameters(self) -> Iterator[list[tuple[Cell, dict[str, Tensor]]]]:
        """This cell's parameters to write in place, as `[(self, params)]` (the form `Recurrent` gives for
        each of its units): a constrained weight is a draft, assigned through its constraint on leaving."""
        with writable(self, self, {name: name for name in self.parameter_shapes()}) as params:
            yield [(self, params)]

    def reset_parameters(self, params: Params | None = None) -> None:
        """torch's default: every parameter uniform in ±1/√H (this cell's own when `params` is None)."""
        params = self.own_parameters() if params is None else params
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in params.values():
                p.uniform_(-bound, bound)

    def project(self, params: Params, x: Tensor) -> Tensor:
        """Input projection `W_ih x + b_ih`, for one step (B, I) or all steps (T, B, I) at once."""
        return F.linear(x, params["weight_ih"], params.get("bias_ih"))

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        """One step from the projected input `px` (B, G*H): returns the new state and the gate activations."""
        raise NotImplementedError

    def init_state(self, batch: int, *, dtype: Any = None, device: Any = None) -> Any:
        """The zero state for `batch` sequences, on this cell's device and dtype unless given."""
        if self._parameters:
            own = next(iter(self._parameters.values()))
            assert own is not None
            self.placement = (own.device, own.dtype)
        device = self.placement[0] if device is None else device
        dtype = self.placement[1] if dtype is None else dtype
        zeros = torch.zeros(batch, self.hidden_size, dtype=dtype, device=device)
        return self.state_type(*([zeros] * len(self.state_type._fields)))

    def own_parameters(self) -> dict[str, Tensor]:
        """This cell's parameters under its names (a constrained one as its parametrization computes it)."""
        if self.is_description:
            return {}
        return {name: getattr(self, name) for name in self.parameter_shapes()}

    def forward(self, x: Tensor, state: Any = None) -> Any:
        """One step with this cell's own parameters, called as torch's cells are.

        Shape:
            x (B, I) or (I,) unbatched; state None (zeros), `h` (B, H) or, for LSTMs, `(h, c)`.
            Returns `h` (B, H) for cells whose state is h alone, `LSTMState(h, c)` (a tuple) for LSTMs.
        """
        if self.is_description:
            raise RuntimeError(
                f"this {type(self).__name__} describes the cells of a layer, whose parameters live on the "
                "layer: call the layer, or build a cell of its own"
            )
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"expected input of shape (batch, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}"
            )
        if state is None:
            state = self.init_state(x.shape[0], dtype=x.dtype, device=x.device)
        else:
            state = (state,) if isinstance(state, Tensor) else tuple(state)
            if len(state) != len(self.state_type._fields):
                raise ValueError(
                    f"state must hold {len(self.state_type._fields)} tensor(s) {self.state_type._fields}, "
                    f"got {len(state)}"
                )
            if unbatched:
                state = tuple(s.unsqueeze(0) for s in state)
        params = self.own_parameters()
        new_state, _ = self.step(params, self.project(params, x), state)
        if unbatched:
            new_state = self.state_type(*(s.squeeze(0) for s in new_state))
        return new_state[0] if len(new_state) == 1 else new_state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(Cell):
    """Elman cell: `h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, f = tanh or relu."""

    gate_names = ("h",)

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", **kwargs: Any
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **kwargs)

    @property
    def tanh_units(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("h",) if self.nonlinearity == "tanh" else ()

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        pre = px + F.linear(state[0], params["weight_hh"], params.get("bias_hh"))
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return HiddenState(h), {"h": h}


class LSTMCell(Cell):
    """LSTM cell, torch's gate order i, f, g, o:

    i, f, o = σ(·), g = tanh(·) of `W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`;
    `c_t = f ⊙ c_{t-1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`.
    """

    gate_names = ("i", "f", "g", "o")
    state_type = LSTMState
    keep_gate = "f"
    sigmoid_gates = ("i", "f", "o")
    tanh_units = ("g", "tanh_c")

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        h, c = state
        gates = px + F.linear(h, params["weight_hh"], params.get("bias_hh"))
        return _lstm_update(gates, c)


def _lstm_update(gates: Tensor, c: Tensor, c_norm: Any = None) -> tuple[LSTMState, Gates]:
    i, f, g, o = gates.chunk(4, 1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    tanh_c = torch.tanh(c if c_norm is None else c_norm(c))
    h = o * tanh_c
    return LSTMState(h, c), {"i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}


class GRUCell(Cell):
    """GRU cell, torch's gate order r, z, n:

    `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(…)`, `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`,
    `h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}` (z is the gate that keeps the past).
    """

    gate_names = ("r", "z", "n")
    keep_gate = "z"
    sigmoid_gates = ("r", "z")
    tanh_units = ("n",)

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        hh = F.linear(state[0], params["weight_hh"], params.get("bias_hh"))
        return _gru_update(px, hh, state[0])


def _gru_update(px: Tensor, hh: Tensor, h: Tensor) -> tuple[HiddenState, Gates]:
    xr, xz, xn = px.chunk(3, 1)
    hr, hz, hn = hh.chunk(3, 1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return HiddenState(n + z * (h - n)), {"r": r, "z": z, "n": n}


class _LayerNormCell(Cell):
    """Shared parameters of the layer-normalised cells (Ba et al. 2016): the input and recurrent
    projections are each normalised over their G*H gate pre-activations; LN's shifts act as the biases."""

    gate_biases = ("ln_ih_bias", "ln_hh_bias")
    eps: ClassVar[float] = 1e-5

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        g = self.gate_count * self.hidden_size
        shapes = {k: v for k, v in super().parameter_shapes().items() if k.startswith("weight_")}
        shapes |= {"ln_ih_weight": (g,), "ln_hh_weight": (g,)}
        if self.bias:
            shapes |= {"ln_ih_bias": (g,), "ln_hh_bias": (g,)}
        return shapes

    def reset_parameters(self, params: Params | None = None) -> None:
        params = self.own_parameters() if params is None else params
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, p in params.items():
                if name.startswith("weight_"):
                    p.uniform_(-bound, bound)
                elif name.endswith("_weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()

    def _norm(self, params: Params, x: Tensor, which: str) -> Tensor:
        return F.layer_norm(
            x, x.shape[-1:], params[f"ln_{which}_weight"], params.get(f"ln_{which}_bias"), self.eps
        )

    def project(self, params: Params, x: Tensor) -> Tensor:
        return self._norm(params, F.linear(x, params["weight_ih"]), "ih")

    def _recurrent(self, params: Params, h: Tensor) -> Tensor:
        return self._norm(params, F.linear(h, params["weight_hh"]), "hh")


class LayerNormLSTMCell(_LayerNormCell):
    """LSTM with layer norm on both gate projections and on the cell state before its tanh:

    `gates = LN(W_ih x_t) + LN(W_hh h_{t-1})`, `c_t = f ⊙ c_{t-1} + i ⊙ g`, `h_t = o ⊙ tanh(LN(c_t))`.
    """

    gate_names = LSTMCell.gate_names
    state_type = LSTMState
    keep_gate = "f"
    sigmoid_gates = LSTMCell.sigmoid_gates
    tanh_units = LSTMCell.tanh_units

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().parameter_shapes()
        shapes["ln_c_weight"] = (self.hidden_size,)
        if self.bias:
            shapes["ln_c_bias"] = (self.hidden_size,)
        return shapes

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        h, c = state
        return _lstm_update(px + self._recurrent(params, h), c, lambda c: self._norm(params, c, "c"))


class LayerNormGRUCell(_LayerNormCell):
    """GRU with layer norm on both gate projections: torch's GRU maths on `LN(W_ih x)` and `LN(W_hh h)`."""

    gate_names = GRUCell.gate_names
    keep_gate = "z"
    sigmoid_gates = GRUCell.sigmoid_gates
    tanh_units = GRUCell.tanh_units

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        return _gru_update(px, self._recurrent(params, state[0]), state[0])


class IndRNNCell(Cell):
    """Independently recurrent cell (Li et al. 2018): `h_t = f(W_ih x_t + b + u ⊙ h_{t-1})`.

    Each unit has one recurrent weight `u` (the vector `weight_hh`, shape (H,)), clamped in the forward pass
    to |u| ≤ `recurrent_max`, which bounds how fast that unit's gradient can grow through time
    (|u|^T over T steps; Li et al. choose the bound so it stays finite).
    """

    gate_biases = ("bias_ih",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "relu",
        recurrent_max: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if not recurrent_max > 0:
            raise ValueError(f"recurrent_max must be positive, got {recurrent_max}")
        self.nonlinearity = nonlinearity
        self.recurrent_max = float(recurrent_max)
        super().__init__(input_size, hidden_size, bias, **kwargs)

    @property
    def tanh_units(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("h",) if self.nonlinearity == "tanh" else ()

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (self.hidden_size, self.input_size),
            "weight_hh": (self.hidden_size,),
        }
        if self.bias:
            shapes["bias_ih"] = (self.hidden_size,)
        return shapes

    def reset_parameters(self, params: Params | None = None) -> None:
        params = self.own_parameters() if params is None else params
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            params["weight_ih"].uniform_(-bound, bound)
            params["weight_hh"].uniform_(0.0, min(1.0, self.recurrent_max))
            if "bias_ih" in params:
                params["bias_ih"].zero_()

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        u = params["weight_hh"].clamp(-self.recurrent_max, self.recurrent_max)
        pre = px + u * state[0]
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return HiddenState(h), {"h": h}


# ------------------------------------------------------------------------------------------- constraints


class Constraint(Protocol):
    """Keeps one parameter on a manifold, through a torch parametrization registered on its owner."""

    @property
    def description(self) -> str:
        """What the constraint fixes, for the initialisers' errors ("kept orthogonal, ...")."""
        ...

    def register(self, module: nn.Module, name: str) -> None:
        """Parametrize `module.<name>` (initialised already) so that it stays on the manifold."""
        ...

    def nearest(self, value: Tensor) -> Tensor:
        """The point of the manifold nearest to `value`: what an assignment of `value` becomes."""
        ...


#: the maps of `torch.nn.utils.parametrizations.orthogonal` from skew-symmetric to orthogonal matrices.
ORTHOGONAL_MAPS = ("matrix_exp", "cayley")


@dataclass(frozen=True)
class Orthogonal:
    """W stays exactly orthogonal (WᵀW = I): torch's `orthogonal` parametrization with its default dynamic
    trivialization computes `W = base @ map(A − Aᵀ)` from the trained lower triangle A
    (`parametrizations.<name>.original`) and an orthogonal buffer `base` (`parametrizations.<name>.0.base`),
    map = `torch.matrix_exp` (expRNN) or the Cayley transform (scoRNN). Assigning W sets base = W, A = 0."""

    orthogonal_map: str = "matrix_exp"
    description: str = "kept orthogonal, so its spectral radius is always 1"

    def register(self, module: nn.Module, name: str) -> None:
        with torch.no_grad():
            weight = getattr(module, name)
            weight.copy_(self.nearest(weight))  # else torch would orthogonalise it by QR
        parametrizations.orthogonal(module, name, self.orthogonal_map)

    def nearest(self, value: Tensor) -> Tensor:
        """The orthogonal matrix nearest to `value` in Frobenius norm: the polar factor U Vᵀ of its SVD
        U S Vᵀ, computed in float64; `value` itself when it is orthogonal to rounding already (torch's
        tolerance, 10·n·ε), so that an orthogonal matrix is kept bit for bit."""
        if value.dim() != 2 or value.shape[0] != value.shape[1]:
            raise ValueError(f"an orthogonal weight must be a square matrix, got shape {tuple(value.shape)}")
        n = value.shape[0]
        eye = torch.eye(n, dtype=value.dtype, device=value.device)
        if torch.allclose(value.T @ value, eye, atol=10.0 * n * torch.finfo(value.dtype).eps):
            return value
        u, _, vh = torch.linalg.svd(value.to(torch.float64))
        return (u @ vh).to(value.dtype)


def constrain(module: nn.Module, constraints: Mapping[str, Constraint]) -> None:
    """Register each constraint on the attribute of `module` it names (attribute -> constraint), and let
    `module.load_state_dict` take these tensors under their plain names too (see `_LoadPlainNames`)."""
    for name, constraint in constraints.items():
        constraint.register(module, name)
    if constraints:
        module.register_load_state_dict_pre_hook(_LoadPlainNames(dict(constraints)))


class _LoadPlainNames:
    """A `load_state_dict` pre-hook for a module with constrained tensors. Its own state dict holds each one
    as its parametrization's tensors (`parametrizations.weight_hh_l0.original` and `….0.base`), which an
    exact resume needs; a state dict that holds the plain matrix instead (`weight_hh_l0`, as torch's layers
    and `Recurrent.cell_parameters()` name it) is brought onto the constraint and assigned, and the
    parametrization's entries are filled from the result."""

    def __init__(self, constraints: dict[str, Constraint]) -> None:
        self.constraints = constraints

    def __call__(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *hook_args: Any) -> None:
        error_msgs: list[str] = hook_args[-1]  # torch raises them together once the whole load is done
        for name, constraint in self.constraints.items():
            value = state_dict.pop(prefix + name, None)
            if value is None:
                continue
            current = getattr(module, name)
            if value.shape != current.shape:
                error_msgs.append(
                    f"size mismatch for {prefix}{name}: copying a param with shape {tuple(value.shape)} "
                    f"from checkpoint, the shape in current model is {tuple(current.shape)}."
                )
                continue
            with torch.no_grad():
                setattr(module, name, constraint.nearest(value.to(current)))
            owned = cast(nn.ModuleDict, module.parametrizations)[name]
            for key, tensor in [*owned.named_parameters(), *owned.named_buffers()]:
                state_dict[f"{prefix}parametrizations.{name}.{key}"] = tensor.detach().clone()


@contextmanager
def writable(module: nn.Module, cell: Cell, names: Mapping[str, str]) -> Iterator[dict[str, Tensor]]:
    """The parameters of `cell` that `module` holds (local name -> attribute name), to write in place.

    A plain parameter is itself. A parametrized one is computed, so writing into it would change nothing:
    it is a draft copy instead, which on leaving, if written, is brought onto the cell's constraint
    (`Constraint.nearest`) and assigned, as torch assigns a parametrized tensor (its `right_inverse`).
    Nothing is assigned when the block raises.
    """
    params: dict[str, Tensor] = {}
    drafts: dict[str, tuple[Tensor, Tensor]] = {}
    for local, attribute in names.items():
        value = getattr(module, attribute)
        if parametrize.is_parametrized(module, attribute):
            params[local] = value.detach().clone()
            drafts[local] = (params[local], value.detach())
        else:
            params[local] = value
    yield params
    constraints = cell.constraints()
    with torch.no_grad():
        for local, (draft, before) in drafts.items():
            if not torch.equal(draft, before):
                constraint = constraints.get(local)
                setattr(module, names[local], draft if constraint is None else constraint.nearest(draft))


# ------------------------------------------------------------------------------------------ orthogonal


def modrelu(z: Tensor, b: Tensor) -> Tensor:
    """modReLU of real units (Arjovsky et al. 2016, as expRNN's code has it): `sign(z) ⊙ relu(|z| + b)`.
    It keeps each unit's sign and shrinks its magnitude by −b (b < 0: a dead zone |z| ≤ −b); b = 0 is
    the identity."""
    return torch.sign(z) * torch.relu(z.abs() + b)


class OrthogonalCell(Cell):
    """Orthogonal RNN (expRNN, Lezcano-Casado & Martínez-Rubio 2019; scoRNN, Helfrich et al. 2018; uRNN,
    Arjovsky et al. 2016 for the unitary case):

    `h_t = modReLU(W_ih x_t + b_ih + W_hh h_{t-1})`, `modReLU(z) = sign(z) ⊙ relu(|z| + b)`,

    with W_hh (H, H) exactly orthogonal throughout training (`Orthogonal`: torch's parametrization,
    `orthogonal_map` "matrix_exp" as expRNN or "cayley" as scoRNN), so ‖W_hh v‖ = ‖v‖ and the linear part
    of the step neither shrinks nor grows a gradient through time; b (`bias_mod`, (H,)) is modReLU's
    learnable per-unit bias, part of the nonlinearity and so present with `bias=False` too, which drops
    only b_ih.

    Initialisation as expRNN's copy task: W_hh block-diagonal 2×2 rotations by angles U(−π, π) (Henaff et
    al. 2016, `rnnlab.init.henaff`), W_ih Kaiming normal (fan-in, ReLU gain: std √(2/I)), b_ih = 0,
    b ~ U(−0.01, 0.01). A recurrent initialiser (`init=`) that gives a non-orthogonal matrix is replaced by
    the nearest orthogonal one (its polar factor); `spectral_radius=` is refused, being always 1.
    """

    gate_biases = ("bias_ih",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        orthogonal_map: str = "matrix_exp",
        **kwargs: Any,
    ) -> None:
        if orthogonal_map not in ORTHOGONAL_MAPS:
            raise ValueError(
                f"orthogonal_map must be one of {', '.join(map(repr, ORTHOGONAL_MAPS))}, "
                f"got {orthogonal_map!r}"
            )
        self.orthogonal_map = orthogonal_map
        super().__init__(input_size, hidden_size, bias, **kwargs)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        h = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (h, self.input_size), "weight_hh": (h, h)}
        if self.bias:
            shapes["bias_ih"] = (h,)
        shapes["bias_mod"] = (h,)
        return shapes

    def constraints(self) -> dict[str, Constraint]:
        return {"weight_hh": Orthogonal(self.orthogonal_map)}

    def reset_parameters(self, params: Params | None = None) -> None:
        if params is None:
            with self.writable_parameters() as [(_, own)]:
                self.reset_parameters(own)
            return
        with torch.no_grad():
            nn.init.kaiming_normal_(params["weight_ih"], nonlinearity="relu")
            henaff(params["weight_hh"])
            if "bias_ih" in params:
                params["bias_ih"].zero_()
            params["bias_mod"].uniform_(-0.01, 0.01)

    def step(self, params: Params, px: Tensor, state: tuple[Tensor, ...]) -> tuple[Any, Gates]:
        h = modrelu(px + F.linear(state[0], params["weight_hh"]), params["bias_mod"])
        return HiddenState(h), {"h": h}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return (
            text if self.orthogonal_map == "matrix_exp" else f"{text}, orthogonal_map={self.orthogonal_map!r}"
        )


CELLS: dict[str, type[Cell]] = {
    "rnn": RNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "layernorm_lstm": LayerNormLSTMCell,
    "layernorm_gru": LayerNormGRUCell,
    "indrnn": IndRNNCell,
    "orthogonal": OrthogonalCell,
}


def cell_type(name: str | type[Cell]) -> type[Cell]:
    """A cell class from its name ("lstm", "gru", "rnn", "layernorm_lstm", "layernorm_gru", "indrnn",
    "orthogonal")."""
    if isinstance(name, type) and issubclass(name, Cell):
        return name
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(CELLS)}")
    return CELLS[name]
