"""Which fast path a cell may take, and the path onto torch's fused kernels.

A cell gets a fast path only if it computes exactly the maths of the class the path was written for:

    torch's fused kernel   torch.lstm, torch.gru, torch.rnn_tanh, torch.rnn_relu (cuDNN on CUDA)
    hand-written kernel    bptt.LSTMKernel, GRUKernel, RNNKernel and bptt_cells.IndRNNKernel,
                           OrthogonalKernel, LayerNormLSTMKernel, LayerNormGRUKernel: one autograd node,
                           every step observable

`fast_paths(cell)` decides both, by behaviour rather than ancestry: a subclass of `LSTMCell` that overrides
`step`, `project` or `parameter_shapes` computes something else, so it gets neither and runs its own maths
under per-step autograd; a subclass that only adds a docstring or a helper keeps both. Cells torch does not
fuse (IndRNN, the orthogonal RNN, the LayerNorm cells) have a kernel and no fused op; a cell of your own has
neither.

`auto_uses_fused` says which of the two `execution="auto"` takes, from measurement (BENCHMARKS.md,
`benchmarks/speed.py`): for training on CPU the hand-written GRU and RNN kernels beat torch's (which steps
the GRU and RNN in C++ one op at a time), torch's LSTM (oneDNN's fused RNN) beats ours; without gradients
(evaluation, inference) torch's kernels are the faster for all three; on CUDA, cuDNN beats anything
stepped from Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab import bptt, bptt_cells
from rnnlab.cells import (
    Cell,
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    OrthogonalCell,
    RNNCell,
)

#: the methods that define a cell's maths: a class that overrides any of them leaves the fast paths.
MATHS = ("step", "project", "parameter_shapes")


@dataclass(frozen=True)
class FastPaths:
    """The fast paths open to one cell: torch's fused op by name, and the hand-written kernel."""

    fused_op: str | None = None
    kernel: bptt.Kernel | None = None


#: class -> the fast paths of a cell computing exactly its maths.
_PATHS: dict[type[Cell], Callable[[Any], FastPaths]] = {
    LSTMCell: lambda cell: FastPaths("lstm", bptt.LSTMKernel()),
    GRUCell: lambda cell: FastPaths("gru", bptt.GRUKernel()),
    RNNCell: lambda cell: FastPaths(f"rnn_{cell.nonlinearity}", bptt.RNNKernel(cell.nonlinearity)),
    IndRNNCell: lambda cell: FastPaths(None, bptt_cells.IndRNNKernel(cell.nonlinearity, cell.recurrent_max)),
    OrthogonalCell: lambda cell: FastPaths(None, bptt_cells.OrthogonalKernel()),
    LayerNormLSTMCell: lambda cell: FastPaths(None, bptt_cells.LayerNormLSTMKernel.of(cell)),
    LayerNormGRUCell: lambda cell: FastPaths(None, bptt_cells.LayerNormGRUKernel.of(cell)),
}

#: (fused op family, device type) -> whether `auto` takes torch's fused kernel over the hand-written one,
#: as measured by benchmarks/speed.py (forward + backward). Pairs not listed take the fused kernel.
_AUTO_FUSED = {("gru", "cpu"): False, ("rnn", "cpu"): False}


def fast_paths(cell: Cell) -> FastPaths:
    """The fast paths `cell` may take (see the module docstring); none for a cell with maths of its own."""
    cls = type(cell)
    for owner in cls.__mro__:
        if owner in _PATHS:
            same = all(getattr(cls, name) is getattr(owner, name) for name in MATHS)
            return _PATHS[owner](cell) if same else FastPaths()
    return FastPaths()


def auto_uses_fused(paths: FastPaths, device: torch.device, grad: bool = True) -> bool:
    """Whether `execution="auto"` runs torch's fused kernel (else the hand-written one) on `device`, for a
    forward whose backward follows (`grad`) or not: without one torch's kernels are the faster on CPU too
    (`benchmarks/speed.py --inference`), since the hand-written kernels save for a backward."""
    if paths.fused_op is None:
        return False
    if paths.kernel is None or not grad:
        return True
    family = paths.fused_op.split("_")[0]
    return _AUTO_FUSED.get((family, device.type), True)


def run(
    op_name: str,
    x: Tensor,
    state: tuple[Tensor, ...],
    weights: list[Tensor],
    lengths: Tensor | None,
    *,
    bias: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """torch's fused kernel over x (T, B, I) from `state` (each (L*D, B, H)); lengths (B,) may hold zeros.

    Returns the outputs (T, B, D*H), zero past each length, and the final state at each sequence's end."""
    op = getattr(torch, op_name)
    hx: Any = state if len(state) > 1 else state[0]
    common = (bias, num_layers, dropout, train, bidirectional)
    if lengths is None:
        out, *final = op(x, hx, weights, *common, False)
        return out, tuple(final)
    ran = lengths > 0
    if not bool(ran.all()):  # torch cannot pack empty sequences: run the others, keep these rows' state
        rows = torch.nonzero(ran.cpu()).squeeze(1).to(x.device)
        out = x.new_zeros(x.shape[0], x.shape[1], weights[1].shape[1] * (2 if bidirectional else 1))
        if rows.numel() == 0:
            return out, state
        sub_out, sub_final = run(
            op_name,
            x.index_select(1, rows),
            tuple(s.index_select(1, rows) for s in state),
            weights,
            lengths.index_select(0, rows),
            bias=bias,
            num_layers=num_layers,
            dropout=dropout,
            train=train,
            bidirectional=bidirectional,
        )
        out = out.index_copy(1, rows, sub_out)
        return out, tuple(s.index_copy(1, rows, f) for s, f in zip(state, sub_final, strict=True))
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    assert packed.sorted_indices is not None and packed.unsorted_indices is not None
    hx = _index_state(hx, packed.sorted_indices)
    data, *final = op(packed.data, packed.batch_sizes, hx, weights, *common)
    out_packed = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    out, _ = pad_packed_sequence(out_packed, total_length=x.shape[0])
    return out, tuple(_index_state(tuple(final), packed.unsorted_indices))


def _index_state(hx: Any, index: Tensor) -> Any:
    if isinstance(hx, Tensor):
        return hx.index_select(1, index.to(hx.device))
    return tuple(h.index_select(1, index.to(h.device)) for h in hx)


def flatten(weights: list[Tensor], op_name: str, layer: Any) -> None:
    """Make cuDNN's fused path take contiguous weights: copy them into one flat buffer, in place, as
    `torch.nn.RNNBase.flatten_parameters` does (the parameters become views of it). A no-op off CUDA, for
    weights cuDNN cannot take, and for weights that alias each other."""
    if not weights or not all(isinstance(w, Tensor) for w in weights):
        return
    first = weights[0]
    if any(
        w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w) for w in weights
    ):
        return
    if len({w.data_ptr() for w in weights}) != len(weights):
        return
    from torch.backends.cudnn import rnn as cudnn_rnn

    mode = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}[op_name]
    with torch.cuda.device_of(first), torch.no_grad():
        if torch._use_cudnn_rnn_flatten_weight():
            torch._cudnn_rnn_flatten_weight(
                weights,
                4 if layer.bias else 2,
                layer.input_size,
                cudnn_rnn.get_cudnn_mode(mode),
                layer.hidden_size,
                0,
                layer.num_layers,
                layer.batch_first,
                bool(layer.bidirectional),
            )
