"""What a run folder records about the model and the task it trained, whoever built them.

    config.toml    [task]  the task's `settings()`;  [model]  the SequenceModel's `settings()`
    summary.json   "task": `describe(task)`;  "model": {"class", "parameters", "settings"}

The command line builds both from the config, so these agree with it. A model or task built in Python and
handed to `rnnlab.train` is described by its own settings instead, never by defaults it was not built
with: a model whose settings a TOML file cannot hold (not a SequenceModel, an unregistered cell, a callable
initialiser) gets no [model] section, and a comment at the top of config.toml says why.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import tomli_w
from torch import nn

from rnnlab.tasks.base import describe
from rnnlab.training import config as cfg

#: what `describe(task)` adds to a task's settings: recorded in summary.json, not in [task].
DESCRIBED = ("class", "input_size", "output_size")


@dataclass
class Sections:
    """config.toml's [task] and [model] for one run; `model` None leaves the section out, for `notes`."""

    task: dict[str, Any]
    model: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def model_class(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def sections(model: nn.Module, task: Any) -> Sections:
    """The [task] and [model] settings of `model` and `task`, checked as a config file would be."""
    if getattr(task, "Settings", None) is not None:  # a registered task: exactly the settings it declares
        task_settings = task.settings()
    else:
        task_settings = {k: v for k, v in describe(task).items() if k not in DESCRIBED}
    cfg.from_dict({"task": task_settings}, source=f"settings() of the task {type(task).__name__}")
    settings, unrecorded = _model_settings(model)
    if settings is None:
        note = (
            f"[model] is left out: the model is a {model_class(model)}, not an rnnlab.SequenceModel, so no "
            "[model] settings describe it; summary.json records its class and parameter count"
        )
        return Sections(task_settings, None, [note])
    if unrecorded:
        why = "; ".join(f"{name}: {reason}" for name, reason in unrecorded.items())
        note = (
            f"[model] is left out: a TOML file cannot hold every setting of this {type(model).__name__} "
            f'({why}); summary.json "model" records the others'
        )
        return Sections(task_settings, None, [note])
    settings = {k: v for k, v in settings.items() if v is not None}
    cfg.from_dict({"model": settings}, source=f"settings() of the model {type(model).__name__}")
    return Sections(task_settings, settings)


def config_text(config: cfg.TrainConfig, recorded: Sections | None = None) -> str:
    """config.toml: `config` with [task] and [model] as `recorded` says (as `config` has them for None)."""
    if recorded is None:
        return cfg.dumps(config)
    data = cfg.to_dict(config)
    data["task"] = recorded.task
    if recorded.model is None:
        del data["model"]
    else:
        data["model"] = recorded.model
    comments = "".join(f"# {line}\n" for note in recorded.notes for line in textwrap.wrap(note, 100))
    return comments + tomli_w.dumps(data)


def describe_model(model: nn.Module) -> dict[str, Any]:
    """summary.json's "model": its class, its parameter count and (for a SequenceModel) its settings."""
    out: dict[str, Any] = {
        "class": model_class(model),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    settings, unrecorded = _model_settings(model)
    if settings is not None:
        out["settings"] = settings
    if unrecorded:
        out["unrecorded_settings"] = unrecorded
    return out


def _model_settings(model: nn.Module) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(settings, option -> why it is not in them) of a model with `settings()` (a SequenceModel), else
    (None, {})."""
    settings = getattr(model, "settings", None)
    if not callable(settings):
        return None, {}
    unrecorded = getattr(model, "unrecorded_settings", None)
    return settings(), unrecorded() if callable(unrecorded) else {}
