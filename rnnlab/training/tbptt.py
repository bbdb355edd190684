"""Backpropagation through time, whole or truncated: chunking the time axis and detaching the state.

Truncated BPTT(k1, k2) (Williams & Peng 1990): every k1 steps, update from a backward pass over the last
k2 >= k1 steps. Each window starts from the state carried in (detached: the cut), runs again over the
k2 - k1 steps it has seen before (its context) and then over its k1 new steps; the loss covers the new steps.

    time ─►     0   2   4   6   8   10  12
    window 1    [ new  ]                          k1 = 4, k2 = 6
    window 2        [ctx][ new  ]                 starts from the state at step 2, detached
    window 3                [ctx][ new  ]         starts from the state at step 6, detached
                    ▲ cut: no gradient flows behind the carried-in state

With k2 = k1 there is no context and the windows are the chunks of pytorch/examples' word_language_model
(`detach` below is its `repackage_hidden`). Full BPTT is one window over the whole sequence. Stateful
training carries each batch's final state, detached, into the next batch of a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rnnlab.tasks.base import Batch, Task


@dataclass
class Carry:
    """What one window hands the next: the state (detached) and the context steps to run again."""

    state: Any = None  # h_n or (h_n, c_n), each (L*D, B, H); None for zeros
    context: Tensor | None = None  # (B, k2 - k1, I) inputs seen before, or None


@dataclass
class Window:
    """The new steps [start, end) of one batch: one optimiser update."""

    epoch: int
    batch_index: int  # within the epoch
    index: int  # window within the batch
    batch: Batch = field(repr=False)
    start: int
    end: int
    last: bool  # the batch's final window

    @property
    def inputs(self) -> Tensor:
        return self.batch.inputs[:, self.start : self.end]  # (B, k1, I)

    def targets(self, output: str) -> Tensor | None:
        """The targets of the new steps; None for a window without a loss (before the end, output "last")."""
        if output == "sequence":
            return self.batch.targets[:, self.start : self.end]
        return self.batch.targets if self.last else None

    @property
    def position(self) -> tuple[int, int, int]:
        return self.epoch, self.batch_index, self.index


def spans(length: int, k1: int) -> list[tuple[int, int]]:
    """[start, end) of each window's new steps: [(0, k1), (k1, 2 k1), ..., (.., length)]."""
    return [(s, min(s + k1, length)) for s in range(0, length, k1)]


def windows(
    task: Task, k1: int, seed: int, device: torch.device, after: tuple[int, int, int] | None = None
) -> Iterator[Window]:
    """Every window of every training batch, epoch after epoch (k1 = 0: one window per batch).

    Epoch e's batches come from a generator seeded with (seed, e), so they are the same in a resumed run,
    which starts after the window at position `after` = (epoch, batch, window).
    """
    epoch = after[0] if after else 0
    while True:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        count = 0
        for b, batch in enumerate(task.train_batches(generator)):
            count += 1
            if after and (epoch, b) < after[:2]:
                continue  # replayed to reach the resume point: the data stream is then exactly as before
            check_batch(batch, f"training batch {b} of epoch {epoch}")
            batch = batch.to(device)
            parts = spans(batch.inputs.shape[1], k1 or batch.inputs.shape[1])
            for w, (start, end) in enumerate(parts):
                if after is None or (epoch, b, w) > after:
                    yield Window(epoch, b, w, batch, start, end, last=w == len(parts) - 1)
        if count == 0:
            raise ValueError(f"task {task.name!r} yielded no training batches in epoch {epoch}")
        epoch += 1


def check_batch(batch: Batch, where: str) -> None:
    """Bad data is an error that names the batch, not a silent NaN in the loss."""
    x = batch.inputs
    if x.dim() != 3:
        raise ValueError(f"{where}: inputs must be (batch, time, features), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{where}: inputs contain NaN or Inf")
    if batch.targets.is_floating_point() and not torch.isfinite(batch.targets).all():
        raise ValueError(f"{where}: targets contain NaN or Inf")


def begin(carry: Carry, window: Window, stateful: bool) -> Carry:
    """The carry a window starts from: fresh at each batch (or, stateful, at each epoch and marked row)."""
    if window.index > 0:
        return carry
    if not stateful or window.batch_index == 0 or carry.state is None:
        return Carry()
    rows = window.batch.inputs.shape[0]
    if state_rows(carry.state) != rows:
        raise ValueError(
            f"bptt.stateful: batch {window.batch_index} of epoch {window.epoch} has {rows} rows but the "
            f"carried state has {state_rows(carry.state)}; a stream needs batches of equal size"
        )
    reset = window.batch.reset
    return Carry(carry.state if reset is None else reset_rows(carry.state, reset))


def forward(
    model: Any,
    x: Tensor,
    carry: Carry,
    *,
    keep: int,
    output: str,
    end: bool,
    lengths: Tensor | None = None,
) -> tuple[Tensor, Carry]:
    """Run one window of new steps x (B, k1, I); return their outputs and the carry for the next window.

    `keep` = k2 - k1 context steps go to the next window; at the batch's `end` the carry is the final state.
    The model needs `forward_with_state(x, state, lengths) -> (y, state)` (as `rnnlab.SequenceModel`).
    """
    seen = 0 if carry.context is None else carry.context.shape[1]
    if seen:
        x = torch.cat([carry.context, x], dim=1)  # type: ignore[list-item]  # (B, seen + k1, I)
    T = x.shape[1]
    split = T if end else T - min(keep, T)  # the next window starts from the state at `split`
    ys, state, split_state = [], carry.state, carry.state
    for a, b in ((0, split), (split, T)):
        if b > a:
            y, state = model.forward_with_state(x[:, a:b], state, lengths)
            ys.append(y)
        if b == split:
            split_state = state
    if output == "sequence":
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)  # no copy for one part
        y = y[:, seen:]  # (B, k1, O): the new steps only
    else:
        y = ys[-1]  # (B, O)
    context = x[:, split:] if split < T else None
    return y, Carry(detach(split_state), context)


def detach(state: Any) -> Any:
    """Cut the graph behind the state (word_language_model's `repackage_hidden`)."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    return tuple(detach(s) for s in state)


def reset_rows(state: Any, rows: Tensor) -> Any:
    """Zero the state of the batch rows where `rows` (B,) is True (a new document starts there)."""
    if isinstance(state, Tensor):
        return state * (~rows.bool()).to(state.dtype)[None, :, None]  # state (L*D, B, H)
    return tuple(reset_rows(s, rows) for s in state)


def to_device(carry: Carry, device: torch.device) -> Carry:
    def move(s: Any) -> Any:
        return s.to(device) if isinstance(s, Tensor) else None if s is None else tuple(move(t) for t in s)

    return Carry(move(carry.state), move(carry.context))


def state_rows(state: Any) -> int:
    return int(state.shape[1]) if isinstance(state, Tensor) else state_rows(state[0])
