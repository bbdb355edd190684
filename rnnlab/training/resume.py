"""What a resumed run keeps, and what it may change on top of the state it restores.

    rnnlab train --resume runs/sine --steps 2000 --optim.lr=1e-4 --clip.mode=norm

A checkpoint holds the config it was written under; a resume compares the new config with it.
- Kept: the task (its settings and shapes), the model (its class and settings), `optim.name`, `seed` and
  `bptt.*`. They give the weights, the optimiser's state and the position in the data stream their
  meaning, so a change is a ConfigError naming the field, raised before the run folder is touched.
- Changed on top of the restored state: everything else (steps, the learning rate and its schedule,
  weight decay, betas, eps, momentum, clipping, the guard, evaluation, checkpointing, diagnostics,
  logging, the device). The restored optimiser gets the new hyper-parameters, the schedule continues
  at the step reached with the new base rate or factors, and a new validation metric or mode starts its
  best value afresh. events.jsonl gets a "resume_changes" line and config.toml the new values, so a
  resumed run with changes is the run that made those changes at that step.

Where a resume starts (`checkpoint_and_folder`, `load_checkpoint`: a checkpoint that does not load names
the ones that do) and where it ends: a run whose summary.json does not say its last step (`finished`) was
cut off before writing its ending, and a resume to that same step writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rnnlab.errors import CheckpointError, ConfigError
from rnnlab.tasks.base import describe
from rnnlab.training import checkpoint, record
from rnnlab.training import config as cfg
from rnnlab.training.build import Scheduler, resume_schedule, set_hyper_parameters
from rnnlab.training.checkpoint import Checkpoints
from rnnlab.training.evaluate import Best
from rnnlab.training.run import RunDir, resume_folder, unstarted

#: settings a resumed run keeps (besides optim.name, the task and the model, checked by what they hold).
KEPT = ("seed", "bptt.")
#: settings not compared: the folder's path, and the config's own [task] and [model], which a task or model
#: built in Python need not follow (their settings are compared instead).
IGNORED = ("out", "model.", "task.")


def changes(saved: Mapping[str, Any], config: cfg.TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Every setting of `config` that differs from the checkpoint's `saved` config: name -> (old, new)."""
    old, new = dict(cfg._flatten(saved)), dict(cfg._flatten(cfg.to_dict(config)))
    found = {}
    for name, _, _ in cfg.fields(config):
        if name.startswith(IGNORED):
            continue
        a, b = _plain(old.get(name)), _plain(new.get(name))
        if a != b:
            found[name] = (a, b)
    return found


def check_kept(
    payload: Mapping[str, Any], path: Path, config: cfg.TrainConfig, task: Any, model: Any
) -> None:
    """A ConfigError naming the first kept setting (see the module docstring) that `config`, `task` or
    `model` changes against the checkpoint `payload` read from `path`."""
    run = path.parent.parent
    saved_task, wanted = payload["task"], describe(task)
    for key in sorted(saved_task.keys() & wanted.keys()):
        if saved_task[key] != wanted[key]:
            raise ConfigError(
                f"task.{key}: the run in {run} was trained with {saved_task[key]!r}, got {wanted[key]!r}; "
                "a resumed run keeps its data, so it can continue exactly"
            )
    saved = payload["config"]["optim"]["name"]
    if saved != config.optim.name:
        raise ConfigError(
            f"optim.name: {path} holds the state of {saved!r}, got {config.optim.name!r}; "
            "a resumed run keeps its optimiser"
        )
    trained, now = payload.get("model_settings"), record.describe_model(model)  # None: an older checkpoint
    if trained is not None and trained["class"] != now["class"]:
        raise ConfigError(
            f"model: the run in {run} trained a {trained['class']}, got a {now['class']}; "
            "a resumed run keeps the model it was trained with"
        )
    old, new = (trained or {}).get("settings") or {}, now.get("settings") or {}
    for key in sorted(old.keys() & new.keys()):
        if old[key] != new[key]:
            raise ConfigError(
                f"model.{key}: the run in {run} was trained with {old[key]!r}, got {new[key]!r}; "
                "a resumed run keeps the model it was trained with"
            )
    for name, (a, b) in changes(payload["config"], config).items():
        if name.startswith(KEPT):
            raise ConfigError(
                f"{name}: the run in {run} was trained with {a!r}, got {b!r}; a resumed run keeps its seed "
                "and its windows of the data, so it continues the data stream exactly"
            )


def apply_changes(
    changed: Mapping[str, tuple[Any, Any]],
    config: cfg.TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler,
    best: Best,
    step: int,
) -> None:
    """Put the `changed` settings of `config` on the optimiser, schedule and best value restored at
    `step` (the others come from the config when the loop uses them: steps, clipping, the guard, ...)."""
    set_hyper_parameters(optimizer, config.optim)
    new_lr = "optim.lr" in changed or "schedule.name" in changed  # a new schedule starts from optim.lr
    if new_lr or "steps" in changed or any(name.startswith("schedule.") for name in changed):
        resume_schedule(optimizer, scheduler, config.schedule, config.optim.lr if new_lr else None, step)
    if "eval.metric" in changed or "eval.mode" in changed:
        best.load_state_dict(Best(config.eval).state_dict())  # the old best is of another measure


def checkpoint_and_folder(resume: Path) -> tuple[Path, Path]:
    """(checkpoint, run folder) from a run folder (its latest checkpoint) or a checkpoint file in one."""
    if resume.is_file():
        return resume, resume_folder(resume)
    latest = Checkpoints(resume / "checkpoints").latest()
    if latest is None:
        again = f"; it completed no step, so start it again with --out {resume}" if unstarted(resume) else ""
        raise CheckpointError(f"cannot resume {resume}: no checkpoints in {resume / 'checkpoints'}{again}")
    return latest, resume_folder(resume)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Checkpoint `path` to resume from; if it does not load, the error names the older ones that do."""
    try:
        return checkpoint.load(path)
    except CheckpointError as e:
        others = checkpoint.alternatives(path)
        if not others:
            raise
        raise CheckpointError(
            f"{e}; these checkpoints load: {', '.join(p.name for p in others)}, so resume from the newest "
            f"with --resume {others[0]} (resume=...)"
        ) from None


def finished(run: RunDir, step: int) -> bool:
    """Whether the run's ending at `step` is written: its summary.json, written last, says that step."""
    try:
        return json.loads((run.path / "summary.json").read_text()).get("steps") == step
    except (OSError, ValueError):
        return False


def how_to_resume(run: RunDir, recorded: record.Sections) -> str:
    """How to go on with the run in `run`: the command line, or rnnlab.train for a model or task built in
    Python (which the command line cannot rebuild)."""
    from rnnlab.tasks import TASKS

    if recorded.model is None or recorded.task.get("name") not in TASKS:
        return f"rnnlab.train(model, task, resume={str(run.path)!r})"
    return f"rnnlab train --resume {run.path}"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
