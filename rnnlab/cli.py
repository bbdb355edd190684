"""The rnnlab command line. Each subcommand is one `add_<name>` function registering its parser and handler.

    rnnlab train --task sine --steps 500 --out runs/sine --optim.lr=3e-3 --clip.mode=norm
    rnnlab train --resume runs/sine --steps 1000          # continue that run to step 1000
    rnnlab train --config sweep.toml --quiet              # settings from a TOML file, no progress bar

Whose fault an error is decides how it is shown (`rnnlab.errors`):
- the user's (a `UserError`: a config value, a checkpoint, a run folder, NaN in the data; or an `OSError` on
  the user's files: not found, a folder, no permission, ...): one line without a traceback, exit status 2;
  a run that diverges beyond repair (`DivergedError`) exits with 1;
- anything else is a bug in rnnlab: its traceback, then a line saying so, exit status 1.
RNNLAB_TRACEBACK=1 shows the traceback of the user's errors too.

Ctrl-C or SIGTERM during a run ends its step, writes a checkpoint and the summary, prints
`interrupted at step N; resume with: rnnlab train --resume DIR` and exits with 130 (SIGINT) or 143
(SIGTERM); a second signal stops at once, in one line, with the same status.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rnnlab.errors import ConfigError, DivergedError, Interrupted, UserError
from rnnlab.text import format_number as _fmt
from rnnlab.training import config as cfg

Handler = Callable[[argparse.Namespace, list[str]], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnlab` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args, extra))
    except Interrupted as e:  # the run saved what it could and says how to go on
        print(e, file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UserError, OSError) as e:
        if os.environ.get("RNNLAB_TRACEBACK"):
            traceback.print_exc()
        print(f"rnnlab {args.command}: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, DivergedError) else 2
    except Exception:
        traceback.print_exc()
        print(
            f"rnnlab {args.command}: this is a bug in rnnlab, not in your input; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    from rnnlab import __version__

    parser = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks on long sequences, the gradient through time made visible.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


# ------------------------------------------------------------------------------------------------- train


def add_train(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a model on a task, writing a run folder",
        description="Train a model on a task. Every config field is a flag: --steps, --optim.lr, ...",
        allow_abbrev=False,
    )
    p.add_argument(
        "--task", dest="task.name", metavar="NAME", default=argparse.SUPPRESS, help="the task: sine"
    )
    p.add_argument("--config", metavar="FILE", help="a TOML config file (flags override it)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR (or from a checkpoint in it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (for CI)")
    add_config_flags(p)
    p.set_defaults(handler=run_train)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every config field, `--steps` or `--section.key`, with its help and what it allows."""
    groups: dict[str, Any] = {}
    for name, f, tp in cfg.fields():
        section = name.split(".")[0] if "." in name else ""
        if section not in groups:
            groups[section] = parser.add_argument_group(f"[{section}]" if section else "run settings")
        bool_flag = {"nargs": "?", "const": "true"} if tp is bool else {}
        groups[section].add_argument(
            f"--{name}",
            dest=name,
            metavar="V",
            default=argparse.SUPPRESS,
            help=f"{f.metadata['help']} ({cfg.allowed(f, tp)}; default {f.default!r})".replace("%", "%%"),
            **bool_flag,
        )


def config_overrides(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """The config values given as flags; unknown flags, `--section.key=value` or `--section.key value`,
    become errors naming them (when the config is built)."""
    overrides = {name: getattr(args, name) for name, _, _ in cfg.fields() if hasattr(args, name)}
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


def run_train(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.tasks import make_task
    from rnnlab.training import build_model, seed_everything, train
    from rnnlab.training.run import resume_folder

    overrides = config_overrides(args, extra)
    if args.resume:
        if args.config or "out" in overrides:
            raise ConfigError(
                "--resume DIR continues the run in DIR with its config.toml; drop --config/--out"
            )
        folder = resume_folder(args.resume)
        base = cfg.load(folder / "config.toml")
        check_rebuildable(folder, base)
    else:
        base = cfg.load(args.config) if args.config else cfg.TrainConfig()
    config = cfg.override(base, overrides, source="command line")

    seed_everything(config.seed, config.deterministic)  # the model's initial weights follow the seed
    task = make_task(config.task)
    model = build_model(config.model, task)
    history = train(model, task, config, resume=args.resume, progress=not args.quiet)

    s = history.summary
    train_loss, val_loss = s["final"]["train"].get("loss"), s["final"]["val"].get("loss")
    line = f"step {s['steps']}: train loss {_fmt(train_loss)}, val loss {_fmt(val_loss)}"
    if s["best"]["value"] is not None:
        line += f", best {s['best']['metric']} {_fmt(s['best']['value'])} at step {s['best']['step']}"
    print(f"{line}; {s['steps_per_s']:.1f} steps/s; run folder {history.run_dir}")
    return 0


def check_rebuildable(folder: Path, config: cfg.TrainConfig) -> None:
    """A run whose task or model was built in Python cannot be rebuilt from its config.toml: a ConfigError
    that says how to resume it instead."""
    from rnnlab.tasks import TASKS

    how = f"resume it in Python with rnnlab.train(model, task, resume={str(folder)!r})"
    if config.task.name not in TASKS:
        raise ConfigError(
            f"--resume {folder}: its task {config.task.name!r} was built in Python, and the command line "
            f"builds only the tasks {', '.join(TASKS)}; {how}"
        )
    if "model" not in tomllib.loads((folder / "config.toml").read_text()):
        raise ConfigError(
            f"--resume {folder}: its model was built in Python and config.toml has no [model] that "
            f"describes it (see the comment at its top); {how}"
        )


#: the subcommands, in the order `rnnlab --help` lists them.
COMMANDS: list[Callable[[Any], None]] = [add_train]


if __name__ == "__main__":
    sys.exit(main())
