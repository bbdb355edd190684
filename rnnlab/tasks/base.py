"""What the training loop needs from a task: batches, a loss, metrics, and the shape of the model.

`rnnlab.train` asks a task for

    train_batches(generator)   one epoch of Batch(inputs (B, T, I), targets, lengths, reset)
    val_batches()              the validation batches, the same every time
    loss(outputs, targets)     a scalar tensor to minimise
    metrics(outputs, targets)  plain floats averaged over the batch, e.g. {"mae": 0.12}

and builds or checks the model from `input_size`, `output_size` and `output`: "last" predicts once per
sequence (targets (B, O), or class indices (B,)); "sequence" predicts at every step (targets (B, T, O) or
(B, T)). Inputs are batch-first.

`train_batches` draws all its randomness from `generator`, which the loop seeds from the run's seed and the
epoch number: the same epoch gives the same batches, which is what makes a resumed run exact.

A stream task (`stream = True`) cuts one long sequence per batch row into consecutive batches (`batchify`);
with `bptt.stateful` the loop carries the state from each batch into the next and resets it at the start of
every epoch and for the rows that `Batch.reset` marks (a document boundary).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Output = Literal["last", "sequence"]


@dataclass
class Batch:
    """One batch: inputs (B, T, I); targets; optional lengths (B,); reset (B,) bool rows that start afresh."""

    inputs: Tensor
    targets: Tensor
    lengths: Tensor | None = None
    reset: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        lengths = None if self.lengths is None else self.lengths.to(device)
        reset = None if self.reset is None else self.reset.to(device)
        return Batch(self.inputs.to(device), self.targets.to(device), lengths, reset)


class Task(ABC):
    """The data side of an experiment (see the module docstring)."""

    name: str = "task"
    input_size: int
    output_size: int
    output: Output = "last"
    stream: bool = False

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        """One epoch of training batches, drawn with `generator` only."""

    @abstractmethod
    def val_batches(self) -> Iterable[Batch]:
        """The validation batches (may be empty)."""

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """A scalar to minimise."""

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Task metrics on one batch (the loss is reported anyway)."""
        return {}

    def settings(self) -> dict[str, Any]:
        """What this task was built with, as `[task]` settings (keys of `rnnlab.tasks.TaskConfig`).

        The run folder's config.toml records them; a subclass adds the settings it has (batch_size, seq_len,
        ..., seed) and leaves out those it has not, rather than claiming a default."""
        return {"name": self.name, "output": self.output, "stream": bool(self.stream)}


LOSSES = ("mse", "cross_entropy")


class TensorTask(Task):
    """A task from tensors in memory, like Keras' `fit(x, y)`: shuffled mini-batches, MSE or cross-entropy.

    Args:
        inputs: (N, T, I) sequences.
        targets: (N, O) or (N, T, O) real values for "mse"; (N,) or (N, T) class indices for "cross_entropy".
        loss: "mse" (metric: mean absolute error "mae") or "cross_entropy" (metric: "accuracy").
        batch_size: sequences per batch (the last batch of an epoch may be smaller).
        val: (inputs, targets) for validation, or None.
        num_classes: for cross-entropy, if not every class occurs in `targets`.
        name: shown in the run folder's name.

    Example:
        >>> x, y = torch.rand(1000, 10, 1), torch.rand(1000, 1)
        >>> task = TensorTask(x, y, loss="mse", val=(x[:100], y[:100]))
        >>> task.input_size, task.output_size, task.output
        (1, 1, 'last')
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        *,
        loss: str = "mse",
        batch_size: int = 32,
        val: tuple[Tensor, Tensor] | None = None,
        num_classes: int | None = None,
        name: str = "tensors",
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if inputs.dim() != 3:
            raise ValueError(f"inputs must be (N, T, I), got shape {tuple(inputs.shape)}")
        if targets.shape[0] != inputs.shape[0]:
            raise ValueError(f"{inputs.shape[0]} input sequences but {targets.shape[0]} targets")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        classify = loss == "cross_entropy"
        per_step = targets.dim() == (2 if classify else 3)
        if per_step and targets.shape[1] != inputs.shape[1]:
            raise ValueError(f"per-step targets have {targets.shape[1]} steps, inputs {inputs.shape[1]}")
        self.inputs, self.targets, self.val = inputs, targets, val
        self.loss_name, self.batch_size, self.name = loss, batch_size, name
        self.input_size = inputs.shape[-1]
        self.output: Output = "sequence" if per_step else "last"
        self.output_size = (num_classes or int(targets.max()) + 1) if classify else targets.shape[-1]

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "batch_size": self.batch_size,
            "seq_len": int(self.inputs.shape[1]),
            "train_size": int(self.inputs.shape[0]),
            "val_size": 0 if self.val is None else int(self.val[0].shape[0]),
            "output": self.output,
            "stream": False,
        }

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        order = torch.randperm(self.inputs.shape[0], generator=generator)
        for i in range(0, len(order), self.batch_size):
            rows = order[i : i + self.batch_size]
            yield Batch(self.inputs[rows], self.targets[rows])

    def val_batches(self) -> Iterable[Batch]:
        if self.val is None:
            return
        x, y = self.val
        for i in range(0, x.shape[0], self.batch_size):
            yield Batch(x[i : i + self.batch_size], y[i : i + self.batch_size])

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.loss_name == "mse":
            return F.mse_loss(outputs, targets)
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        if self.loss_name == "mse":
            return {"mae": float((outputs - targets).abs().mean())}
        return {"accuracy": float((outputs.argmax(-1) == targets).float().mean())}


def batchify(inputs: Tensor, targets: Tensor, seq_len: int) -> list[Batch]:
    """Cut B long sequences, (B, L, I) and their per-step targets, into consecutive (B, seq_len, ·) batches.

        row 0:  a b c d e f g h i j k l        seq_len = 3
        row 1:  m n o p q r s t u v w x
        batches:  [a b c / m n o]  [d e f / p q r]  [g h i / s t u]  [j k l / v w x]

    Row b of batch k + 1 continues row b of batch k, so a stateful loop can carry the state across batches
    (as pytorch/examples' word_language_model does with its `batchify` and `get_batch`).
    """
    L = inputs.shape[1]
    starts = range(0, L - seq_len + 1, seq_len)
    return [Batch(inputs[:, s : s + seq_len], targets[:, s : s + seq_len]) for s in starts]


def describe(task: Any) -> dict[str, Any]:
    """What a run records about its task (summary.json's "task"; a resume checks it is unchanged): its class,
    its `settings()` and the shape of the model it needs.

    Example:
        >>> describe(TensorTask(torch.rand(100, 10, 1), torch.rand(100, 1), batch_size=20))
        {'class': 'rnnlab.tasks.base.TensorTask', 'name': 'tensors', 'batch_size': 20, 'seq_len': 10,
         'train_size': 100, 'val_size': 0, 'output': 'last', 'stream': False,
         'input_size': 1, 'output_size': 1}
    """
    cls = type(task)
    own = task.settings() if hasattr(task, "settings") else {}
    fallback = {
        "name": getattr(task, "name", cls.__name__),
        "output": task.output,
        "stream": bool(getattr(task, "stream", False)),
    }
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        **own,
        **{k: v for k, v in fallback.items() if k not in own},
        "input_size": task.input_size,
        "output_size": task.output_size,
    }
