"""What the training loop needs from a task: batches, a loss, metrics, and the shape of the model.

`rnnlab.train` asks a task for

    train_batches(generator)   one epoch of Batch(inputs (B, T, I), targets, lengths, reset)
    val_batches()              the validation batches, the same every time
    test_batches()             the test batches, scored once at the end (none by default)
    loss(outputs, targets)     a scalar tensor to minimise
    metrics(outputs, targets)  plain floats averaged over the batch, e.g. {"mae": 0.12}
    baseline()                 what a model with no memory scores on the validation batches, e.g.
                               {"loss": 0.167, "mse": 0.167}: shown beside every result

and builds or checks the model from `input_size`, `output_size` and `output`: "last" predicts once per
sequence (targets (B, O), or class indices (B,)); "sequence" predicts at every step (targets (B, T, O) or
(B, T)). Inputs are batch-first.

Inputs are float features (B, T, I), or, for a task that declares a `vocab_size` V, token ids: int64
(B, T), each in [0, V), 0 the padding. The model then embeds them (`SequenceModel(..., vocab_size=V)`,
of `[model] embedding_dim` features per token), and the task's `input_size` is V, the width of the one-hot
vectors that the ids stand for.

A registered task (`rnnlab.tasks.TASKS`, built by `rnnlab train --task NAME`) declares its settings as a
`Settings` dataclass (see `rnnlab.tasks.config`), takes them as keyword arguments of the same names and
keeps each as an attribute of that name; and it may give a `recipe`: the training settings measured to
solve it (RESULTS.md), which the command line uses for every setting the user leaves unset.

`train_batches` draws all its randomness from `generator`, which the loop seeds from the run's seed and the
epoch number: the same epoch gives the same batches, which is what makes a resumed run exact.

A task that reads real files can also prepare a file of the user's as its test split
(`input_batches(path)`: the training part's scaling, vocabulary and classes) and turn the model's outputs
into one plain row per predicted item (`prediction_rows`): what `rnnlab evaluate RUN --input FILE` and
`rnnlab predict` use. A classifier's rows come from its `classes`; the other tasks raise a ConfigError.

A task whose model is not a `SequenceModel` (`own_forward = True`: an encoder-decoder) builds it from the
run's [model] settings (`build_model`) and runs it on a batch (`forward`); the loop then trains on whole
sequences, no truncated BPTT.

A stream task (`stream = True`) cuts one long sequence per batch row into consecutive batches (`batchify`);
with `bptt.stateful` the loop carries the state from each batch into the next and resets it at the start of
every epoch and for the rows that `Batch.reset` marks (a document boundary).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.config import TaskConfig

Output = Literal["last", "sequence"]


@dataclass
class Batch:
    """One batch: inputs (B, T, I), or int64 token ids (B, T) for a task with a `vocab_size`; targets;
    optional lengths (B,); reset (B,) bool rows that start afresh; optionally ids, what each row is in the
    file it was read from (a sequence's id, a wav's name, the times a window forecasts), for
    `Task.prediction_rows`."""

    inputs: Tensor
    targets: Tensor
    lengths: Tensor | None = None
    reset: Tensor | None = None
    ids: tuple[Any, ...] | None = None

    def to(self, device: torch.device | str) -> Batch:
        lengths = None if self.lengths is None else self.lengths.to(device)
        reset = None if self.reset is None else self.reset.to(device)
        return Batch(self.inputs.to(device), self.targets.to(device), lengths, reset, self.ids)


class Task(ABC):
    """The data side of an experiment (see the module docstring)."""

    name: str = "task"
    input_size: int
    output_size: int
    output: Output = "last"
    stream: bool = False
    #: for a task whose inputs are token ids (B, T): how many ids there are (0 the padding); None: features.
    vocab_size: int | None = None
    #: a classifier's class names, class id k is `classes[k]`; empty for a task that does not classify.
    classes: tuple[str, ...] = ()
    #: True for a task whose model is no SequenceModel: it builds it (`build_model(model_config)`) and runs
    #: it (`forward(model, batch) -> outputs`), on whole sequences (the seq2seq task's encoder-decoder).
    own_forward: ClassVar[bool] = False
    #: the settings a registered task declares (a TaskConfig subclass); None for a task built in Python.
    Settings: ClassVar[type[TaskConfig] | None] = None
    #: training settings that solve this task, as config overrides {"model.cell": "lstm", ...} (RESULTS.md).
    recipe: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        """One epoch of training batches, drawn with `generator` only."""

    @abstractmethod
    def val_batches(self) -> Iterable[Batch]:
        """The validation batches (may be empty)."""

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """A scalar to minimise."""

    def test_batches(self) -> Iterable[Batch]:
        """The test batches, scored once when the run ends (none unless the task has a test split)."""
        return ()

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Task metrics on one batch (the loss is reported anyway)."""
        return {}

    def input_batches(self, path: Path, labelled: bool = True) -> list[Batch]:
        """The batches of a file (or folder) of the user's, in the format this task reads its own data in,
        prepared exactly as its test split (the training part's scaling, vocabulary, classes and feature
        order), in file order. `labelled=False` (to predict): the file may lack its labels or targets, and
        the batches' targets are placeholders (class -1, zeros) that no one reads.

        Raises:
            ConfigError: the task makes its own data and reads no files (the default).
            DataError: naming the file and what is wrong with it.
        """
        raise ConfigError(
            f"the {self.name} task generates its data and reads no input files; evaluate it on its test "
            "split: rnnlab evaluate RUN"
        )

    def prediction_rows(self, outputs: Tensor, batch: Batch) -> list[dict[str, Any]]:
        """One row of plain values (JSON and CSV can hold them) per item predicted in `batch`, from the
        model's `outputs` for it (a task with `predict` gives them: `predict(model, batch)`).

        A classifier (a task with `classes` and one output per sequence) gives, per sequence, "id" where the
        batch has ids, "predicted" (the most probable class's name), "probability" (its softmax), and
        "label" (the true class's name) where the batch holds one (a target >= 0). Any other task raises a
        ConfigError unless it has rows of its own."""
        if not self.classes or self.output != "last":
            raise ConfigError(f"the {self.name} task makes no per-item predictions")
        probabilities = torch.softmax(outputs.detach().double().cpu(), dim=-1)  # (B, C)
        best, predicted = probabilities.max(dim=-1)
        labels = batch.targets.reshape(-1).tolist()
        rows = []
        for i, (k, p, label) in enumerate(zip(predicted.tolist(), best.tolist(), labels, strict=True)):
            row: dict[str, Any] = {} if batch.ids is None else {"id": batch.ids[i]}
            row |= {"predicted": self.classes[k], "probability": p}
            if label >= 0:
                row["label"] = self.classes[label]
            rows.append(row)
        return rows

    def artifacts(self) -> dict[str, str]:
        """Files the run folder keeps beside the model, name -> text (a vocabulary: `vocab.json`), written
        when the run ends; none by default."""
        return {}

    def baseline(self) -> dict[str, float]:
        """The validation loss and metrics of a model with no memory (the mean, the majority class, the
        naive forecast): the score to beat. Empty when the task knows none."""
        return {}

    def settings(self) -> dict[str, Any]:
        """What this task was built with, as `[task]` settings: its `Settings` fields, read from the
        attributes of the same names, for a registered task; its name, output and stream otherwise.

        The run folder's config.toml records them; a subclass built in Python adds the settings it has
        (batch_size, seq_len, ...) and leaves out those it has not, rather than claiming a default."""
        if self.Settings is not None:
            own = [f.name for f in fields(self.Settings) if f.name != "name"]
            return {"name": self.name, **{name: getattr(self, name) for name in own}}
        return {"name": self.name, "output": self.output, "stream": bool(self.stream)}

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """The recipe for the task with these settings (`recipe` unless a task's depends on them)."""
        return dict(cls.recipe)

    @classmethod
    def from_config(cls, config: TaskConfig) -> Task:
        """The task built from its [task] settings (every field but the name, as keyword arguments)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(config) if f.name != "name"})


LOSSES = ("mse", "cross_entropy")


class TensorTask(Task):
    """A task from tensors in memory, like Keras' `fit(x, y)`: shuffled mini-batches, MSE or cross-entropy.

    The data is checked here, before any run starts: a DataError names what is wrong (shapes that do not
    agree, no sequence or no step, integer inputs, NaN or Inf anywhere, class indices that are not
    non-negative integers, MSE targets (N,) that would broadcast against the model's (N, 1) outputs).

    Args:
        inputs: (N, T, I) sequences of floats, N >= 1, T >= 1.
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        classify = loss == "cross_entropy"
        per_step = check_data(inputs, targets, loss, "")
        if val is not None:
            if not isinstance(val, tuple | list) or len(val) != 2:
                raise DataError("val must be a pair (inputs, targets)")
            val_per_step = check_data(val[0], val[1], loss, "val ")
            outputs_differ = not classify and val[1].shape[-1] != targets.shape[-1]
            if val_per_step != per_step or val[0].shape[-1] != inputs.shape[-1] or outputs_differ:
                raise DataError(
                    f"val inputs {tuple(val[0].shape)} and targets {tuple(val[1].shape)} must be shaped as "
                    f"the training data's, inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)}"
                )
        if classify and num_classes is not None:
            top = max(int(t.max()) for t in (targets, *(() if val is None else (val[1],))) if t.numel())
            if top >= num_classes:
                raise DataError(
                    f"targets hold class {top}, but num_classes = {num_classes} (classes 0 to "
                    f"{num_classes - 1})"
                )
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


def check_data(inputs: Tensor, targets: Tensor, loss: str, which: str = "") -> bool:
    """A DataError naming what is wrong with `inputs` and `targets` for `loss` (see TensorTask); returns
    whether the targets are per step. `which` ("val ") names the data in the messages."""
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise DataError(
            f"{which}inputs and targets must be tensors, got {type(inputs).__name__} and "
            f"{type(targets).__name__}"
        )
    if inputs.dim() != 3:
        raise DataError(f"{which}inputs must be (N, T, I), got shape {tuple(inputs.shape)}")
    N, T, _ = inputs.shape
    if N == 0 or T == 0 or inputs.shape[2] == 0:
        raise DataError(
            f"{which}inputs {tuple(inputs.shape)} hold no data: N sequences of T steps of I "
            "features, each at least 1"
        )
    if not inputs.is_floating_point():
        raise DataError(
            f"{which}inputs must be floating point, got {inputs.dtype}: convert them with .float()"
        )
    if targets.dim() == 0 or targets.shape[0] != N:
        got = tuple(targets.shape)
        raise DataError(f"{N} {which}input sequences but {got[0] if got else 'no'} targets (shape {got})")
    classify = loss == "cross_entropy"
    per_step = targets.dim() == (2 if classify else 3)
    if classify:
        if targets.dim() not in (1, 2):
            raise DataError(
                f"{which}class targets must be (N,) or (N, T) indices, got {tuple(targets.shape)}"
            )
        if targets.is_floating_point() or targets.dtype == torch.bool or targets.is_complex():
            raise DataError(
                f"{which}class targets must be integer class indices, got {targets.dtype}: "
                "convert them with .long() (or use loss='mse' for real values)"
            )
        if bool((targets < 0).any()):
            raise DataError(f"{which}class targets must be >= 0, got {int(targets.min())}")
    else:
        if targets.dim() == 1:
            raise DataError(
                f"{which}MSE targets must be (N, O) or (N, T, O), got {tuple(targets.shape)}, which "
                f"would broadcast against the model's outputs: for one value per sequence pass "
                f"targets.unsqueeze(-1), shape ({N}, 1)"
            )
        if targets.dim() not in (2, 3):
            raise DataError(f"{which}MSE targets must be (N, O) or (N, T, O), got {tuple(targets.shape)}")
        if not targets.is_floating_point():
            raise DataError(
                f"{which}MSE targets must be floating point, got {targets.dtype}: convert them with .float()"
            )
    if per_step and targets.shape[1] != T:
        raise DataError(f"per-step {which}targets have {targets.shape[1]} steps, inputs {T}")
    for name, t in (("inputs", inputs), ("targets", targets)):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            at = tuple(int(i) for i in torch.nonzero(~torch.isfinite(t))[0])
            raise DataError(f"{which}{name} contain NaN or Inf (the first at {list(at)}: {t[at].item()})")
    return per_step


def class_ids(names: Iterable[str], classes: tuple[str, ...], where: str) -> Tensor:
    """int64 (N,): the index in `classes` (the training part's) of each label name; a DataError starting
    with `where` (the file) naming the first label that is not a class, and the classes there are."""
    index = {name: k for k, name in enumerate(classes)}
    ids = []
    for name in names:
        if name not in index:
            known = ", ".join(map(repr, classes))
            raise DataError(f"{where}: the label {name!r} is not one of the run's classes: {known}")
        ids.append(index[name])
    return torch.tensor(ids, dtype=torch.int64)


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
