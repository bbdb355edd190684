"""The config fields as flags: `--steps`, `--section.key=value`, a task's own settings under `--task.`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rnnlab.errors import ConfigError, UserError
from rnnlab.training import config as cfg


def named_task(argv: Sequence[str]) -> str | None:
    """The task that `--task NAME` or `--task=NAME` names in `argv` (None: none named)."""
    for i, item in enumerate(argv):
        if item == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if item.startswith("--task="):
            return item.split("=", 1)[1]
    return None


def add_config_flags(
    parser: argparse.ArgumentParser,
    config: cfg.TrainConfig,
    recipe: dict[str, Any] | None = None,
    skip: Sequence[str] = (),
) -> None:
    """A flag for every field of `config`, `--steps` or `--section.key` (its [task] fields those of the
    task it names), with its help, what it allows and its default, marked where the task's recipe sets it;
    `skip` names fields the command gives flags of its own."""
    recipe = recipe or {}
    groups: dict[str, Any] = {}
    for name, f, tp in cfg.fields(config):
        if name == "task.name" or name in skip:
            continue  # --task
        section = name.split(".")[0] if "." in name else ""
        if section not in groups:
            title = f"[{section}]" if section else "run settings"
            if section == "task":
                title += f" of the {config.task.name} task"
            groups[section] = parser.add_argument_group(title)
        bool_flag = {"nargs": "?", "const": "true"} if tp is bool else {}
        *path, key = name.split(".")
        default = getattr(getattr(config, path[0]) if path else config, key)
        source = "recipe" if name in recipe else "default"
        groups[section].add_argument(
            f"--{name}",
            dest=name,
            metavar="V",
            default=argparse.SUPPRESS,
            help=f"{f.metadata['help']} ({cfg.allowed(f, tp)}; {source} {default!r})".replace("%", "%%"),
            **bool_flag,
        )


def config_overrides(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """The config values given as flags; unknown flags, `--section.key=value` or `--section.key value`,
    become errors naming them (when the config is built)."""
    top = {name for name, _, _ in cfg.fields() if "." not in name}
    overrides = {name: value for name, value in vars(args).items() if "." in name or name in top}
    i = 0
    while i < len(extra):
        item = extra[i]
        key, equals, value = item.lstrip("-").partition("=")
        if not item.startswith("--") or not key:
            raise ConfigError(f"unexpected argument {item!r}")
        if not equals and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            i, value = i + 1, extra[i + 1]  # `--flag value`: the next argument is its value
        overrides[key] = value
        i += 1
    return overrides


def add_task_and_config_flags(
    parser: argparse.ArgumentParser, argv: Sequence[str], help: str = "the task", skip: Sequence[str] = ()
) -> None:
    """`--task NAME` and a flag for every config field (`add_config_flags`), their defaults those of the
    task `argv` names with its recipe marked; a bad value there is the command's error to say, later."""
    from rnnlab.tasks import TASKS

    name = named_task(argv)
    try:
        defaults, recipe = cfg.compose({"task.name": name} if name in TASKS else {})
    except UserError:
        defaults, recipe = cfg.TrainConfig(), {}
    parser.add_argument(
        "--task",
        dest="task.name",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"{help}: {', '.join(TASKS)} (default {defaults.task.name})",
    )
    add_config_flags(parser, defaults, recipe, skip)
