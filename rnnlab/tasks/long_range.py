"""The long-range benchmarks of the vanishing-gradient literature, generated: the adding and copy problems.

Both are endless: every training batch is drawn fresh from the run's generator (so a resumed run sees the
same data), and the model is scored on fixed validation and test sets drawn from the task's own seed. Each
reports the score of a model with no memory beside its own (`baseline`), which is the line to cross: a
network that cannot carry information over `length` (or `delay`) steps sits exactly there.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.settings import option
from rnnlab.tasks.base import Batch, Task
from rnnlab.tasks.config import TaskConfig

#: training batches per epoch of a generated task. The data never repeats; the loop seeds each epoch's
#: generator from the run's seed, and a resume replays at most one epoch to reach its position.
EPOCH_BATCHES = 100


class GeneratedTask(Task):
    """A task whose data is drawn from a generator: `sample(n, generator)` gives (inputs, targets)."""

    batch_size: int
    val_size: int
    test_size: int
    seed: int

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """`n` sequences and their targets, drawn with `generator` only."""

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        for _ in range(EPOCH_BATCHES):
            yield Batch(*self.sample(self.batch_size, generator))

    def val_batches(self) -> Iterable[Batch]:
        return self._fixed("val", self.val_size)

    def test_batches(self) -> Iterable[Batch]:
        return self._fixed("test", self.test_size)

    def _fixed(self, split: str, size: int) -> list[Batch]:
        """The validation or test set: drawn once from the task's seed (a generator of its own per split,
        so neither depends on the other's size), cut into batches."""
        cache = self.__dict__.setdefault("_sets", {})
        if split not in cache:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + {"val": 1, "test": 2}[split])
            inputs, targets = self.sample(size, generator) if size else (None, None)
            step = max(self.batch_size, 256)
            cache[split] = [
                Batch(inputs[i : i + step], targets[i : i + step])  # type: ignore[index]
                for i in range(0, size, step)
            ]
        return cache[split]


class AddingTask(GeneratedTask):
    """The adding problem (Hochreiter & Schmidhuber 1997; the setup of Le et al. 2015 and Arjovsky et al.
    2016): sum the two values that are marked in a sequence of `length` random numbers.

        step         0     1     2    ...   T/2  ...   T-1
        value      0.31  0.85  0.07   ...  0.52  ...  0.66      each U(0, 1)
        marker       0     1     0    ...    1   ...    0       one in each half
        target     0.85 + 0.52 = 1.37                            read once, after the last step

    Inputs (B, T, 2), targets (B, 1); loss and metric: the mean squared error. A model with no memory
    predicts the mean sum, 1, and scores Var(u₁ + u₂) = 2/12 = 1/6: the baseline.

    Args:
        length: time steps T (at least 2).
        batch_size: sequences per training batch.
        val_size, test_size: sequences in the fixed validation and test sets.
        seed: seed of those sets (training batches come from the run's generator).
    """

    name = "adding"
    input_size, output_size, output = 2, 1, "last"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("adding", "task to train on, from rnnlab.tasks.TASKS")
        length: int = option(100, "time steps T; the two marked values lie one in each half", min=2)
        batch_size: int = option(50, "sequences per training batch, drawn fresh every step", min=1)
        val_size: int = option(1000, "sequences in the fixed validation set", min=1)
        test_size: int = option(1000, "sequences in the fixed test set, scored at the end", min=0)
        seed: int = option(0, "seed of the validation and test sets", min=0)

    def __init__(
        self,
        length: int = 100,
        batch_size: int = 50,
        val_size: int = 1000,
        test_size: int = 1000,
        seed: int = 0,
    ) -> None:
        if length < 2:
            raise ValueError(f"length must be at least 2 (one marked value in each half), got {length}")
        self.length, self.batch_size, self.val_size, self.test_size, self.seed = (
            length,
            batch_size,
            val_size,
            test_size,
            seed,
        )

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """A small chrono LSTM (Tallec & Ollivier 2018, T_max = the length) with a large learning rate and
        norm clipping, stopping once the validation MSE is below 0.01: it solves T = 1000 in ~1000 steps
        (about a minute on one core, RESULTS.md), where the obvious H = 128 at lr 2e-3 has not begun to
        learn after 1700 steps. H = 32 because at long T a step's cost is per-step overhead, not FLOPs."""
        length = getattr(config, "length", 100)
        return {
            "model.cell": "lstm",
            "model.hidden_size": 32,
            "model.chrono": float(max(length, 3)),
            "optim.name": "adam",
            "optim.lr": 1e-2,
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "steps": 5000,
            "eval.every": 100,
            "eval.metric": "mse",
            "eval.target": 0.01,
            "checkpoint.every": 500,
        }

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        T, half = self.length, self.length // 2
        values = torch.rand(n, T, generator=generator)
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, T, (n,), generator=generator)
        markers = torch.zeros(n, T)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = (values[rows, first] + values[rows, second]).unsqueeze(-1)
        return torch.stack([values, markers], -1), targets

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(outputs, targets)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        return {"mse": float(F.mse_loss(outputs, targets))}

    def baseline(self) -> dict[str, float]:
        return {"loss": 1 / 6, "mse": 1 / 6}


