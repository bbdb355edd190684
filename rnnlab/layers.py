"""The scanning layer: any cell over time, stacked, in either direction, on padded, masked or packed batches.

    x (T, B, I) ─► layer 0 ─► dropout ─► layer 1 ─► … ─► output (T, B, D*H)
                   │ forward:  h_1 → h_2 → … → h_T
                   └ reverse:  h_T → … → h_1   (each sequence reversed within its own length)

Three ways to run, one behaviour (tests assert they agree):
- `fused`: torch's own kernel (`torch.lstm`, `torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`), for the cells
  torch fuses, when nothing watches the steps.
- `unrolled` with a hand-written backward (`bptt.scan`), for torch's three cells: every step's state and
  gradient is available to an observer at no extra cost.
- `unrolled` with per-step autograd, for every other cell (LayerNorm, IndRNN, your own).
`execution="auto"` picks fused when it can, else unrolled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab import bptt
from rnnlab.cells import (
    Cell,
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RNNCell,
)
from rnnlab.init import InitSpec, initialize

Execution = Literal["auto", "fused", "unrolled"]
ObserverFactory = Callable[[int, int], "bptt.Observer | None"]


class Recurrent(nn.Module):
    """A stack of recurrent layers scanning `cell` over time, shaped like `torch.nn.LSTM`.

    Args:
        cell: a `Cell` subclass (or any callable `(input_size, hidden_size, bias, **cell_options) -> Cell`).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional: as in `torch.nn.LSTM`.
        init, forget_bias, chrono, spectral_radius: initialisers, see `rnnlab.init.initialize`.
        execution: "auto", "fused" or "unrolled" (see the module docstring).
        **cell_options: passed to every cell (e.g. `nonlinearity="relu"`).

    Shape:
        input (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched, or a `PackedSequence`;
        `hx` the initial state, each field (num_layers * D, B, H); `lengths` (B,) integer steps per sequence.
        Returns `(output, h_n)` for cells with state h, `(output, (h_n, c_n))` for LSTM cells; output is
        (T, B, D*H) (zero past each sequence's length) or a `PackedSequence` for packed input.

    Parameters are named as torch names them: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
    `bias_hh_l{k}`, with `_reverse` for the second direction, so torch's state dicts load both ways.

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
        if execution not in ("auto", "fused", "unrolled"):
            raise ValueError(f"execution must be 'auto', 'fused' or 'unrolled', got {execution!r}")
        if cell_options.pop("proj_size", 0):
            raise ValueError("proj_size is not supported by rnnlab layers")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.execution: Execution = execution
        #: called as observer_factory(layer, direction) at each forward; set by diagnostics (rnnlab.watch).
        self.observer_factory: ObserverFactory | None = None
        self.cells: list[Cell] = []  # bare descriptions on "meta"; the parameters live on this module
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                c = cell(layer_input, hidden_size, bias, device="meta", **cell_options)
                self.cells.append(c)
                for name, shape in c.parameter_shapes().items():
                    p = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                    self.register_parameter(self._name(name, layer, direction), p)
        self.kernels = [bptt.kernel_for(c) for c in self.cells]
        self.reset_parameters()
        initialize(self, init=init, forget_bias=forget_bias, chrono=chrono, spectral_radius=spectral_radius)

    @staticmethod
    def _name(name: str, layer: int, direction: int) -> str:
        return f"{name}_l{layer}" + ("_reverse" if direction else "")

    def cell_parameters(self, layer: int, direction: int = 0) -> dict[str, Tensor]:
        """The parameters of one (layer, direction) under the cell's own names (`weight_ih`, ...)."""
        c = self.cells[layer * self.num_directions + direction]
        return {n: getattr(self, self._name(n, layer, direction)) for n in c.parameter_shapes()}

    def reset_parameters(self) -> None:
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                cell = self.cells[layer * self.num_directions + direction]
                cell.reset_parameters(self.cell_parameters(layer, direction))

    @property
    def cell(self) -> Cell:
        """The first layer's cell (all layers share its type)."""
        return self.cells[0]

    @property
    def state_fields(self) -> tuple[str, ...]:
        return tuple(self.cell.state_type._fields)

    def uses_fused(self) -> bool:
        """Whether the next forward runs on torch's fused kernel."""
        if self.execution == "unrolled" or self.observer_factory is not None:
            return False
        return self.cell.fused_op is not None

    # ---------------------------------------------------------------------------------------------- forward

    def forward(self, input: Tensor | PackedSequence, hx: Any = None, lengths: Tensor | None = None) -> Any:
        packed = input if isinstance(input, PackedSequence) else None
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            x, lengths = pad_packed_sequence(input)  # (T, B, I), original batch order
            unbatched = False
        else:
            x, unbatched = self._time_major(input)
        T, B, _ = x.shape
        self._check_input(x)
        lengths = self._check_lengths(lengths, T, B, x.device)
        state = self._initial_state(hx, B, x, unbatched)

        if self.execution == "fused" and not self.uses_fused():
            raise ValueError(
                f"execution='fused' needs a cell torch fuses (RNN, LSTM, GRU) and no observer; "
                f"this layer has {type(self.cell).__name__}"
                + (" with an observer attached" if self.observer_factory is not None else "")
            )
        if self.uses_fused():
            out, final = self._fused(x, state, lengths)
        else:
            out, final = self._unrolled(x, state, lengths)

        if packed is not None:
            out = _repack(out, lengths, packed)
        elif unbatched:
            out, final = out.squeeze(1), tuple(f.squeeze(1) for f in final)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (final[0] if len(final) == 1 else tuple(final))

    def _time_major(self, input: Tensor) -> tuple[Tensor, bool]:
        if not isinstance(input, Tensor):
            raise ValueError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.dim() == 2:
            return input.unsqueeze(1), True
        if input.dim() != 3:
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(
                f"input must have 3 dimensions {layout} or 2 (time, features) unbatched, "
                f"got {input.dim()} with shape {tuple(input.shape)}"
            )
        return (input.transpose(0, 1) if self.batch_first else input), False

    def _check_input(self, x: Tensor) -> None:
        if not x.is_floating_point():
            raise ValueError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input has {x.shape[-1]} features, expected input_size={self.input_size}")
        if x.shape[0] == 0:
            raise ValueError("input has no time steps")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise ValueError(f"input dtype {x.dtype} differs from the parameters' dtype {w.dtype}")

    @staticmethod
    def _check_lengths(lengths: Tensor | None, T: int, B: int, device: torch.device) -> Tensor | None:
        if lengths is None:
            return None
        lengths = torch.as_tensor(lengths)
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},) (one per sequence), got {tuple(lengths.shape)}")
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > T:
            raise ValueError(
                f"lengths must lie in [1, {T}] (the number of time steps), got min {low}, max {high}"
            )
        return lengths.to(device=device, dtype=torch.long)

    def _initial_state(self, hx: Any, B: int, x: Tensor, unbatched: bool) -> tuple[Tensor, ...]:
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        fields = self.state_fields
        if hx is None:
            zeros = torch.zeros(shape, dtype=x.dtype, device=x.device)
            return tuple(zeros for _ in fields)
        hx = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(hx) != len(fields):
            raise ValueError(f"hx must hold {len(fields)} tensor(s) {fields}, got {len(hx)}")
        out = []
        for name, h in zip(fields, hx, strict=True):
            if unbatched and isinstance(h, Tensor) and h.dim() == 2:
                h = h.unsqueeze(1)
            if not isinstance(h, Tensor) or tuple(h.shape) != shape:
                got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
                raise ValueError(f"initial state {name} must have shape {shape}, got {got}")
            if h.dtype != x.dtype:
                raise ValueError(f"initial state {name} has dtype {h.dtype}, input has {x.dtype}")
            out.append(h)
        return tuple(out)

    # ------------------------------------------------------------------------------------- execution paths

    def _fused(self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None):
        op = getattr(torch, self.cell.fused_op)  # type: ignore[arg-type]
        weights = self._flat_weights()
        hx: Any = state if len(state) > 1 else state[0]
        common = (self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            out, *final = op(x, hx, weights, *common, False)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            assert packed.sorted_indices is not None and packed.unsorted_indices is not None
            hx = _index_state(hx, packed.sorted_indices)
            data, *final = op(packed.data, packed.batch_sizes, hx, weights, *common)
            out_packed = PackedSequence(
                data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
            )
            out, _ = pad_packed_sequence(out_packed, total_length=x.shape[0])
            final = list(_index_state(tuple(final), packed.unsorted_indices))
        return out, tuple(final)

    def _flat_weights(self) -> list[Tensor]:
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        return [
            getattr(self, self._name(n, layer, d))
            for layer in range(self.num_layers)
            for d in range(self.num_directions)
            for n in names
        ]

    def _unrolled(self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None):
        T, B = x.shape[:2]
        mask = None if lengths is None else (torch.arange(T, device=x.device)[:, None] < lengths)[..., None]
        reverse_index = None if lengths is None else _reverse_index(lengths, T)
        if mask is not None:  # padding never reaches the maths, so NaN there cannot poison a gradient
            x = x.masked_fill(~mask, 0.0)
        finals: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                xin = x if direction == 0 else _reverse(x, reverse_index)
                state0 = tuple(s[k] for s in state)
                observer = self.observer_factory(layer, direction) if self.observer_factory else None
                y, final = self._scan_one(k, layer, direction, xin, state0, mask, observer)
                outputs.append(y if direction == 0 else _reverse(y, reverse_index))
                finals.append(final)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        final_state = tuple(torch.stack(f) for f in zip(*finals, strict=True))
        return x, final_state

    def _scan_one(self, k, layer, direction, x, state, mask, observer):
        cell, params = self.cells[k], self.cell_parameters(layer, direction)
        kernel = self.kernels[k]
        if kernel is not None:
            return bptt.scan(kernel, x, params, state, mask, observer)
        px = cell.project(params, x)  # (T, B, G*H): every step's input projection in one matmul
        return _autograd_scan(cell, params, px, state, mask, observer)


def _autograd_scan(cell: Cell, params, px: Tensor, state: tuple[Tensor, ...], mask, observer):
    """The reference scan: the cell's own step under autograd, one step at a time."""
    watch = _AutogradWatch(observer, px.shape[0], state) if observer is not None else None
    if watch is not None and px.requires_grad:
        px = _AfterBackward.apply(watch.flush, px)
    outputs, states, gates = [], [], []
    for t in range(px.shape[0]):
        new, g = cell.step(params, px[t], state)
        if watch is not None:
            watch.hook(t, new)  # before masking: ∂L/∂(new state) is zero at masked steps
        if mask is not None:
            m = mask[t]
            outputs.append(torch.where(m, new[0], 0.0))
            new = tuple(torch.where(m, n, s) for n, s in zip(new, state, strict=True))
        else:
            outputs.append(new[0])
        state = tuple(new)
        if watch is not None:
            states.append(state)
            gates.append(g)
    if observer is not None:
        observer.forward(
            tuple(torch.stack([s[i].detach() for s in states]) for i in range(len(state))),
            {k: torch.stack([g[k].detach() for g in gates]) for k in gates[0]},
            mask,
        )
    return torch.stack(outputs), state


class _AutogradWatch:
    """Collects `∂L/∂state_t` with tensor hooks; `flush` hands them over once the scan's backward is done."""

    def __init__(self, observer: bptt.Observer, T: int, state: tuple[Tensor, ...]) -> None:
        self.observer, self.zeros = observer, torch.zeros_like(state[0])
        self.grads: list[list[Tensor | None]] = [[None] * T for _ in state]

    def hook(self, t: int, state: tuple[Tensor, ...]) -> None:
        for i, tensor in enumerate(state):
            if tensor.requires_grad:
                tensor.register_hook(self._recorder(i, t))

    def _recorder(self, i: int, t: int) -> Callable[[Tensor], None]:
        def record(grad: Tensor) -> None:
            self.grads[i][t] = grad

        return record

    def flush(self, _: Tensor) -> None:
        """Called after every step's gradient exists; a state the loss never reached gets zeros."""
        self.observer.backward(
            tuple(torch.stack([self.zeros if g is None else g for g in field]) for field in self.grads)
        )


class _AfterBackward(torch.autograd.Function):
    """Identity on px; its backward runs after every step of the scan has back-propagated (px feeds all)."""

    @staticmethod
    def forward(ctx: Any, callback: Callable[[Tensor], None], px: Tensor) -> Tensor:
        ctx.callback = callback
        return px.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        ctx.callback(grad)
        return None, grad


def _reverse_index(lengths: Tensor, T: int) -> Tensor:
    """(T, B) time index that reverses each sequence within its own length and leaves the padding alone."""
    t = torch.arange(T, device=lengths.device)[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.gather(0, index[..., None].expand_as(x))


def _index_state(hx: Any, index: Tensor) -> Any:
    if isinstance(hx, Tensor):
        return hx.index_select(1, index.to(hx.device))
    return tuple(h.index_select(1, index.to(h.device)) for h in hx)


def _repack(out: Tensor, lengths: Tensor | None, like: PackedSequence) -> PackedSequence:
    """Pack `out` (T, B, F) exactly as `like` was packed: same data layout and indices."""
    assert lengths is not None and like.sorted_indices is not None
    order = like.sorted_indices.to(out.device)
    data = pack_padded_sequence(out.index_select(1, order), lengths[order].cpu(), enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


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
