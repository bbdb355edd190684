"""rnnlab compare: the runs of a grid of settings on one task, one after another, ranked.

    rnnlab compare --task adding --task.length 150 --model.cell=rnn,lstm,gru \\
        --model.init=default,orthogonal --seeds 3 --steps 1000 --out cmp/

A flag whose value holds commas is an axis of the grid (`--model.cell=rnn,lstm,gru`); every other flag is
shared by all runs. Each combination (a `Variant`) runs once per seed, each run a folder of its own under
`out` (`cell-rnn_init-orthogonal-seed0/`), trained by `rnnlab.train` exactly as `rnnlab train` would with
those flags. A line per finished run says how it did; at the end, the variants ranked by their mean over the
seeds (`compare.txt`, `compare.json`), their validation curves overlaid (`curves.png`: mean and range over
the seeds, the task's memoryless baseline dashed) and the report of every run (`report.html`).

The task's recipe (`rnnlab train --task T` uses it) gives every setting that no flag gives, except that a
grid over the model leaves out the recipe's model settings other than its size: the cells and
initialisations compared then differ in what the grid varies and nothing else.

`rnnlab demo` is a comparison of six named variants (`Variant(label, overrides)`), not a grid.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.errors import ConfigError, DivergedError
from rnnlab.text import format_number
from rnnlab.training import config as cfg

#: the recipe's model settings a grid over the model keeps: the size, so that the models compared match.
SIZE = ("model.hidden_size", "model.num_layers")


@dataclass(frozen=True)
class Variant:
    """One configuration of a comparison: a name and the flags it adds to the shared ones."""

    label: str
    overrides: Mapping[str, str]

    @property
    def slug(self) -> str:
        """The variant's label as a folder name: "cell=rnn init=orthogonal" -> "cell-rnn_init-orthogonal"."""
        text = re.sub(r"[=:]", "-", self.label.strip())
        return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "run"


def grid(axes: Mapping[str, Sequence[str]]) -> list[Variant]:
    """Every combination of the axes' values, the first axis slowest, labelled "cell=rnn init=orthogonal"
    by the last part of each setting's name. No axis: one variant, the shared settings alone."""
    names = list(axes)
    variants = []
    for values in itertools.product(*(axes[n] for n in names)):
        label = " ".join(f"{n.split('.')[-1]}={v}" for n, v in zip(names, values, strict=True))
        variants.append(Variant(label or "base", dict(zip(names, values, strict=True))))
    return variants


