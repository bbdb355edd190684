"""The scanning layer: any cell over time, stacked, in either direction, on padded, masked or packed batches.

    x (T, B, I) ─► layer 0 ─► dropout ─► layer 1 ─► … ─► output (T, B, D*H)
                   │ forward:  h_1 → h_2 → … → h_T
                   └ reverse:  h_T → … → h_1   (each sequence reversed within its own length)

Ways to run, one behaviour (tests assert they agree):
- `fused`: torch's own kernel (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`), for cells
  computing exactly torch's maths (`rnnlab.fused.fast_paths`), when nothing watches the steps.
- `unrolled`: every step observable. Cells with a hand-written kernel (`bptt.py`: torch's three cells;
  `bptt_cells.py`: IndRNN, the LayerNorm cells and the orthogonal cell) run it; any other cell runs its
  own `step` under per-step autograd (`autograd_scan`).
- `reference`: per-step autograd over the cell's own `step` for every cell: the obvious implementation
  that the others are tested against (slow; for tests and for debugging a cell of your own).
`execution="auto"` (the default) takes the fastest of these measured on the device (`fused.auto_uses_fused`)
and the unrolled path whenever an observer is attached. The hand-written kernels, like torch's fused ones
on CPU, are differentiable once: for higher-order gradients use `execution="reference"`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrize import type_before_parametrizations
from torch.nn.utils.rnn import PackedSequence

from rnnlab import autograd_scan, bptt, fused, inputs, numerics
from rnnlab.cells import (
    Cell,
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RNNCell,
    constrain,
    writable,
)
from rnnlab.init import InitSpec, initialize
from rnnlab.inputs import Inputs

Execution = Literal["auto", "fused", "unrolled", "reference"]
EXECUTIONS: tuple[str, ...] = ("auto", "fused", "unrolled", "reference")
ObserverFactory = Callable[["Unit"], "bptt.Observer | None"]


def suffix(layer: int, direction: int) -> str:
    """torch's parameter suffix of one layer and direction: "l0", "l0_reverse", "l1", ..."""
    return f"l{layer}" + ("_reverse" if direction else "")


class Unit(NamedTuple):
    """One layer and direction of a stack: its position, torch's suffix, its cell and its parameters under
    the cell's own names (`weight_ih`, ...), which are the layer's tensors."""

    layer: int
    direction: int
    suffix: str
    cell: Cell
    params: dict[str, Tensor]


