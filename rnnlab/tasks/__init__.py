"""Tasks: the data, loss and metrics of an experiment (see `rnnlab.tasks.base`), and their settings.

    sine     continue a sine wave (a tiny task for tests and examples)
    adding   sum two marked values among `length` random numbers (long_range.py)
    copy     recall `count` symbols after `delay` blank steps (long_range.py)
    images   classify digits or clothes read a row or a pixel per step (images.py)
    charlm   predict the next character of Shakespeare, the stdlib's source or your text (text.py)
    forecast the next steps of a series: bundled (airline, co2, ...) or your CSV (forecast.py)
    classify label speech (JapaneseVowels, a folder of wavs) or your sequences of any length (classify.py)
    text     label texts by their tokens: Rotten Tomatoes' sentiment or your CSV (text_classify.py)

Tasks are data: this package imports nothing from `rnnlab.training` or `rnnlab.diagnostics`.
"""

from __future__ import annotations

from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Batch, Task, TensorTask, batchify, describe
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.tasks.config import TaskConfig, recorded_settings
from rnnlab.tasks.forecast import ForecastTask
from rnnlab.tasks.images import SequentialImagesTask
from rnnlab.tasks.long_range import AddingTask, CopyTask
from rnnlab.tasks.seq2seq import Seq2SeqTask
from rnnlab.tasks.synthetic import SineTask
from rnnlab.tasks.text import CharLMTask
from rnnlab.tasks.text_classify import TextTask

#: task name -> class, each with its `Settings`; `rnnlab train --task NAME` picks from these.
TASKS: dict[str, type[Task]] = {
    "sine": SineTask,
    "adding": AddingTask,
    "copy": CopyTask,
    "images": SequentialImagesTask,
    "charlm": CharLMTask,
    "classify": ClassifyTask,
    "forecast": ForecastTask,
    "text": TextTask,
    "seq2seq": Seq2SeqTask,
}


def task_settings(name: str, **values: Any) -> TaskConfig:
    """The [task] settings of the task `name`: its `Settings` with `values` set (a registered task), or the
    values as recorded (`recorded_settings`, a task built in Python). Checked by `rnnlab.training.config`.

    Example:
        >>> task_settings("adding", length=1000)
        AddingTask.Settings(name='adding', length=1000, batch_size=50, val_size=1000, test_size=1000, seed=0)
    """
    cls = TASKS[name].Settings if name in TASKS else None
    if cls is None:
        return recorded_settings({"name": name, **values})
    return cls(name=name, **values)


def make_task(config: TaskConfig) -> Task:
    """The task named by `config.name`, built from its [task] settings."""
    if config.name not in TASKS:
        raise ConfigError(f"task.name: unknown task {config.name!r}; available: {', '.join(TASKS)}")
    return TASKS[config.name].from_config(config)


__all__ = [
    "TASKS",
    "AddingTask",
    "Batch",
    "CharLMTask",
    "ClassifyTask",
    "CopyTask",
    "ForecastTask",
    "SequentialImagesTask",
    "SineTask",
    "Task",
    "TaskConfig",
    "TensorTask",
    "TextTask",
    "Seq2SeqTask",
    "batchify",
    "describe",
    "make_task",
    "task_settings",
]
