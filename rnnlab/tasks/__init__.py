"""Tasks: the data, loss and metrics of an experiment (see `rnnlab.tasks.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rnnlab.tasks.base import Batch, Task, TensorTask, batchify
from rnnlab.tasks.synthetic import SineTask

if TYPE_CHECKING:
    from rnnlab.training.config import TaskConfig

#: task name -> class with `from_config(TaskConfig)`; `rnnlab train --task NAME` picks from these.
TASKS: dict[str, Any] = {"sine": SineTask}


def make_task(config: TaskConfig) -> Task:
    """The task named by `config.name`, built from the `[task]` settings."""
    from rnnlab.training.config import ConfigError

    if config.name not in TASKS:
        raise ConfigError(f"task.name: unknown task {config.name!r}; available: {', '.join(TASKS)}")
    return TASKS[config.name].from_config(config)


__all__ = ["TASKS", "Batch", "SineTask", "Task", "TensorTask", "batchify", "make_task"]
