"""rnnlab evaluate, predict, diagnose and report: what a finished run (or a config) is worth and why."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnlab.cli import add_common
from rnnlab.cli.flags import add_task_and_config_flags, config_overrides
from rnnlab.errors import ConfigError, RunFolderError, UserError
from rnnlab.text import format_number
from rnnlab.training import config as cfg

CHECKPOINT_HELP = "which weights: the best validation result's (default), else the latest; or the latest"


def add_run_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="a run folder (or a checkpoint file in it)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help=CHECKPOINT_HELP)


def no_extra(extra: list[str]) -> None:
    if extra:
        raise ConfigError(f"unexpected argument {extra[0]!r}")


# ------------------------------------------------------------------------------------------------ evaluate


def add_evaluate(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "evaluate",
        help="a run's loss and metrics on its test split, or on a file of yours",
        description=(
            "Score a run's model on its test split (--split val: the validation split), or on a file in "
            "the format its task reads (--input: a CSV series for forecast, a .ts/CSV/wav folder for "
            "classify, a CSV of texts for text, an IDX or CSV of images, a text file for charlm), prepared "
            "with the training part's scaling and vocabulary. Prints each metric beside the task's "
            "memoryless baseline; --json prints one JSON object. Example: rnnlab evaluate runs/x --input "
            "held_out.csv --json"
        ),
    )
    add_run_argument(p)
    p.add_argument("--input", metavar="FILE", help="score this file instead of a split of the task's data")
    p.add_argument("--split", choices=("test", "val"), default="test", help="without --input (default test)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_common(p)
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.training.evaluate import evaluate
    from rnnlab.training.saved import open_run

    no_extra(extra)
    run = open_run(args.run, args.checkpoint)
    stateful = run.config.bptt.stateful
    if args.input:
        batches = run.task.input_batches(Path(args.input), labelled=True)
        scores = evaluate(run.model, run.task, stateful=stateful, batches=batches)
        where = args.input
    else:
        scores = evaluate(run.model, run.task, stateful=stateful, split=args.split)
        if not scores and args.split == "test":  # a task without a test split: say so, score validation
            if not args.quiet:
                print(
                    f"the {run.config.task.name} task has no test split: scoring validation", file=sys.stderr
                )
            scores = evaluate(run.model, run.task, stateful=stateful, split="val")
            args.split = "val"
        where = f"{args.split} split"
    if not scores:
        raise UserError(f"nothing to score: {where} holds no sequence")
    baseline = read_summary(run.folder).get("baseline", {})
    if args.json:
        print(
            json.dumps(
                {
                    "run": str(run.folder),
                    "checkpoint": run.checkpoint.name,
                    "step": run.step,
                    "data": where,
                    "metrics": scores,
                    "baseline": {k: v for k, v in baseline.items() if k in scores},
                }
            )
        )
        return 0
    on = where if args.input else f"the {where}"  # "on held_out.csv", "on the test split"
    print(f"{run.folder} at step {run.step} ({run.checkpoint.name}) on {on}:")
    for name, value in scores.items():
        beside = f"  (baseline {format_number(baseline[name])})" if name in baseline else ""
        print(f"  {name:10s} {format_number(value)}{beside}")
    return 0


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


# ------------------------------------------------------------------------------------------------- predict


def add_predict(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "predict",
        help="a run's predictions for a file of yours (classification, forecasts), as CSV or JSON lines",
        description=(
            "Predict with a run's model for every item of a file in the format its task reads (labels may "
            "be missing): a class and its probability per sequence or text for classify, text and images; "
            "the horizon after the end of the series for forecast. --out FILE.csv (or .jsonl). Example: "
            "rnnlab predict runs/classify-... --input new.ts --out predictions.csv"
        ),
    )
    add_run_argument(p)
    p.add_argument("--input", metavar="FILE", required=True, help="the file (or folder) to predict for")
    p.add_argument("--out", metavar="FILE", required=True, help="a new .csv or .jsonl file")
    add_common(p, overwrite=True)
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from rnnlab.training.evaluate import outputs
    from rnnlab.training.run import make_room, write_atomically
    from rnnlab.training.saved import open_run

    no_extra(extra)
    out = Path(args.out)
    if out.suffix not in (".csv", ".jsonl"):
        raise ConfigError(f"--out {out}: a .csv or .jsonl file")
    make_room(out, args.overwrite)
    run = open_run(args.run, args.checkpoint)
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for batch in run.task.input_batches(Path(args.input), labelled=False):
            y, _ = outputs(run.model, run.task, batch)
            rows += run.task.prediction_rows(y, batch)
    if not rows:
        raise UserError(f"{args.input}: no item to predict for")
    if out.suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        buffer = io.StringIO()
        names = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, text)
    print(f"{len(rows)} predictions: {out}")
    return 0


# -------------------------------------------------------------------------------------------------- export


def add_export(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "export",
        help="a run's model as ONNX or TorchScript, checked against the model",
        description=(
            "Write a run's model (LSTM, GRU or RNN cells) as an ONNX file (onnxruntime, TensorRT, ...) or "
            "a TorchScript module, with dynamic batch and time: (input, h0[, c0]) -> (output, hn[, cn]). "
            "The file is then run on random inputs at two lengths and its largest difference from the "
            "model printed (ONNX needs pip install 'rnnlab[export]'). Example: rnnlab export runs/x "
            "--format onnx --out model.onnx"
        ),
    )
    add_run_argument(p)
    p.add_argument("--format", choices=("onnx", "torchscript"), help="default: from --out's name (.onnx)")
    p.add_argument("--out", metavar="FILE", required=True, help="the file to write (.onnx, .pt)")
    p.add_argument("--length", type=int, default=16, help="time steps of the example traced (default 16)")
    add_common(p, overwrite=True)
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.exporting import export, verify
    from rnnlab.training.run import make_room
    from rnnlab.training.saved import open_run

    no_extra(extra)
    if args.length < 1:
        raise ConfigError(f"--length: at least 1, got {args.length}")
    make_room(args.out, args.overwrite)
    run = open_run(args.run, args.checkpoint)
    path = export(run.model, args.out, args.format, length=args.length)
    lengths = (args.length, 2 * args.length + 9)
    worst = verify(run.model, path, lengths)
    print(
        f"{path}: {run.folder} at step {run.step} ({run.checkpoint.name}); the largest difference from the "
        f"model at T = {lengths[0]} and {lengths[1]}: {worst:.1e}"
    )
    if worst > 1e-4:
        print(
            f"rnnlab export: error: {path} differs from the model by {worst:.1e}; please report it",
            file=sys.stderr,
        )
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ diagnose


def add_diagnose(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "diagnose",
        help="probe a run's model (or a config's fresh one) on a batch: verdicts, remedies as flags, figures",
        description=(
            "One forward and backward pass over a validation batch of the task, watched: the gradient "
            "through time per layer, the Jacobian's growth per step and memory horizon, spectra and "
            "saturation, and a verdict (healthy, vanishing, exploding, ...) with the flags that remedy it. "
            "RUN: the trained model. --config FILE or --task NAME with flags: the model as it starts, to "
            "check a configuration before training it. Writes report.txt, report.json and the figures "
            "into --out (default RUN/diagnose/, or runs/diagnose-<task>-<time>). Examples: rnnlab "
            "diagnose runs/adding-...; rnnlab diagnose --task adding --task.length 500 --model.cell=rnn"
        ),
        allow_abbrev=False,
    )
    p.add_argument("run", metavar="RUN", nargs="?", help="a run folder (or a checkpoint file in it)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help=CHECKPOINT_HELP)
    p.add_argument("--config", metavar="FILE", help="a TOML config: diagnose the model it starts with")
    p.add_argument("--out", metavar="DIR", default="", help="where the figures go (a new folder)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_common(p, overwrite=True)
    add_task_and_config_flags(p, argv, "the task, for a model as it starts", skip=("out",))
    p.set_defaults(handler=run_diagnose)


def run_diagnose(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.diagnostics import plots
    from rnnlab.training.run import make_room
    from rnnlab.training.saved import open_run

    overrides = config_overrides(args, extra)
    overrides.pop("out", None)
    if args.run:
        if args.config or overrides:
            raise ConfigError("RUN is diagnosed as it was trained: drop --config and the config flags")
        run = open_run(args.run, args.checkpoint)
        config, task, model = run.config, run.task, run.model
        out = Path(args.out) if args.out else run.folder / "diagnose"
        what = f"{run.folder} at step {run.step} ({run.checkpoint.name})"
    elif args.config or overrides:
        from rnnlab.tasks import make_task
        from rnnlab.training import build_model, seed_everything

        given = {**(cfg.read(args.config) if args.config else {}), **overrides}
        config, _ = cfg.compose(given)
        seed_everything(config.seed, config.deterministic)
        task = make_task(config.task)
        model = build_model(config.model, task)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out or f"runs/diagnose-{config.task.name}-{stamp}")
        what = f"the {config.task.name} task's model as it starts ({config.model.cell})"
    else:
        raise ConfigError("diagnose what? give a RUN folder, or --config FILE, or --task NAME and flags")
    report = probe(model, task)
    make_room(out, args.overwrite, files=DIAGNOSE_FILES)
    out.mkdir(parents=True)
    record = report.to_dict()
    (out / "report.json").write_text(json.dumps(record, indent=1) + "\n")
    text = f"{what}, one validation batch:\n{report}\n{remedy_lines(record)}"
    (out / "report.txt").write_text(text + "\n")
    figures = {
        "grad_flow_profile.png": plots.profile_plot(record),
        "saturation.png": plots.saturation_bars(record),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=100)
    if args.json:
        print(json.dumps(record))
    else:
        print(text)
        print(f"figures and report: {out}")
    return 0


#: what `rnnlab diagnose` writes into its folder: --overwrite replaces a folder holding these alone.
DIAGNOSE_FILES = ("report.txt", "report.json", "grad_flow_profile.png", "saturation.png")


def probe(model: Any, task: Any) -> Any:
    """`rnnlab.watch` over one forward and backward pass of the task's first validation batch (its first
    training batch when it has no validation split), the model in eval mode (no dropout)."""
    import torch

    from rnnlab.diagnostics import watch
    from rnnlab.training import tbptt
    from rnnlab.training.evaluate import outputs

    batch = next(iter(task.val_batches()), None)
    if batch is None:
        batch = next(iter(task.train_batches(torch.Generator().manual_seed(0))), None)
    if batch is None:
        raise UserError(f"the {task.name} task has no batch to probe")
    model.eval()
    with watch(model) as p:
        y, _ = outputs(model, task, batch)
        targets = batch.targets
        if task.output == "sequence":
            y, targets = tbptt.valid_steps(y, targets, batch.lengths)
        task.loss(y, targets).backward()
    return p.report()


def remedy_lines(record: dict[str, Any]) -> str:
    """Each layer's remedies as flags, one alternative a line: "  encoder.l0: --model.cell=lstm"."""
    lines = []
    for name, layer in record.get("layers", {}).items():
        verdict = layer.get("verdict") or {}
        for remedy in verdict.get("remedies") or []:
            lines.append(f"  {name}: " + " ".join(f"--{item}" for item in remedy.split()))
        lines += [f"  {name}: hint: {hint}" for hint in verdict.get("hints") or []]
    return (
        ("remedies, one alternative a line (rnnlab train ... FLAGS):\n" + "\n".join(lines)) if lines else ""
    )


