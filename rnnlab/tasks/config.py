"""The `[task]` settings: which task to build, and the typed settings that task declares.

    [task]                      rnnlab train --task adding --task.length 1000
    name = "adding"
    length = 1000

Every task owns its settings: a registered task class has a `Settings` dataclass, a subclass of
`TaskConfig` (which holds only `name`), whose fields are declared with `rnnlab.settings.option` like the
training config's, so the command line's flags, the TOML reader, `--help` and the error messages come from
them. A setting the task does not declare is an error naming the task and the settings it has
(`rnnlab.training.config`). A task built in Python describes itself in the same terms (`Task.settings()`),
so a run folder's config.toml says what was trained either way; for a task that is not registered those
recorded values are kept as they are (`recorded_settings`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from rnnlab.settings import option


@dataclass
class TaskConfig:
    """The setting every task has: its name. A task's own `Settings` subclass adds the rest."""

    name: str = option("sine", "task to train on, from rnnlab.tasks.TASKS")


def recorded_settings(values: dict[str, Any]) -> TaskConfig:
    """The [task] section of a task that is not registered (one built in Python), kept as recorded: a
    TaskConfig subclass made on the fly with one field per value, typed by it."""
    fields = [(key, type(value), _recorded(value)) for key, value in values.items() if key != "name"]
    cls = dataclasses.make_dataclass("RecordedTaskSettings", fields, bases=(TaskConfig,))
    return cls(**values)


def _recorded(value: Any) -> Any:
    """The field of one recorded value (a list's default is a copy made for each instance)."""
    help = {"help": "recorded from the task's settings()"}
    if isinstance(value, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=help)
    return option(value, help["help"])


__all__ = ["TaskConfig", "recorded_settings"]
