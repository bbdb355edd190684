"""A layer's call, read: the input time-major, lengths checked, the initial state shaped; reversal and
packing of variable-length batches.

    layer(input, hx, lengths)  ─►  read(layer, ...)  ─►  Inputs(x (T, B, I), state, lengths, ...)

Every check names what is wrong: the layout of the input, its dtype and device against the parameters',
the range of the lengths, the shape of each field of the initial state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


class Inputs(NamedTuple):
    """A call's arguments as the layer reads them: x (T, B, I) time-major, the initial state as a tuple of
    (L*D, B, H) tensors, lengths (B,) long on x's device or None, and how to shape the result."""

    x: Tensor
    state: tuple[Tensor, ...]
    lengths: Tensor | None
    unbatched: bool
    packed: PackedSequence | None


def read(layer: Any, input: Tensor | PackedSequence, hx: Any = None, lengths: Any = None) -> Inputs:
    """The arguments of a call `layer(input, hx, lengths)` checked against `layer` and normalised."""
    packed = input if isinstance(input, PackedSequence) else None
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("pass lengths or a PackedSequence, not both")
        x, lengths = pad_packed_sequence(input)  # (T, B, I), original batch order
        unbatched = False
    else:
        x, unbatched = _time_major(input, layer.batch_first)
    T, B, _ = x.shape
    _check_input(x, layer.input_size, layer.first_weight)
    lengths = _check_lengths(lengths, T, B, x.device)
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    return Inputs(x, _initial_state(hx, shape, layer.state_fields, x, unbatched), lengths, unbatched, packed)


def _time_major(input: Tensor, batch_first: bool) -> tuple[Tensor, bool]:
    if not isinstance(input, Tensor):
        raise ValueError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
    if input.dim() == 2:
        return input.unsqueeze(1), True
    if input.dim() != 3:
        layout = "(batch, time, features)" if batch_first else "(time, batch, features)"
        raise ValueError(
            f"input must have 3 dimensions {layout} or 2 (time, features) unbatched, "
            f"got {input.dim()} with shape {tuple(input.shape)}"
        )
    return (input.transpose(0, 1) if batch_first else input), False


def _check_input(x: Tensor, input_size: int, w: Tensor) -> None:
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[-1] != input_size:
        raise ValueError(f"input has {x.shape[-1]} features, expected input_size={input_size}")
    if x.shape[0] == 0:
        raise ValueError("input has no time steps")
    if x.dtype != w.dtype:
        raise ValueError(f"input dtype {x.dtype} differs from the parameters' dtype {w.dtype}")
    if x.device != w.device:
        raise ValueError(f"input is on {x.device}, the parameters on {w.device}")


def _check_lengths(lengths: Any, T: int, B: int, device: torch.device) -> Tensor | None:
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.device not in (device, torch.device("cpu")):
        raise ValueError(
            f"lengths is on {lengths.device}; put it on the input's device ({device}) or the CPU"
        )
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},) (one per sequence), got {tuple(lengths.shape)}")
    if B == 0:
        return lengths.to(device=device, dtype=torch.long)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 0 or high > T:
        raise ValueError(
            f"lengths must lie in [0, {T}] (the number of time steps), got min {low}, max {high}"
        )
    return lengths.to(device=device, dtype=torch.long)


def _initial_state(
    hx: Any, shape: tuple[int, int, int], fields: tuple[str, ...], x: Tensor, unbatched: bool
) -> tuple[Tensor, ...]:
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
        if h.device != x.device:
            raise ValueError(f"initial state {name} is on {h.device}, the input on {x.device}")
        out.append(h)
    return tuple(out)


def reverse_index(lengths: Tensor, T: int) -> Tensor:
    """(T, B) time index that reverses each sequence within its own length and leaves the padding alone."""
    t = torch.arange(T, device=lengths.device)[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def reverse(x: Tensor, index: Tensor | None) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.gather(0, index[..., None].expand_as(x))


def repack(out: Tensor, lengths: Tensor | None, like: PackedSequence) -> PackedSequence:
    """Pack `out` (T, B, F) exactly as `like` was packed: same data layout and indices."""
    assert lengths is not None and like.sorted_indices is not None
    order = like.sorted_indices.to(out.device)
    data = pack_padded_sequence(out.index_select(1, order), lengths[order].cpu(), enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
