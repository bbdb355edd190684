"""A finished (or stopped) run opened for use: its config, its task and its model with trained weights.

    run = open_run("runs/charlm-...")              # the best checkpoint, else the latest
    run.model, run.task, run.config, run.step

What `rnnlab generate`, `rnnlab forecast` and the later `evaluate`/`predict` commands read a run with. The
task and the model are rebuilt from the run's config.toml (the command line's own tasks and models; a run
whose task or model was built in Python says how to use it in Python instead), and the weights come from a
checkpoint loaded without executing pickled code (`checkpoint.load`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from rnnlab.errors import CheckpointError, ConfigError
from rnnlab.tasks import TASKS, Task, make_task
from rnnlab.training import checkpoint
from rnnlab.training import config as cfg
from rnnlab.training.build import build_model
from rnnlab.training.checkpoint import Checkpoints
from rnnlab.training.run import resume_folder


@dataclass
class SavedRun:
    """A run opened by `open_run`: the model is in eval mode, on the CPU."""

    folder: Path
    config: cfg.TrainConfig
    task: Task
    model: nn.Module
    checkpoint: Path
    step: int


def open_run(folder: str | Path, which: Literal["best", "last"] = "best") -> SavedRun:
    """Open the run in `folder` (or the run of a checkpoint file in it) with the weights of its best
    checkpoint (`which="best"`, falling back to the latest when it has none) or its latest (`"last"`).

    Raises:
        RunFolderError: no run there. CheckpointError: no checkpoint, or one that does not load.
        ConfigError: a run whose task or model was built in Python (rebuild it in Python instead).
    """
    given = Path(folder)
    folder = resume_folder(given, said="")
    config = cfg.load(folder / "config.toml")
    check_rebuildable(folder, config)
    checkpoints = Checkpoints(folder / "checkpoints")
    if given.is_file():
        path = given
    elif which == "best" and checkpoints.best.is_file():
        path = checkpoints.best
    else:
        latest = checkpoints.latest()
        if latest is None:
            raise CheckpointError(f"{folder} holds no checkpoint to load weights from")
        path = latest
    task = make_task(config.task)
    model = build_model(config.model, task)
    payload = checkpoint.load(path)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the model its config.toml describes ({e})") from None
    model.eval()
    return SavedRun(folder, config, task, model, path, int(payload.get("step", 0)))


def check_rebuildable(folder: Path, config: cfg.TrainConfig, how: str = "") -> None:
    """A run whose task or model was built in Python cannot be rebuilt from its config.toml: a ConfigError
    that says `how` to use it instead (by default: rebuild them in Python and load a checkpoint)."""
    how = how or f"rebuild it in Python and load a checkpoint of {str(folder)!r} (checkpoint.load)"
    if config.task.name not in TASKS:
        raise ConfigError(
            f"{folder}: its task {config.task.name!r} was built in Python, and the command line builds only "
            f"the tasks {', '.join(TASKS)}; {how}"
        )
    recorded: dict[str, Any] = tomllib.loads((folder / "config.toml").read_text())
    if "model" not in recorded:
        raise ConfigError(
            f"{folder}: its model was built in Python and config.toml has no [model] that describes it "
            f"(see the comment at its top); {how}"
        )


__all__ = ["SavedRun", "check_rebuildable", "open_run"]