class Recurrent(nn.Module):
    """A stack of recurrent layers scanning `cell` over time, shaped like `torch.nn.LSTM`.

    Args:
        cell: a `Cell` subclass (or any callable `(input_size, hidden_size, bias, **cell_options) -> Cell`).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as in `torch.nn.LSTM`.
        init, forget_bias, chrono, spectral_radius: initialisers, see `rnnlab.init.initialize`; kept, so
            that `reset_parameters()` applies them again.
        execution: "auto", "fused", "unrolled" or "reference" (see the module docstring).
        **cell_options: passed to every cell (e.g. `nonlinearity="relu"`).

    Shape:
        input (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched, or a `PackedSequence`;
        `hx` the initial state, each field (num_layers * D, B, H); `lengths` (B,) integer steps per sequence
        in [0, T] (on the input's device or the CPU; a sequence of length 0 keeps its initial state).
        Returns `(output, h_n)` for cells with state h, `(output, (h_n, c_n))` for LSTM cells; output is
        (T, B, D*H) (zero past each sequence's length) or a `PackedSequence` for packed input.

    Parameters are named as torch names them: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
    `bias_hh_l{k}`, with `_reverse` for the second direction, so torch's state dicts load both ways.
    A weight its cell constrains (`Cell.constraints()`: the orthogonal cell's `weight_hh`) is registered
    as a torch parametrization once initialised: `layer.weight_hh_l0` computes it, its state dict holds
    the parametrization's tensors (`parametrizations.weight_hh_l0.original`, `….0.base`), and a state
    dict with the plain `weight_hh_l0` loads too, brought onto the constraint.

    Example:
        >>> lstm = Recurrent(LSTMCell, 8, 32, num_layers=2, init="orthogonal", forget_bias=1.0)
        >>> out, (h, c) = lstm(torch.randn(100, 4, 8))
    """

    def __init__(
        self,
        cell: Callable[..., Cell],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        init: InitSpec = None,
        forget_bias: float | None = None,
        chrono: float | None = None,
        spectral_radius: float | None = None,
        execution: Execution = "auto",
        device: Any = None,
        dtype: Any = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if execution not in EXECUTIONS:
            raise ValueError(
                f"execution must be one of {', '.join(map(repr, EXECUTIONS))}, got {execution!r}"
            )
        if cell_options.pop("proj_size", 0):
            raise ValueError("proj_size is not supported by rnnlab layers")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.execution: Execution = execution
        self.cell_options = dict(cell_options)
        #: the initialisers given at construction, applied again by `reset_parameters`.
        self.init_options: dict[str, Any] = {
            "init": init,
            "forget_bias": forget_bias,
            "chrono": chrono,
            "spectral_radius": spectral_radius,
        }
        #: called as observer_factory(unit) for every unit at each forward; set by diagnostics (rnnlab.watch).
        self.observer_factory: ObserverFactory | None = None
        self.cells: list[Cell] = []  # descriptions without parameters: those live on this module
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                c = cell(layer_input, hidden_size, bias, device="meta", **cell_options)
                shapes = c.parameter_shapes()
                self.cells.append(c.describe_only())
                for name, shape in shapes.items():
                    p = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                    self.register_parameter(self._name(name, layer, direction), p)
        self.paths = [fused.fast_paths(c) for c in self.cells]
        self._flat_weight_names = [
            self._name(n, unit.layer, unit.direction) for unit in self.units() for n in unit.params
        ]
        self._place_cells()
        self.reset_parameters()
        # once initialised, each weight its cell constrains becomes a parametrization (orthogonal weight_hh)
        constrain(
            self, {self._attributes(u)[n]: c for u in self.units() for n, c in u.cell.constraints().items()}
        )
        self.flatten_parameters()  # as torch's layers do: built on CUDA, the weights start contiguous

    @staticmethod
    def _name(name: str, layer: int, direction: int) -> str:
        return f"{name}_{suffix(layer, direction)}"

    def units(self) -> Iterator[Unit]:
        """Every layer and direction once, bottom layer first, forward before reverse."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                cell = self.cells[layer * self.num_directions + direction]
                params = {n: getattr(self, self._name(n, layer, direction)) for n in cell.parameter_shapes()}
                yield Unit(layer, direction, suffix(layer, direction), cell, params)

    def cell_parameters(self, layer: int, direction: int = 0) -> dict[str, Tensor]:
        """The parameters of one (layer, direction) under the cell's own names (`weight_ih`, ...)."""
        cell = self.cells[layer * self.num_directions + direction]
        return {n: getattr(self, self._name(n, layer, direction)) for n in cell.parameter_shapes()}

    def reset_parameters(self) -> None:
        """Each cell's default initialisation, then the initialisers given at construction."""
        with self.writable_parameters() as groups:
            for cell, params in groups:
                cell.reset_parameters(params)
        initialize(self, **self.init_options)

    @contextmanager
    def writable_parameters(self) -> Iterator[list[tuple[Cell, dict[str, Tensor]]]]:
        """Every unit's `(cell, parameters)` to write in place, as initialisers do; a constrained weight is
        a draft there, assigned through its constraint on leaving (`rnnlab.cells.writable`)."""
        with ExitStack() as stack:
            yield [
                (u.cell, stack.enter_context(writable(self, u.cell, self._attributes(u))))
                for u in self.units()
            ]

    def _attributes(self, unit: Unit) -> dict[str, str]:
        """The cell's names of one unit's parameters -> this layer's (`weight_ih` -> `weight_ih_l0`)."""
        return {n: self._name(n, unit.layer, unit.direction) for n in unit.params}

    def init_state(self, batch: int) -> Any:
        """The zero initial state for `batch` sequences as `forward` takes it: `h_0` or `(h_0, c_0)`, each
        (num_layers * D, batch, H), on this layer's device and dtype."""
        w = self.first_weight
        zeros = torch.zeros(self.num_layers * self.num_directions, batch, self.hidden_size, dtype=w.dtype)
        fields = tuple(zeros.to(w.device) for _ in self.state_fields)
        return fields[0] if len(fields) == 1 else fields

    def _place_cells(self) -> None:
        w = self.first_weight
        for c in self.cells:
            c.place(w.device, w.dtype)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Recurrent:
        super()._apply(fn, *args, **kwargs)
        self._place_cells()  # .to(), .double(), .cuda(): the descriptions' states follow the parameters
        self.flatten_parameters()
        return self

    def flatten_parameters(self) -> None:
        """On CUDA, put the weights in one contiguous buffer, as cuDNN's fused kernel wants (see
        `torch.nn.LSTM.flatten_parameters`); a no-op elsewhere and for cells torch does not fuse."""
        op = self.paths[0].fused_op
        if op is not None:
            fused.flatten(self._flat_weights(), op, self)

    @property
    def first_weight(self) -> Tensor:
        """`weight_ih_l0`: where the layer's parameters live (device, dtype)."""
        w = self._parameters["weight_ih_l0"]
        assert w is not None
        return w

    @property
    def cell(self) -> Cell:
        """The first layer's cell (all layers share its type)."""
        return self.cells[0]

    @property
    def state_fields(self) -> tuple[str, ...]:
        return tuple(self.cell.state_type._fields)

    def uses_fused(self, grad: bool | None = None) -> bool:
        """Whether the next forward runs on torch's fused kernel; `grad`: whether a backward will follow
        (default: whether autograd is on and the parameters require gradients)."""
        if self.execution in ("unrolled", "reference") or self.observer_factory is not None:
            return False
        if self.execution == "fused":
            return self.paths[0].fused_op is not None
        if grad is None:
            grad = torch.is_grad_enabled() and self.first_weight.requires_grad
        return fused.auto_uses_fused(self.paths[0], self.first_weight.device, grad)

    def extra_repr(self) -> str:
        name = type(self.cells[0]).__name__
        text = f"{self.input_size}, {self.hidden_size}"
        if type_before_parametrizations(self) is Recurrent:
            text = f"{name}, {text}"
        defaults: dict[str, Any] = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0}
        defaults |= {"bidirectional": False, "execution": "auto"}
        for key, default in defaults.items():
            value = getattr(self, key)
            if value != default:
                text += f", {key}={value!r}"
        defaults = _defaults(type(self.cells[0]).__init__)
        for key, value in {**self.cell_options, **self.init_options}.items():
            if value is not None and not (key in defaults and defaults[key] == value):
                text += f", {key}={getattr(value, '__name__', value)!r}"
        return text

    # ---------------------------------------------------------------------------------------------- forward

    def forward(self, input: Tensor | PackedSequence, hx: Any = None, lengths: Tensor | None = None) -> Any:
        x, state, lengths, unbatched, packed = self.inputs(input, hx, lengths)
        if self.execution == "fused" and not self.uses_fused():
            raise ValueError(
                f"execution='fused' needs a cell torch fuses (RNN, LSTM, GRU) and no observer; "
                f"this layer has {type(self.cell).__name__}"
                + (" with an observer attached" if self.observer_factory is not None else "")
            )
        if x.shape[1] == 0:  # an empty batch: nothing to scan, but the graph still reaches the weights
            out, final = self._empty(x, state)
        elif self.uses_fused(
            grad=torch.is_grad_enabled() and (x.requires_grad or self.first_weight.requires_grad)
        ):
            op = self.paths[0].fused_op
            assert op is not None
            out, final = fused.run(
                op,
                x,
                state,
                self._flat_weights(),
                lengths,
                bias=self.bias,
                num_layers=self.num_layers,
                dropout=self.dropout,
                train=self.training,
                bidirectional=self.bidirectional,
            )
        else:  # rnnlab's kernels in the weights' precision, also inside a mixed-precision forward
            if torch.is_autocast_enabled(x.device.type):  # a 16-bit input or state: up to the weights'
                w = self.first_weight.dtype
                x, state = x.to(w), tuple(h.to(w) for h in state)
            with numerics.full_precision(x):
                out, final = self._unrolled(x, state, lengths)

        if unbatched:
            out, final = out.squeeze(1), tuple(f.squeeze(1) for f in final)
        elif self.batch_first and packed is None:
            out = out.transpose(0, 1)
        output: Tensor | PackedSequence = out if packed is None else inputs.repack(out, lengths, packed)
        return output, (final[0] if len(final) == 1 else tuple(final))

    def inputs(self, input: Tensor | PackedSequence, hx: Any = None, lengths: Tensor | None = None) -> Inputs:
        """The arguments of a call `layer(input, hx, lengths)` checked and normalised (see `Inputs`);
        diagnostics read a call through this rather than parse `forward`'s arguments again."""
        return inputs.read(self, input, hx, lengths)

    # ------------------------------------------------------------------------------------- execution paths

    def _flat_weights(self) -> list[Tensor]:
        """torch's flat weight list: per layer and direction, weight_ih, weight_hh (, bias_ih, bias_hh)."""
        return [self._parameters[name] for name in self._flat_weight_names]  # type: ignore[misc]

    def _empty(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Outputs (T, 0, D*H) and final states of an empty batch, connected to every parameter (with zero
        gradients), as torch's layers return them."""
        anchor = sum(p.sum() for p in self.parameters()) * 0.0
        out = x.new_zeros(x.shape[0], 0, self.hidden_size * self.num_directions) + anchor
        return out, tuple(s + anchor for s in state)

    def _unrolled(self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None):
        T, B = x.shape[:2]
        mask = None if lengths is None else (torch.arange(T, device=x.device)[:, None] < lengths)[..., None]
        reverse_index = None if lengths is None else inputs.reverse_index(lengths, T)
        if mask is not None:  # padding never reaches the maths, so NaN there cannot poison a gradient
            x = x.masked_fill(~mask, 0.0)
        finals: list[tuple[Tensor, ...]] = []
        outputs: list[Tensor] = []
        k = 0
        for unit in self.units():
            if unit.direction == 0 and unit.layer > 0:
                x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, -1)
                if self.dropout and self.training:
                    x = F.dropout(x, self.dropout, training=True)
                outputs = []
            xin = x if unit.direction == 0 else inputs.reverse(x, reverse_index)
            state0 = tuple(s[k] for s in state)
            observer = self.observer_factory(unit) if self.observer_factory else None
            kernel = None if self.execution == "reference" else self.paths[k].kernel
            if kernel is not None:
                y, final = bptt.scan(kernel, xin, unit.params, state0, mask, observer)
            else:
                y, final = autograd_scan.scan(unit.cell, unit.params, xin, state0, mask, observer)
            outputs.append(y if unit.direction == 0 else inputs.reverse(y, reverse_index))
            finals.append(final)
            k += 1
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, -1)
        return out, tuple(torch.stack(f) for f in zip(*finals, strict=True))


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The default values of a function's keyword arguments."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


