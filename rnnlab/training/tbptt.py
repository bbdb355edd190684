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

Variable lengths. A batch with `lengths` (B,) gives each window its own: row b has
clamp(lengths[b] - start, 0, end - start) valid new steps, and the context steps run again use theirs
(`forward` takes the batch's lengths and the window's start). A row whose sequence ended before a window
runs no step in it: it keeps its state (the layer's rule for length 0) and adds nothing to the loss.

    time ─►     0   2   4   6               k1 = 2, lengths = [7, 3, 1]
    row 0       ■ ■ ■ ■ ■ ■ ■              window [2, 4): row 0 two steps, row 1 one, row 2 none
    row 1       ■ ■ ■ · · · ·              window [4, 6): row 0 only
    row 2       ■ · · · · · ·

Where the padding is masked: for output "sequence" the loop hands the task only the valid steps
(`valid_steps`: outputs and targets of the valid (row, step) pairs, as one (1, N, ·) sequence), so a
task's loss and metrics, means over steps, never see padding and need no lengths of their own. A window
in which no row has a valid step makes no update (`Window.empty`). For output "last" the loss is taken
once per batch, at its last window, on each row's final state: for a row that ended in an earlier
window that state is the carried one, detached, so its loss reaches only the read-out there.

Token ids (B, T), the inputs of a task with a `vocab_size`, are cut along time in the same way (shapes
below say (B, T, I); read (B, T) for them); the model embeds each window's ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rnnlab.errors import DataError
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

    @property
    def lengths(self) -> Tensor | None:
        """Valid new steps per row, clamp(lengths - start, 0, end - start) (B,); None: every step is."""
        return window_lengths(self.batch.lengths, self.start, self.end)

    @property
    def empty(self) -> bool:
        """Whether no row has a valid step among the new ones (every sequence ended before `start`)."""
        lengths = self.lengths
        return lengths is not None and not bool(lengths.any())

    def targets(self, output: str) -> Tensor | None:
        """The targets of the new steps; None for a window without a loss: output "last" before the batch's
        end, output "sequence" where no row has a valid step."""
        if output == "sequence":
            return None if self.empty else self.batch.targets[:, self.start : self.end]
        return self.batch.targets if self.last else None

    @property
    def position(self) -> tuple[int, int, int]:
        return self.epoch, self.batch_index, self.index


def window_lengths(lengths: Tensor | None, start: int, end: int) -> Tensor | None:
    """The valid steps of each row among steps [start, end) of sequences of `lengths` (B,)."""
    return None if lengths is None else (lengths - start).clamp(0, end - start)


def valid_steps(outputs: Tensor, targets: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """The outputs (B, T, O) and targets (B, T, ...) of the valid steps only, as one sequence (1, N, ·).

    A step t of row b is valid when t < lengths[b]; without lengths (or with none cut short) both are
    returned unchanged. Means over steps of the result are means over the valid steps of the batch.
    """
    T = outputs.shape[1]
    if lengths is None or bool((lengths >= T).all()):
        return outputs, targets
    mask = torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)
    return outputs[mask][None], targets[mask][None]


def spans(length: int, k1: int) -> list[tuple[int, int]]:
    """[start, end) of each window's new steps: [(0, k1), (k1, 2 k1), ..., (.., length)]."""
    return [(s, min(s + k1, length)) for s in range(0, length, k1)]


def windows(
    task: Task,
    k1: int,
    seed: int,
    device: torch.device,
    after: tuple[int, int, int] | None = None,
    shard: Callable[[Batch], Batch] | None = None,
) -> Iterator[Window]:
    """Every window of every training batch, epoch after epoch (k1 = 0: one window per batch).

    Epoch e's batches come from a generator seeded with (seed, e), so they are the same in a resumed run,
    which starts after the window at position `after` = (epoch, batch, window). `shard` takes a process's
    rows of each batch (a distributed run: `World.shard`).
    """
    epoch = after[0] if after else 0
    while True:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        count = 0
        for b, batch in enumerate(task.train_batches(generator)):
            count += 1
            if after and (epoch, b) < after[:2]:
                continue  # replayed to reach the resume point: the data stream is then exactly as before
            check_batch(batch, f"training batch {b} of epoch {epoch}", getattr(task, "vocab_size", None))
            batch = (shard(batch) if shard else batch).to(device)
            parts = spans(batch.inputs.shape[1], k1 or batch.inputs.shape[1])
            for w, (start, end) in enumerate(parts):
                if after is None or (epoch, b, w) > after:
                    yield Window(epoch, b, w, batch, start, end, last=w == len(parts) - 1)
        if count == 0:
            raise DataError(f"task {task.name!r} yielded no training batches in epoch {epoch}")
        epoch += 1


def check_batch(batch: Batch, where: str, vocab_size: int | None = None) -> None:
    """Bad data is an error that names the batch, not a silent NaN in the loss (or an index error deep
    in the embedding): float inputs (B, T, I), finite; or, for a task with a `vocab_size`, int64 token
    ids (B, T) in [0, vocab_size)."""
    x = batch.inputs
    if vocab_size is not None:
        if x.dim() != 2 or x.dtype != torch.int64:
            raise DataError(
                f"{where}: inputs must be int64 token ids (batch, time) for a task with a vocab_size, got "
                f"{x.dtype} of shape {tuple(x.shape)}"
            )
        outside = (x < 0) | (x >= vocab_size)
        if bool(outside.any()):
            row, step = (int(i) for i in torch.nonzero(outside)[0])
            raise DataError(
                f"{where}: token id {int(x[row, step])} at row {row}, step {step} is outside [0, "
                f"{vocab_size}) (the task's vocab_size)"
            )
    elif x.dim() != 3:
        raise DataError(f"{where}: inputs must be (batch, time, features), got shape {tuple(x.shape)}")
    floats = [t for t in (x, batch.targets) if t.is_floating_point()]  # token ids are checked above
    if floats and not _all_finite(*floats):  # one check of both; then the one that names which
        if x.is_floating_point() and not _all_finite(x):
            raise DataError(f"{where}: inputs contain NaN or Inf")
        if batch.targets.is_floating_point() and not _all_finite(batch.targets):
            raise DataError(f"{where}: targets contain NaN or Inf")
    lengths = batch.lengths
    if lengths is not None:
        B, T = x.shape[:2]
        if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.shape != (B,):
            got = f"{lengths.dtype} of shape {tuple(lengths.shape)}"
            raise DataError(f"{where}: lengths must be {B} integers (one per row), got {got}")
        if B and not bool(((lengths >= 0) & (lengths <= T)).all()):
            low, high = int(lengths.min()), int(lengths.max())
            raise DataError(f"{where}: lengths must lie in [0, {T}] (the time steps), got {low} to {high}")


def _all_finite(*tensors: Tensor) -> bool:
    """Every entry of every tensor finite: a sum is finite when they all are (one pass each, no bool
    tensor, and one test for all); only a sum that is not, which may be an overflow of finite values, is
    checked entry by entry."""
    total = sum((t.sum() for t in tensors[1:]), tensors[0].sum())
    return bool(torch.isfinite(total)) or all(bool(torch.isfinite(t).all()) for t in tensors)


def begin(carry: Carry, window: Window, stateful: bool) -> Carry:
    """The carry a window starts from: fresh at each batch (or, stateful, at each epoch and marked row)."""
    if window.index > 0:
        return carry
    if not stateful or window.batch_index == 0 or carry.state is None:
        return Carry()
    rows = window.batch.inputs.shape[0]
    if state_rows(carry.state) != rows:
        raise DataError(
            f"bptt.stateful: batch {window.batch_index} of epoch {window.epoch} has {rows} rows but the "
            f"carried state has {state_rows(carry.state)}; a stream needs batches of equal size"
        )
    reset = window.batch.reset
    return Carry(carry.state if reset is None else reset_rows(carry.state, reset))


def full_precision(carry: Carry) -> Carry:
    """`carry` with a 16-bit state in float32 (a mixed-precision forward's final state is bf16 or fp16):
    what a checkpoint holds and the next window starts from, whatever precision computed it."""
    state = carry.state
    if state is None:
        return carry
    if isinstance(state, tuple):
        return Carry(tuple(upcast(h) for h in state), carry.context)
    return Carry(upcast(state), carry.context)


def upcast(h: Tensor) -> Tensor:
    """A 16-bit tensor (bf16, fp16: of a mixed-precision forward) as float32; any other as it is."""
    return h.float() if h.dtype in (torch.float16, torch.bfloat16) else h


class WindowForward(torch.nn.Module):
    """`forward` as a module, so that DistributedDataParallel runs one window's forward (its context and
    new steps, one or two calls of the model) as one forward before one backward."""

    def __init__(self, model: torch.nn.Module, context: int, output: str) -> None:
        super().__init__()
        self.model, self.context, self.output = model, context, output

    def forward(
        self, x: Tensor, carry: Carry, *, end: bool, lengths: Tensor | None = None, start: int = 0
    ) -> tuple[Tensor, Carry]:
        return forward(
            self.model,
            x,
            carry,
            context=self.context,
            output=self.output,
            end=end,
            lengths=lengths,
            start=start,
        )


def distributed_forward(
    model: torch.nn.Module, world: Any, device: torch.device, context: int, output: str
) -> Callable[..., tuple[Tensor, Carry]] | None:
    """The training forward of a distributed run (`world.distributed`): `forward` wrapped in
    DistributedDataParallel, which averages the gradients over the ranks in the backward; None otherwise."""
    if not world.distributed:
        return None
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(WindowForward(model, context, output), device_ids=ids)


def distributed_model(model: torch.nn.Module, world: Any, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel for a distributed run (a task that runs its model itself calls
    this), else `model`."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def forward(
    model: Any,
    x: Tensor,
    carry: Carry,
    *,
    context: int,
    output: str,
    end: bool,
    lengths: Tensor | None = None,
    start: int = 0,
) -> tuple[Tensor, Carry]:
    """Run one window of new steps x (B, k1, I); return their outputs and the carry for the next window.

    `context` = k2 - k1 steps go again to the next window; at the batch's `end` the carry is the final state.
    `lengths` (B,) are the whole sequences' and `start` is the step of the batch that x begins at: each run
    over steps [a, b) of the batch gets clamp(lengths - a, 0, b - a), the context steps included.
    The model needs `forward_with_state(x, state, lengths) -> (y, state)` (as `rnnlab.SequenceModel`).
    """
    seen = 0 if carry.context is None else carry.context.shape[1]
    if lengths is not None and seen > start:
        raise ValueError(f"a context of {seen} steps before step {start}: the context holds steps before x")
    if seen:
        x = torch.cat([carry.context, x], dim=1)  # type: ignore[list-item]  # (B, seen + k1, I)
    T, first = x.shape[1], start - seen  # x holds steps [first, first + T) of the batch
    split = T if end else T - min(context, T)  # the next window starts from the state at `split`
    ys, state, split_state = [], carry.state, carry.state
    for a, b in ((0, split), (split, T)):
        if b > a:
            y, state = model.forward_with_state(
                x[:, a:b], state, window_lengths(lengths, first + a, first + b)
            )
            ys.append(y)
        if b == split:
            split_state = state
    if output == "sequence":
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)  # no copy for one part
        y = y[:, seen:]  # (B, k1, O): the new steps only
    else:
        y = ys[-1]  # (B, O)
    rerun = x[:, split:] if split < T else None  # the next window's context
    return y, Carry(detach(split_state), rerun)


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
