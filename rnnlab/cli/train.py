"""rnnlab train, compare and demo: runs made from config flags."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnlab.cli import add_common, commentary
from rnnlab.cli.flags import add_task_and_config_flags, config_overrides
from rnnlab.errors import ConfigError
from rnnlab.text import format_number as _fmt
from rnnlab.training import config as cfg


def add_train(commands: Any, argv: Sequence[str]) -> None:
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
    p.add_argument("--config", metavar="FILE", help="a TOML config file (flags override it)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR (or from a checkpoint in it)")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes of this machine (torchrun and DistributedDataParallel: each takes 1/N "
        "of every batch's rows; task.batch_size is the global batch)",
    )
    add_common(p, overwrite=True)
    add_task_and_config_flags(p, argv)
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.training import train_config
    from rnnlab.training.run import make_room, resume_folder
    from rnnlab.training.saved import check_rebuildable

    if args.nproc < 1:
        raise ConfigError(f"--nproc: at least 1, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return torchrun(args.nproc, args.argv)
    overrides = config_overrides(args, extra)
    if args.resume:
        if args.config or "out" in overrides or args.overwrite:
            raise ConfigError(
                "--resume DIR continues the run in DIR with its config.toml; drop --config/--out/--overwrite"
            )
        folder = resume_folder(args.resume)
        base = cfg.load(folder / "config.toml")
        how = f"resume it in Python with rnnlab.train(model, task, resume={str(folder)!r})"
        check_rebuildable(folder, base, how)
        config = cfg.override(base, overrides, source="command line")
    else:
        given = {**(cfg.read(args.config) if args.config else {}), **overrides}
        config, recipe = cfg.compose(given)
        if recipe and not args.quiet and os.environ.get("RANK", "0") == "0":  # once, not per process
            said = " ".join(f"--{k}={v}" for k, v in recipe.items())
            print(f"the {config.task.name} task's recipe (flags override it): {said}", file=sys.stderr)
        if args.overwrite:  # else the run folder decides: a folder of a run that did no step is taken over
            if not config.out:
                raise ConfigError("--overwrite replaces the folder that --out names; give --out")
            make_room(config.out, overwrite=True)

    history = train_config(config, resume=args.resume, quiet=args.quiet)
    if os.environ.get("RANK", "0") == "0":  # a distributed run's other processes say nothing
        print(summary_line(history.summary, history.run_dir))
    return 0


def torchrun(nproc: int, argv: list[str]) -> int:
    """`rnnlab train ... --nproc N` as torchrun's N processes on this machine (`--standalone`: a free port on
    localhost), its launcher run in this process. Each rank says its own error; a failure is then one
    more line here, and the exit status is the first failed rank's."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    rest, skip = [], False
    for a in argv:  # the same command line without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the line below says it
    # torchrun would set 1 thread a process, with a warning: the cores shared among the processes instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    launcher = parse_args(["--standalone", f"--nproc_per_node={nproc}", "--module", "rnnlab", *rest])
    try:
        run(launcher)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        print(
            f"rnnlab train: {len(e.failures)} of {nproc} processes failed, rank {rank} first (exit status "
            f"{failure.exitcode}); their errors are above",
            file=sys.stderr,
        )
        return failure.exitcode if failure.exitcode > 0 else 1
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


# ------------------------------------------------------------------------------------------------- compare


def add_compare(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "compare",
        help="train a grid of settings on one task over seeds, rank them, overlay their curves, a report",
        description=(
            "Train every combination of the settings given as lists (--model.cell=rnn,lstm,gru "
            "--model.init=default,orthogonal) once per seed, one run after another, each a run folder "
            "under --out; then rank them by their mean over the seeds beside the task's baseline "
            "(compare.txt, compare.json), overlay their validation curves (curves.png) and write "
            "report.html. Every other flag is shared by all runs, as `rnnlab train` takes it. Example: "
            "rnnlab compare --task adding --task.length 150 --model.cell=rnn,lstm,gru --seeds 3 "
            "--steps 1000 --out cmp/"
        ),
        allow_abbrev=False,
    )
    p.add_argument(
        "--config", metavar="FILE", help="a TOML config file shared by every run (flags override it)"
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="runs per variant: seeds S .. S+N-1 from --seed S (default 1)",
    )
    p.add_argument(
        "--out", metavar="DIR", default="", help="a new folder (default runs/compare-<task>-<time>)"
    )
    add_common(p, overwrite=True)
    add_task_and_config_flags(p, argv, skip=("out",))
    p.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace, extra: list[str]) -> int:
    import time

    from rnnlab.compare import compare, grid, split_axes, table
    from rnnlab.training.run import make_room

    given = {**(cfg.read(args.config) if args.config else {}), **config_overrides(args, extra)}
    given.pop("out", None)  # --out is the comparison's; each run's folder is made inside it
    axes, shared = split_axes(given)
    if args.seeds < 1:
        raise ConfigError(f"--seeds: at least 1, got {args.seeds}")
    first = int(cfg.override(cfg.TrainConfig(), {"seed": shared.get("seed", 0)}).seed)
    shared.pop("seed", None)
    task = shared.get("task.name", cfg.TrainConfig().task.name)
    out = Path(args.out or f"runs/compare-{task}-{time.strftime('%Y%m%d-%H%M%S')}")
    make_room(out, args.overwrite)
    variants = grid(axes)
    seeds = list(range(first, first + args.seeds))
    say = commentary(args)
    if not args.quiet:
        print(f"compare: {len(variants)} variant(s) x {len(seeds)} seed(s) into {out}", file=sys.stderr)
    comparison = compare(variants, shared, seeds, out, say=say, quiet=args.quiet)
    print(table(comparison))
    print(f"report: {out / 'report.html'}; curves: {out / 'curves.png'}")
    return 0


# ---------------------------------------------------------------------------------------------------- demo


def add_demo(commands: Any, argv: Sequence[str]) -> None:
    from rnnlab import demo

    p = commands.add_parser(
        "demo",
        help="six models on the adding problem: why gated cells and the remedies work (a few minutes)",
        description=(demo.__doc__ or "").split("\n\n", 2)[-1].replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", metavar="DIR", default="", help="a new folder (default runs/demo-<time>)")
    p.add_argument("--length", type=int, default=150, help="steps of the adding problem (default 150)")
    p.add_argument("--steps", type=int, default=1500, help="most training steps per model (default 1500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the weights (default 0)")
    add_common(p, overwrite=True)
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab import demo
    from rnnlab.training.run import make_room

    if extra:
        raise ConfigError(f"unexpected argument {extra[0]!r}")
    if args.length < 2 or args.steps < 1:
        raise ConfigError(f"--length at least 2 and --steps at least 1, got {args.length} and {args.steps}")
    out = make_room(args.out or demo.default_out(), args.overwrite)
    say = commentary(args)
    result = demo.run(out, args.length, args.steps, args.seed, say=say, quiet=args.quiet)
    print(demo.summary(result))
    return 0
