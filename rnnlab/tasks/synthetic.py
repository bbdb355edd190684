"""A tiny synthetic task for tests and examples: continue a sine wave."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnlab.settings import option
from rnnlab.tasks.base import Batch, Output, TensorTask, batchify
from rnnlab.tasks.config import TaskConfig


def sine_waves(n: int, length: int, generator: torch.Generator) -> Tensor:
    """(n, length, 1) waves sin(ω t + φ) with ω ~ U(0.1, 0.6) and φ ~ U(0, 2π), one (ω, φ) per row."""
    omega = 0.1 + 0.5 * torch.rand(n, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, generator=generator)
    t = torch.arange(length, dtype=torch.float32)
    return torch.sin(omega * t + phase).unsqueeze(-1)


class SineTask(TensorTask):
    """Predict the next value of a sine wave from the values before it (MSE; metric: mean absolute error).

        x_t = sin(ω t + φ), one ω ~ U(0.1, 0.6) and φ ~ U(0, 2π) per sequence
        output "last":      inputs x_0 … x_{T-1}, target x_T
        output "sequence":  target x_{t+1} at every step t

    Example, ω = 0.5, φ = 0, T = 4: inputs [0.000, 0.479, 0.841, 0.997], target sin(2.0) = 0.909.
    Predicting 0 scores an MSE of about 0.5; a model that has worked out ω and φ scores near 0.

    With `stream=True` every batch row is one long wave cut into consecutive batches (`batchify`), targets
    per step: a model that carries its state across batches (`bptt.stateful`) knows the wave's phase from
    the first step of every batch, one that starts each batch from zero must work it out again.

    Args:
        seq_len: steps per sequence (per batch, for a stream).
        train_size, val_size: sequences (for a stream, train_size // batch_size consecutive batches).
        batch_size: sequences per batch.
        output: "last" or "sequence" (a stream always predicts every step).
        stream: one long wave per batch row, see above.
        seed: seed of the data (the waves), independent of training.
    """

    name = "sine"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("sine", "task to train on, from rnnlab.tasks.TASKS")
        seq_len: int = option(10, "time steps per sequence (or per batch of a stream)", min=1)
        train_size: int = option(1000, "training sequences", min=1)
        val_size: int = option(200, "validation sequences (0: no validation)", min=0)
        batch_size: int = option(32, "sequences per batch", min=1)
        output: str = option(
            "last", "predict once per sequence or at every step", choices=("last", "sequence")
        )
        stream: bool = option(False, "one long wave per batch row, consecutive batches continue it")
        seed: int = option(0, "seed of the waves, independent of the training seed", min=0)

    def __init__(
        self,
        seq_len: int = 10,
        train_size: int = 1000,
        val_size: int = 200,
        batch_size: int = 32,
        output: Output = "last",
        stream: bool = False,
        seed: int = 0,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self._settings = {
            "batch_size": batch_size,
            "seq_len": seq_len,
            "train_size": train_size,
            "val_size": val_size,
            "seed": seed,
        }
        if not stream:
            waves = sine_waves(train_size + val_size, seq_len + 1, g)  # (N, T + 1, 1)
            x = waves[:, :-1]
            y = waves[:, 1:] if output == "sequence" else waves[:, -1]
            val = (x[train_size:], y[train_size:]) if val_size else None
            super().__init__(x[:train_size], y[:train_size], batch_size=batch_size, val=val, name=self.name)
            return
        self.stream, self.output = True, "sequence"
        self.input_size, self.output_size, self.loss_name, self.batch_size = 1, 1, "mse", batch_size
        n_train, n_val = max(1, train_size // batch_size), val_size // batch_size
        self.train_stream = self._stream(batch_size, n_train * seq_len, seq_len, g)
        self.val_stream = self._stream(batch_size, n_val * seq_len, seq_len, g) if n_val else []

    @staticmethod
    def _stream(rows: int, length: int, seq_len: int, g: torch.Generator) -> list[Batch]:
        waves = sine_waves(rows, length + 1, g)  # (B, L + 1, 1)
        return batchify(waves[:, :-1], waves[:, 1:], seq_len)

    def settings(self) -> dict[str, Any]:
        """As given (a stream predicts every step): `from_config` with these makes the same waves."""
        s = self._settings
        return {
            "name": self.name,
            **{k: s[k] for k in ("batch_size", "seq_len", "train_size", "val_size")},
            "output": self.output,
            "stream": self.stream,
            "seed": s["seed"],
        }

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        return self.train_stream if self.stream else super().train_batches(generator)

    def val_batches(self) -> Iterable[Batch]:
        return self.val_stream if self.stream else super().val_batches()