class LSTM(Recurrent):
    """Drop-in `torch.nn.LSTM`: same arguments, return values and parameter names, plus rnnlab's initialisers
    (`init`, `forget_bias`, `chrono`, `spectral_radius`), `lengths=` and `execution=` (see `Recurrent`)."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(LSTMCell, input_size, hidden_size, *args, **kwargs)


class GRU(Recurrent):
    """Drop-in `torch.nn.GRU` (see `LSTM`)."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(GRUCell, input_size, hidden_size, *args, **kwargs)


class RNN(Recurrent):
    """Drop-in `torch.nn.RNN`: `RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, ...)`, the same positional order as torch's."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            RNNCell, input_size, hidden_size, num_layers, *args, nonlinearity=nonlinearity, **kwargs
        )


class LayerNormLSTM(Recurrent):
    """Layer-normalised LSTM layers (see `LayerNormLSTMCell`)."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(LayerNormLSTMCell, input_size, hidden_size, *args, **kwargs)


class LayerNormGRU(Recurrent):
    """Layer-normalised GRU layers (see `LayerNormGRUCell`)."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(LayerNormGRUCell, input_size, hidden_size, *args, **kwargs)


class IndRNN(Recurrent):
    """IndRNN layers (see `IndRNNCell`): `nonlinearity` ("relu") and `recurrent_max` (bound on |u|)."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(IndRNNCell, input_size, hidden_size, *args, **kwargs)
