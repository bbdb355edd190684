"""The report's figures of training curves: every run's validation metric overlaid, and one run's curves.

    comparison_plot(runs)     each run's validation metric over training steps (training faint), one panel
                              per metric, each task's memoryless baseline dashed
    curves_plot(run)          one run: its loss (training faint, validation, test at the end) and its
                              validation metric, beside the baseline, with the step it was solved at

They read what a run folder recorded (`Curves`: metrics.jsonl's rows and summary.json), so a finished run
is drawn without its model. The gradient-flow figures are `rnnlab.diagnostics.plots`; `new_figure` is the
blank figure (no pyplot state) that these and the task exhibits draw on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnlab.diagnostics.plots import scale_falling

#: the training curve is drawn this opaque: there every step, noisy; the validation points carry the story.
TRAIN_ALPHA = 0.3
#: width in inches of the figures that span the page (the curves); the diagnostics' are 7.
WIDE = 10.0


@dataclass
class Curves:
    """What a run folder recorded of its training: a label, metrics.jsonl's rows, summary.json."""

    label: str
    rows: list[dict[str, Any]]
    summary: Mapping[str, Any]
    maximised: bool = False  # the metric is one to raise (accuracy): [eval] mode = "max"

    @property
    def metric(self) -> str:
        """The validation metric the run was judged by: summary "best"["metric"] less its "val ", else
        the loss."""
        best = self.summary.get("best") or {}
        name = str(best.get("metric") or "loss")
        return name.removeprefix("val ")

    @property
    def task(self) -> str:
        return str((self.summary.get("task") or {}).get("name", "?"))

    def series(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of `name` in the rows of `split`, where recorded."""
        points = [(r["step"], r[name]) for r in self.rows if r.get("split") == split and _number(r.get(name))]
        if not points:
            return np.zeros(0), np.zeros(0)
        steps, values = zip(*points, strict=True)
        return np.asarray(steps, float), np.asarray(values, float)

    def baseline(self, name: str) -> float | None:
        value = (self.summary.get("baseline") or {}).get(name)
        return float(value) if value is not None and _number(value) else None


def new_figure(
    rows: int = 1, height: float = 3.0, width: float = 7.0, columns: int = 1
) -> tuple[Figure, list[Any]]:
    """A figure of rows × columns panels, each `height` inches high, `width` wide in all, on its own Agg
    canvas; the panels in reading order."""
    fig = Figure(figsize=(width, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]


def comparison_plot(runs: Sequence[Curves]) -> Figure:
    """Every run's validation metric over training steps (its training values faint, where the training
    rows have that metric), one panel per metric, with each task's baseline as a dashed line."""
    metrics = list(dict.fromkeys(run.metric for run in runs))
    columns = 2 if len(metrics) > 2 else 1
    rows = -(-len(metrics) // columns)
    fig, axes = new_figure(rows, height=3.6 if columns == 1 else 3.2, width=WIDE, columns=columns)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    colors = {id(run): f"C{i % 10}" for i, run in enumerate(runs)}
    for ax, metric in zip(axes[: len(metrics)], metrics, strict=True):
        drawn: list[np.ndarray] = []
        baselines: dict[tuple[str, float], str] = {}
        for run in (r for r in runs if r.metric == metric):
            color = colors[id(run)]
            steps, values = run.series("train", metric)
            ax.plot(steps, values, color=color, lw=0.8, alpha=TRAIN_ALPHA)
            steps, values = run.series("val", metric)
            ax.plot(steps, values, color=color, marker="." if len(steps) < 30 else None, label=run.label)
            drawn += [values, run.series("train", metric)[1]]
            baseline = run.baseline(metric)
            if baseline is not None:
                baselines.setdefault((run.task, baseline), color)
        for (task, baseline), color in baselines.items():
            ax.axhline(baseline, color=color, ls="--", lw=1.0, label=f"{task} baseline (no memory)")
            drawn.append(np.array([baseline]))
        if not any(r.maximised for r in runs if r.metric == metric):
            scale_falling(ax, drawn)
        ax.set(xlabel="training step", ylabel=f"validation {metric}", title=f"validation {metric} by run")
        ax.legend(fontsize="small", ncol=2)
    return fig


def curves_plot(run: Curves) -> Figure:
    """One run's loss (training faint, validation, the test score at the last step) and, when it was
    judged by another metric, that metric likewise (beside it); baselines dashed, the solved step dotted."""
    names = ["loss"]
    if run.metric != "loss" and not _same(run.series("val", "loss"), run.series("val", run.metric)):
        names.append(run.metric)  # a metric that is the loss (the adding task's mse) is drawn once
    fig, axes = new_figure(1, height=3.2, width=WIDE, columns=len(names))
    test = run.summary.get("test") or {}
    solved = (run.summary.get("solved") or {}).get("step")
    last = max((float(r["step"]) for r in run.rows if "step" in r), default=0.0)
    for ax, name in zip(axes, names, strict=True):
        train_steps, train = run.series("train", name)
        val_steps, val = run.series("val", name)
        ax.plot(train_steps, train, color="C0", lw=0.8, alpha=TRAIN_ALPHA, label=f"training {name}")
        ax.plot(val_steps, val, color="C0", marker="." if len(val) < 30 else None, label=f"validation {name}")
        drawn = [train, val]
        if _number(test.get(name)):
            ax.plot([last], [test[name]], "*", color="C3", ms=9, label=f"test {name}")
            drawn.append(np.array([test[name]]))
        baseline = run.baseline(name)
        if baseline is not None:
            ax.axhline(baseline, color="grey", ls="--", lw=1.0, label="baseline (no memory)")
            drawn.append(np.array([baseline]))
        if solved is not None:
            ax.axvline(solved, color="C2", ls=":", lw=1.0, label=f"solved at step {solved}")
        if name == "loss" or not run.maximised:
            scale_falling(ax, drawn)
        ax.set(xlabel="training step", ylabel=name, title=f"{run.label}: {name} over training")
        ax.legend(fontsize="small", ncol=2)
    return fig


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return all(x.shape == y.shape and np.allclose(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