def split_axes(given: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The flags whose value lists several values ("rnn,lstm,gru") as the grid's axes, and the rest."""
    axes: dict[str, list[str]] = {}
    shared: dict[str, Any] = {}
    for name, value in given.items():
        if isinstance(value, str) and "," in value:
            values = [v.strip() for v in value.split(",")]
            if any(not v for v in values):
                raise ConfigError(f"--{name}={value}: an empty value in the list")
            if len(set(values)) != len(values):
                raise ConfigError(f"--{name}={value}: a value listed twice")
            axes[name] = values
        else:
            shared[name] = value
    return axes, shared


@dataclass
class Outcome:
    """One run of a comparison, after it ended: its summary.json, or why it has none."""

    variant: Variant
    seed: int
    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # "diverged: ..." when the run could not be saved from divergence
    seconds: float | None = None


@dataclass
class Comparison:
    """What `compare` did: the runs, in order, and what it wrote."""

    outcomes: list[Outcome]
    metric: str
    mode: str
    out: Path
    files: list[Path] = field(default_factory=list)

    def ranked(self) -> list[Ranked]:
        """The variants, best first, by their mean score over the seeds (see `Ranked`)."""
        by_variant: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            by_variant.setdefault(o.variant.label, []).append(o)
        rows = [Ranked.of(runs, self.metric) for runs in by_variant.values()]
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(rows, key=lambda r: math.inf if r.mean is None else sign * r.mean)


@dataclass
class Ranked:
    """A variant over its seeds: the mean and standard deviation of its score (the test split's metric
    where the task has one, else the final validation metric), how many runs reached `eval.target`, at which
    median step, its mean wall time and the most common verdict of its runs' last probes."""

    label: str
    scores: list[float]
    baseline: float | None
    solved: int
    runs: int
    solved_step: float | None
    seconds: float | None
    verdict: str
    split: str

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def spread(self) -> float | None:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None

    @classmethod
    def of(cls, runs: list[Outcome], metric: str) -> Ranked:
        test = all(metric in (o.summary.get("test") or {}) for o in runs if o.summary)
        split = "test" if test else "val"
        scores = [s for o in runs if (s := score(o.summary, metric, split)) is not None]
        baselines = [o.summary.get("baseline", {}).get(metric) for o in runs if o.summary]
        solved = [o.summary["solved"]["step"] for o in runs if (o.summary.get("solved") or {}).get("step")]
        times = [o.seconds for o in runs if o.seconds is not None]
        verdicts = Counter(last_verdict(o.folder) for o in runs)
        return cls(
            label=runs[0].variant.label,
            scores=scores,
            baseline=next((b for b in baselines if b is not None), None),
            solved=len(solved),
            runs=len(runs),
            solved_step=statistics.median(solved) if solved else None,
            seconds=statistics.fmean(times) if times else None,
            verdict=verdicts.most_common(1)[0][0],
            split=split,
        )


def score(summary: Mapping[str, Any], metric: str, split: str) -> float | None:
    """A run's `metric` on its test split, or its final validation value (None if it has neither)."""
    if split == "test":
        value = (summary.get("test") or {}).get(metric)
    else:
        value = ((summary.get("final") or {}).get("val") or {}).get(metric)
    return None if value is None or not math.isfinite(value) else float(value)


def last_verdict(folder: Path) -> str:
    """The verdicts of a run's last probe, "vanishing (alarm)" or "l0 healthy, l1 vanishing (note)" for
    several layers; "-" when the run had no diagnostics, "diverged" when it has no summary either."""
    path = folder / "diagnostics.jsonl"
    if not path.is_file():
        return "-" if (folder / "summary.json").is_file() else "diverged"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return "-"
    try:
        layers = json.loads(lines[-1]).get("layers", {})
    except json.JSONDecodeError:
        return "-"
    said = []
    for name, layer in layers.items():
        v = layer.get("verdict") or {}
        text = v.get("name", "?") + (f" ({v['severity']})" if v.get("severity") not in (None, "ok") else "")
        said.append(text if len(layers) == 1 else f"{name.split('.')[-1]} {text}")
    return ", ".join(said) or "-"


def compare(
    variants: Sequence[Variant],
    shared: Mapping[str, Any],
    seeds: Sequence[int],
    out: str | Path,
    *,
    progress: bool = True,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    report: bool = True,
    report_title: str = "rnnlab compare",
    quiet: bool = False,
) -> Comparison:
    """Train every variant once per seed, one run after another, and rank them.

    Every run's config is built first, so a bad flag fails before any training; `out` must not exist
    (the caller removes it for --overwrite). A run that diverges beyond repair is kept as such and the
    comparison goes on. Writes `compare.txt`, `compare.json`, `curves.png` and (with `report`) `report.html`.
    `say` gets a line per finished run; `quiet` silences what each run says while it trains (its verdicts,
    warnings and rollbacks, which its folder records anyway).
    """
    from rnnlab.training.loop import train_config

    out = Path(out)
    if out.exists():
        raise ConfigError(f"--out {out} exists already; choose another or pass --overwrite to replace it")
    if not variants or not seeds:
        raise ConfigError("nothing to compare: no variant or no seed")
    vary = {name for v in variants for name in v.overrides}
    plan = []
    for variant, seed in itertools.product(variants, seeds):
        folder = out / f"{variant.slug}-seed{seed}"
        given = {**shared, **variant.overrides, "seed": str(seed), "out": str(folder)}
        plan.append((variant, seed, folder, compose(given, vary)))
    metric, mode = plan[0][3].eval.metric, plan[0][3].eval.mode
    out.mkdir(parents=True)
    outcomes: list[Outcome] = []
    for i, (variant, seed, folder, config) in enumerate(plan, 1):
        tag = f"[{i}/{len(plan)}] {variant.label}, seed {seed}"
        outcome = Outcome(variant, seed, folder)
        try:
            history = train_config(config, progress=progress, label=tag, quiet=quiet)
            outcome.summary = history.summary
            outcome.seconds = history.summary.get("wall_time_s")
        except DivergedError as e:
            outcome.error = f"diverged: {e}"
        outcomes.append(outcome)
        say(f"{tag}: {run_line(outcome, metric)}")
    comparison = Comparison(outcomes, metric, mode, out)
    comparison.files = write(comparison, report=report, title=report_title)
    return comparison


def compose(given: Mapping[str, Any], vary: set[str]) -> cfg.TrainConfig:
    """One run's config: `cfg.compose`, whose recipe, under a grid over the model, keeps only its size."""
    config, used = cfg.compose(given)
    if any(name.startswith("model.") for name in vary):
        kept = {k: v for k, v in used.items() if not k.startswith("model.") or k in SIZE}
        config = cfg.override(cfg.TrainConfig(), {**kept, **given}, "command line")
    return config


def run_line(o: Outcome, metric: str) -> str:
    """How one run did: "val mse 0.0021 (baseline 0.1667), test mse 0.002, solved at step 700; 41 s"."""
    if o.error:
        return o.error
    s = o.summary
    val, base = score(s, metric, "val"), (s.get("baseline") or {}).get(metric)
    line = f"val {metric} {format_number(val)}"
    if base is not None:
        line += f" (baseline {format_number(base)})"
    test = score(s, metric, "test")
    if test is not None:
        line += f", test {metric} {format_number(test)}"
    if s.get("solved"):
        line += f", solved at step {s['solved']['step']}"
    if trouble := guard_events(s):
        line += f", {trouble}"
    verdict = last_verdict(o.folder)
    if verdict != "-":
        line += f", verdict {verdict}"
    return line + (f"; {o.seconds:.0f} s" if o.seconds is not None else "")


def guard_events(summary: Mapping[str, Any]) -> str:
    """What the non-finite guard did in a run, "3 non-finite steps skipped, 1 rollback"; "" if nothing."""
    skipped, rollbacks = summary.get("skipped_steps") or 0, summary.get("rollbacks") or 0
    said = []
    if skipped:
        said.append(f"{skipped} non-finite step{'s' if skipped != 1 else ''} skipped")
    if rollbacks:
        said.append(f"{rollbacks} rollback{'s' if rollbacks != 1 else ''}")
    return ", ".join(said)


def table(comparison: Comparison) -> str:
    """The ranked variants as text, best first: mean ± spread over the seeds, baseline, solved, time."""
    from rnnlab.text import columns

    ranked = comparison.ranked()
    metric = comparison.metric
    split = ranked[0].split if ranked else "val"
    header = [
        "rank",
        "variant",
        f"{split} {metric}",
        "± sd",
        "baseline",
        "solved",
        "at step",
        "verdict (last probe)",
        "time/run",
    ]
    rows = []
    for i, r in enumerate(ranked, 1):
        rows.append(
            [
                str(i),
                r.label,
                format_number(r.mean, missing="-"),
                format_number(r.spread, 2, missing="-"),
                format_number(r.baseline, missing="-"),
                f"{r.solved}/{r.runs}",
                format_number(r.solved_step, missing="-"),
                r.verdict,
                "-" if r.seconds is None else f"{r.seconds:.0f} s",
            ]
        )
    return columns(header, rows, right={0, 2, 3, 4, 5, 6, 8})


def write(comparison: Comparison, *, report: bool = True, title: str = "rnnlab compare") -> list[Path]:
    """compare.txt, compare.json, curves.png and report.html in the comparison's folder."""
    out = comparison.out
    (out / "compare.txt").write_text(table(comparison) + "\n")
    rows = [
        {
            "variant": o.variant.label,
            "overrides": dict(o.variant.overrides),
            "seed": o.seed,
            "folder": o.folder.name,
            "error": o.error,
            "val": score(o.summary, comparison.metric, "val"),
            "test": score(o.summary, comparison.metric, "test"),
            "baseline": (o.summary.get("baseline") or {}).get(comparison.metric),
            "solved_step": (o.summary.get("solved") or {}).get("step"),
            "verdict": last_verdict(o.folder),
            "seconds": o.seconds,
        }
        for o in comparison.outcomes
    ]
    (out / "compare.json").write_text(
        json.dumps({"metric": comparison.metric, "mode": comparison.mode, "runs": rows}, indent=2) + "\n"
    )
    files = [out / "compare.txt", out / "compare.json"]
    fig = curves(comparison)
    fig.savefig(out / "curves.png", dpi=100)
    files.append(out / "curves.png")
    done = [o for o in comparison.outcomes if (o.folder / "summary.json").is_file()]
    if report and done:
        from rnnlab.report import write_report

        labels = [f"{o.variant.label}, seed {o.seed}" for o in done]
        files.append(write_report([o.folder for o in done], out / "report.html", title=title, labels=labels))
    return files


def curves(comparison: Comparison) -> Any:
    """The validation metric over training steps, one line per variant (mean over its seeds, the band
    their range), the task's baseline dashed; a log scale when the values span more than a decade."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    metric = comparison.metric
    by_variant: dict[str, list[Outcome]] = {}
    for o in comparison.outcomes:
        by_variant.setdefault(o.variant.label, []).append(o)
    values: list[float] = []
    baseline = None
    for label, runs in by_variant.items():
        series = [val_curve(o.folder, metric) for o in runs]
        series = [s for s in series if s]
        if not series:
            continue
        steps = sorted(set.intersection(*(set(s) for s in series)))
        if not steps:
            continue
        grid_values = np.array([[s[t] for t in steps] for s in series], dtype=float)
        mean = np.nanmean(grid_values, axis=0)
        (line,) = ax.plot(steps, mean, label=label)
        if len(series) > 1:
            lo, hi = np.nanmin(grid_values, axis=0), np.nanmax(grid_values, axis=0)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        values += [v for v in grid_values.ravel() if math.isfinite(v)]
        baseline = baseline or next(
            ((o.summary.get("baseline") or {}).get(metric) for o in runs if o.summary), None
        )
    if baseline is not None:
        ax.axhline(baseline, color="black", ls="--", lw=1, label=f"memoryless baseline ({baseline:.4g})")
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) > 10 * min(positive):
        ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"validation {metric}", title=f"validation {metric} by variant")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def val_curve(folder: Path, metric: str) -> dict[int, float]:
    """A run's validation `metric` by step, from its metrics.jsonl (non-finite values as NaN)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return {}
    curve = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if row.get("split") == "val" and metric in row:
            value = row[metric]
            curve[int(row["step"])] = float(value) if value is not None else math.nan
    return curve


__all__ = ["Comparison", "Outcome", "Ranked", "Variant", "compare", "grid", "split_axes", "table"]