# -------------------------------------------------------------------------------------------------- report


def add_report(commands: Any, argv: Sequence[str]) -> None:
    p = commands.add_parser(
        "report",
        help="one self-contained HTML page of runs: curves against the baseline, verdicts, figures",
        description=(
            "Write one HTML file (figures embedded, no JavaScript, nothing fetched) comparing the runs at "
            "the top (loss curves against the memoryless baseline, a summary table) with a section per "
            "run: the gradient through time over training, spectra, saturation and gates, the verdict "
            "with its remedies, the task's own figures and the configuration. A folder written by "
            "`rnnlab compare` or `rnnlab demo` stands for its runs. Example: rnnlab report runs/a runs/b "
            "--out report.html"
        ),
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="run folders, or a comparison's folder")
    p.add_argument("--out", metavar="FILE.html", required=True, help="the page to write")
    p.add_argument("--title", default="rnnlab report", help="the page's title")
    p.add_argument(
        "--no-exhibits", action="store_true", help="leave out the task's figures (no model loaded)"
    )
    add_common(p, overwrite=True)
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace, extra: list[str]) -> int:
    from rnnlab.report import write_report

    no_extra(extra)
    folders: list[Path] = []
    labels: list[str] = []
    for given in map(Path, args.runs):
        listing = given / "compare.json"
        if listing.is_file():  # a comparison: its runs, in order, labelled by variant and seed
            try:
                runs = json.loads(listing.read_text())["runs"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise RunFolderError(f"{listing} is not a comparison rnnlab wrote") from None
            for r in runs:
                if (given / r["folder"] / "summary.json").is_file():
                    folders.append(given / r["folder"])
                    labels.append(f"{r['variant']}, seed {r['seed']}")
        else:
            folders.append(given)
            labels.append(given.name)
    path = write_report(
        folders,
        args.out,
        title=args.title,
        overwrite=args.overwrite,
        labels=labels,
        exhibits=not args.no_exhibits,
    )
    print(f"report of {len(folders)} run(s): {path}")
    return 0