#: the copy task's classes: 0 the blank, 1..alphabet the symbols, alphabet + 1 the delimiter (input only).
BLANK = 0


class CopyTask(GeneratedTask):
    """The copy problem of Arjovsky et al. 2016: see `count` symbols, wait `delay` steps, recall them.

        input    3 7 1 4 …  _ _ _ … _ : _ _ _ …        `count` symbols from 1..`alphabet`, delay - 1
        target   _ _ _ _ …  _ _ _ … _ _ 3 7 1 4 …      blanks, the delimiter ":", `count` blanks;
                 └ count ┘  └─ delay - 1 ─┘ └ count ┘     recall after the delimiter

    Sequences of delay + 2 * count steps; inputs one-hot (alphabet + 2 channels: blank, symbols,
    delimiter), targets a class per step (blank or a symbol: alphabet + 1 classes); the loss is the
    cross-entropy over every step. Metric "accuracy": the recalled symbols right, over the `count` recall
    steps. A model with no memory outputs blanks until the recall and guesses uniformly there: cross-entropy
    count * ln(alphabet) / (delay + 2 * count) (10 ln 8 / (T + 20) in the paper's setting), accuracy
    1 / alphabet; the baseline.

    Args:
        delay: steps T between the last symbol and the first recall (the paper's T).
        count: symbols to copy (10 in the paper).
        alphabet: distinct symbols (8 in the paper).
        batch_size, val_size, test_size, seed: as for the adding task.
    """

    name = "copy"
    output = "sequence"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("copy", "task to train on, from rnnlab.tasks.TASKS")
        delay: int = option(100, "steps T between the last symbol seen and the first recalled", min=1)
        count: int = option(10, "symbols to remember and recall", min=1)
        alphabet: int = option(8, "distinct symbols", min=2)
        batch_size: int = option(128, "sequences per training batch, drawn fresh every step", min=1)
        val_size: int = option(1000, "sequences in the fixed validation set", min=1)
        test_size: int = option(1000, "sequences in the fixed test set, scored at the end", min=0)
        seed: int = option(0, "seed of the validation and test sets", min=0)

    def __init__(
        self,
        delay: int = 100,
        count: int = 10,
        alphabet: int = 8,
        batch_size: int = 128,
        val_size: int = 1000,
        test_size: int = 1000,
        seed: int = 0,
    ) -> None:
        if delay < 1 or count < 1 or alphabet < 2:
            raise ValueError(
                f"need delay >= 1, count >= 1 and alphabet >= 2, got {delay}, {count}, {alphabet}"
            )
        self.delay, self.count, self.alphabet = delay, count, alphabet
        self.batch_size, self.val_size, self.test_size, self.seed = batch_size, val_size, test_size, seed
        self.input_size, self.output_size = alphabet + 2, alphabet + 1

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """The orthogonal cell (expRNN: W_hh kept orthogonal, modReLU, Henaff init), where LSTM and GRU sit
        at the baseline for thousands of steps: it solves T = 200 in ~300 steps (RESULTS.md)."""
        return {
            "model.cell": "orthogonal",
            "model.hidden_size": 128,
            "task.batch_size": 64,
            "optim.name": "adam",
            "optim.lr": 1e-3,
            "steps": 4000,
            "eval.every": 100,
            "eval.metric": "accuracy",
            "eval.mode": "max",
            "eval.target": 0.99,
            "checkpoint.every": 500,
        }

    @property
    def length(self) -> int:
        """Steps per sequence: delay + 2 * count."""
        return self.delay + 2 * self.count

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        k, T = self.count, self.length
        symbols = torch.randint(1, self.alphabet + 1, (n, k), generator=generator)
        seen = torch.full((n, T), BLANK, dtype=torch.long)
        seen[:, :k] = symbols
        seen[:, T - k - 1] = self.alphabet + 1  # the delimiter: recall from the next step on
        targets = torch.full((n, T), BLANK, dtype=torch.long)
        targets[:, T - k :] = symbols
        return F.one_hot(seen, self.alphabet + 2).float(), targets

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Accuracy over the recall steps, found as the steps whose target is a symbol (never blank): the
        loop hands a per-step task its valid steps as one sequence, so positions are not known here."""
        recall = targets != BLANK
        right = (outputs.argmax(-1) == targets) & recall
        return {"accuracy": float(right.sum() / recall.sum().clamp(min=1))}

    def baseline(self) -> dict[str, float]:
        return {"loss": self.count * math.log(self.alphabet) / self.length, "accuracy": 1 / self.alphabet}


__all__ = ["EPOCH_BATCHES", "AddingTask", "CopyTask", "GeneratedTask"]
