"""Tasks: the data, loss and metrics of an experiment (see `rnnlab.tasks.base`), and their settings.

Tasks are data: this package imports nothing from `rnnlab.training` or `rnnlab.diagnostics`.
"""

from __future__ import annotations

from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Batch, Task, TensorTask, batchify, describe
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.synthetic import SineTask

#: task name -> class with `from_config(TaskConfig)`; `rnnlab train --task NAME` picks from these.
TASKS: dict[str, Any] = {"sine": SineTask}


def make_task(config: TaskConfig) -> Task:
    """The task named by `config.name`, built from the `[task]` settings."""
    if config.name not in TASKS:
        raise ConfigError(f"task.name: unknown task {config.name!r}; available: {', '.join(TASKS)}")
    return TASKS[config.name].from_config(config)


__all__ = [
    "TASKS",
    "Batch",
    "SineTask",
    "Task",
    "TaskConfig",
    "TensorTask",
    "batchify",
    "describe",
    "make_task",
]
