"""Training on several processes: torchrun starts them, PyTorch's DistributedDataParallel trains.

    torchrun --nproc_per_node=4 -m rnnlab train --task adding ...     # or: rnnlab train --nproc 4 ...
    torchrun --nnodes=2 --node_rank=0 --rdzv-backend=c10d --rdzv-endpoint=host:29500 --nproc_per_node=8 \\
        -m rnnlab train ...

`World.from_env` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and joins the process group:
gloo on the CPU, NCCL on CUDA (each process on the GPU of its LOCAL_RANK). Without torchrun it is a world
of one and nothing here runs.

The global batch is the task's `batch_size`: every rank draws the same batch from the run's generator and
trains on its own contiguous share of the rows (`shard`; the batch size must divide among the ranks), so
the data stream of a resumed run is exactly the one before, whatever the number of processes. The
gradients are averaged by DDP: with equal shares the update is the one a single process makes on the whole
batch (for many-to-many tasks with variable lengths, up to how the valid steps fall among the shares).
Stateful truncated BPTT: each rank carries the state of its own rows; a checkpoint holds every rank's rows
gathered into the whole batch's state (`gather_rows`), so a resume shards it again.

Rank 0 alone writes the run folder and holds its lock; the others keep their rows in memory
(`run.ShadowRunDir`) and read what rank 0 wrote (checkpoints to roll back to, after a barrier). The loss and
the training metrics are averaged over the ranks; the non-finite guard decides on the averaged loss and the
synchronised gradients' norm, so one rank's NaN skips the step everywhere; a stop signal (Ctrl-C, SIGTERM) is
decided together before each step (`signalled`). Validation and test run on every rank on the whole split
(identical numbers, hence identical decisions: best checkpoint, early stopping, schedules). Diagnostics
probe rank 0's share of the batch.

A rank that fails ends its process; the others' next collective fails at once (gloo: the peer closed the
connection; NCCL: within `distributed.timeout_s`) and they stop with a `DistributedError` that says so, and
torchrun reports every rank's exit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import Tensor

from rnnlab.errors import ConfigError, UserError
from rnnlab.tasks.base import Batch

T = TypeVar("T")


class DistributedError(UserError, RuntimeError):
    """Another process of a distributed run stopped (or hangs), so this one cannot go on."""


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes: rank (0 is the main one) of `size`."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    joined: bool = False  # whether this World initialised the process group (and so destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls, device: torch.device, timeout_s: float) -> tuple[World, torch.device]:
        """The world torchrun's environment describes and the device this rank trains on (the GPU of its
        LOCAL_RANK on CUDA); joins the process group unless the caller has."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls(), device
        import torch.distributed as dist

        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        joined = False
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
            joined = True
        return cls(rank, size, local, joined), device

    # ---------------------------------------------------------------------------------------- the data

    def check_batch_size(self, batch_size: int | None) -> None:
        """The global batch must divide among the ranks (equal shares: the single-process update)."""
        if self.distributed and batch_size is not None and batch_size % self.size:
            raise ConfigError(
                f"task.batch_size: the global batch of {batch_size} rows does not divide among {self.size} "
                f"processes; use a multiple of {self.size}"
            )

    def rows(self, count: int) -> slice:
        """This rank's contiguous share of `count` rows."""
        share = count // self.size
        if share * self.size != count:
            raise ConfigError(
                f"a training batch of {count} rows does not divide among {self.size} processes; give the "
                f"task a batch size that is a multiple of {self.size}"
            )
        return slice(self.rank * share, (self.rank + 1) * share)

    def shard(self, batch: Batch) -> Batch:
        """This rank's rows of a training batch."""
        if not self.distributed:
            return batch
        at = self.rows(batch.inputs.shape[0])
        return replace(
            batch,
            inputs=batch.inputs[at],
            targets=batch.targets[at],
            lengths=None if batch.lengths is None else batch.lengths[at],
            reset=None if batch.reset is None else batch.reset[at],
            ids=None if batch.ids is None else batch.ids[at],
        )

    def shard_rows(self, x: Any, dim: int) -> Any:
        """This rank's rows (along `dim`) of a whole batch's tensor, or of each tensor of a tuple."""
        if not self.distributed or x is None:
            return x
        if isinstance(x, tuple):
            return tuple(self.shard_rows(t, dim) for t in x)
        at = self.rows(x.shape[dim])
        return x[(slice(None),) * dim + (at,)]

    # ----------------------------------------------------------------------------------- collectives

    def mean(self, values: list[float]) -> list[float]:
        """Each value averaged over the ranks (NaN anywhere: NaN everywhere)."""
        if not self.distributed:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        self._collective(lambda: dist.all_reduce(t), "averaging the loss")
        return (t / self.size).tolist()

    def gather_rows(self, x: Any, dim: int) -> Any:
        """Every rank's rows of `x` (a tensor, a tuple of them, or None) joined in rank order along `dim`:
        the whole batch's."""
        if not self.distributed or x is None:
            return x
        if isinstance(x, tuple):
            return tuple(self.gather_rows(t, dim) for t in x)
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(self.size)]
        self._collective(lambda: dist.all_gather(parts, x.contiguous()), "gathering the carried state")
        return torch.cat(parts, dim=dim)

    def gather_objects(self, obj: T) -> list[T]:
        """Every rank's `obj` (a picklable value of this process), in rank order."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        self._collective(lambda: dist.all_gather_object(out, obj), "gathering the random states")
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank (the run folder's name, which holds the time it was made)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box: list[Any] = [obj]
        self._collective(lambda: dist.broadcast_object_list(box, src=0), "agreeing on the run folder")
        return box[0]

    def signalled(self, interrupts: Any) -> bool:
        """Whether any rank received a stop signal (Ctrl-C, SIGTERM): decided together before each step, so
        that every rank stops at the same one; a rank that did not receive it joins the stop."""
        if not self.distributed:
            return bool(interrupts.requested)
        import torch.distributed as dist

        t = torch.tensor([float(interrupts.signum or 0)], device=self._device())
        self._collective(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX), "agreeing whether to stop")
        if t.item() > 0:
            interrupts.join(int(t.item()))
        return bool(interrupts.requested)

    def barrier(self, why: str = "waiting for the other processes") -> None:
        if self.distributed:
            import torch.distributed as dist

            self._collective(dist.barrier, why)

    def close(self) -> None:
        """Leave the process group, if this World joined it."""
        if self.joined:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    def peers(self, what: str) -> contextlib.AbstractContextManager[None]:
        """A block that communicates with the other ranks (the backward, where DDP averages the
        gradients): an error of the communication there is a `DistributedError` that says so (alone:
        nothing to wrap)."""
        return self._peers(what) if self.distributed else contextlib.nullcontext()

    @contextlib.contextmanager
    def _peers(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as e:
            if not _communication(e):
                raise
            raise self._stopped(e, what) from None

    def _collective(self, run: Callable[[], Any], what: str) -> None:
        try:
            run()
        except (RuntimeError, OSError) as e:  # gloo/NCCL: a peer left, or the timeout passed
            raise self._stopped(e, what) from None

    def _stopped(self, e: BaseException, what: str) -> DistributedError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DistributedError(
            f"rank {self.rank} of {self.size}: another process of this run stopped while {what} "
            f"({first[:200]}); its own error says why"
        )


def _communication(e: BaseException) -> bool:
    """Whether a RuntimeError is the process group's (a peer gone, a timeout), not the computation's."""
    import torch.distributed as dist

    text = str(e)
    signs = ("gloo", "NCCL", "Connection closed")
    return isinstance(e, dist.DistBackendError) or any(sign in text for sign in signs)


def carried(world: World, state: Any, context: Tensor | None) -> tuple[Any, Tensor | None]:
    """The whole batch's carried state (L, B, H) and context (B, T, I) from every rank's rows."""
    return world.gather_rows(state, 1), world.gather_rows(context, 0)


__all__ = ["DistributedError", "World", "carried"]
