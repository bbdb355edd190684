"""The rnnlab command line. Each subcommand is one `add_<name>` function registering its parser and handler.

    rnnlab train --task sine --steps 500 --out runs/sine --optim.lr=3e-3 --clip.mode=norm
    rnnlab train --resume runs/sine --steps 1000          # continue that run to step 1000
    rnnlab train --config sweep.toml --quiet              # settings from a TOML file, no progress bar

Bad input (a config value, a checkpoint, a run folder, NaN in the data) is reported in one line without a
traceback, exit status 2; a run that diverges beyond repair exits with 1. RNNLAB_TRACEBACK=1 shows the
traceback too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rnnlab.training import config as cfg
from rnnlab.training.progress import format_value as _fmt

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
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from rnnlab.training.guard import DivergedError

        if os.environ.get("RNNLAB_TRACEBACK") or not isinstance(e, ValueError | OSError | DivergedError):
            raise
        print(f"rnnlab {args.command}: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, DivergedError) else 2


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
    """The config values given as flags; unknown `--section.key=value` flags become errors naming them."""
    overrides = {name: getattr(args, name) for name, _, _ in cfg.fields() if hasattr(args, name)}
    for item in extra:
        key, _, value = item.lstrip("-").partition("=")
        if not item.startswith("--") or not key:
            raise cfg.ConfigError(f"unexpected argument {item!r}")
        overrides[key] = value
    return overrides


def run_train(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.tasks import make_task
    from rnnlab.training import build_model, seed_everything, train
    from rnnlab.training.run import resume_folder

    overrides = config_overrides(args, extra)
    if args.resume:
        if args.config or "out" in overrides:
            raise cfg.ConfigError(
                "--resume DIR continues the run in DIR with its config.toml; drop --config/--out"
            )
        base = cfg.load(resume_folder(args.resume) / "config.toml")
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


#: the subcommands, in the order `rnnlab --help` lists them; later: diagnose, report, ...
COMMANDS: list[Callable[[Any], None]] = [add_train]


if __name__ == "__main__":
    sys.exit(main())
