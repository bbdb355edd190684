"""The `[task]` settings: which registered task to build and how (`rnnlab.tasks.make_task`).

    [task]                      rnnlab train --task sine --task.seq_len=50
    name = "sine"
    seq_len = 50

A task built in Python describes itself in the same terms (`Task.settings()`), so a run folder's
config.toml says what was trained either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnlab.settings import option


@dataclass
class TaskConfig:
    name: str = option("sine", "task to train on, from rnnlab.tasks.TASKS")
    batch_size: int = option(32, "sequences per batch", min=1)
    seq_len: int = option(10, "time steps per sequence (or per chunk of a stream)", min=1)
    train_size: int = option(1000, "training sequences", min=1)
    val_size: int = option(200, "validation sequences (0: no validation)", min=0)
    output: str = option("last", "predict once per sequence or at every step", choices=("last", "sequence"))
    stream: bool = option(False, "consecutive batches continue one long stream per row (for bptt.stateful)")
    seed: int = option(0, "seed of the data, independent of the training seed", min=0)


__all__ = ["TaskConfig"]
