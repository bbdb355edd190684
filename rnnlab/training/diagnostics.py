"""Diagnostics in training: the loop's adapter from `rnnlab.watch` to the run folder, every N steps.

    [diagnostics]                      rnnlab train ... --diagnostics.every=100
    every = 100

The training loop wraps its forward and backward in `TrainingDiagnostics.watch(step)`. On the first and every
N-th step that block runs under `rnnlab.watch`; the report is appended to `diagnostics.jsonl` (one object per
probe: "step" and `Report.to_dict()`: per-layer profile, γ, horizon, spectra, saturation, verdict), its
headline numbers go to TensorBoard under `diagnostics/<layer>/...` with the heatmap of log10 ‖∂L/∂h_t‖ over
time step × training step as an image, each layer's verdict is said live (at the first probe, then whenever it
or its severity changes: "step 100: encoder.l0 alarm: exploding: …", "… note: vanishing: …"), and `finish()`
draws the figures into `<run>/diagnostics/`. A probed step runs the unrolled path (equal to the
fused kernel up to rounding); it computes the same update otherwise.

Every step the loop also hands over its loss and pre-clip gradient norm (`observe`): the norm goes to the
precursor watch (precursor.py), and the losses tell whether the run still learns. While the loss falls, an
alarm that is not broken (saturated, forgetting, vanishing) is said and recorded as a note, with the
numbers (`Verdict.soften`); non-finite values and exploding gradients stay alarms.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from rnnlab.diagnostics.probe import Probe, watch
from rnnlab.diagnostics.report import LayerReport, Report
from rnnlab.text import format_number
from rnnlab.training.config import DiagnosticsConfig
from rnnlab.training.precursor import NormWatch
from rnnlab.training.run import RunDir

FILE = "diagnostics.jsonl"
#: losses in each of the two windows compared to tell whether the loss still falls.
TREND_WINDOW = 50
#: the loss falls when the recent window's median is at least this much lower than the one before ...
FALLING = 0.01
#: ... or when it is this share of the first window's median or less (the run has learned most of it).
FALLEN = 0.1


class TrainingDiagnostics:
    """Probes `model` every `config.every` steps of a run and records what it finds in `run`."""

    def __init__(
        self,
        model: nn.Module,
        config: DiagnosticsConfig,
        run: RunDir,
        step: int = 0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.model, self.config, self.run, self.say = model, config, run, say
        self.history = run.truncate(FILE, step)  # a resumed run redoes the steps after its checkpoint
        self.said: dict[str, tuple[str, str]] = {}  # layer -> (verdict, severity) last said
        self.norms = NormWatch()
        self.losses = LossTrend()

    def observe(self, step: int, loss: float, grad_norm: float) -> None:
        """One step's loss and pre-clip gradient norm: a precursor warning when one is due (said, and in
        events.jsonl), and the loss trend that decides the severity of the next probe's verdicts."""
        self.losses.add(loss)
        warning = self.norms.observe(step, grad_norm, loss)
        if warning is not None:
            self.run.event(warning.event, step, **warning.details())
            self.say(warning.message)

    def due(self, step: int) -> bool:
        """The first step (the initialisation's verdict, before any update has changed it) and every N-th."""
        return self.config.every > 0 and (step == 1 or step % self.config.every == 0)

    def watch(self, step: int) -> contextlib.AbstractContextManager[Probe | None]:
        """Wrap one update's forward and backward: a probe on the steps that are due, else nothing (a
        `nullcontext`: the steps between probes pay nothing for the wrapping)."""
        return self._probe(step) if self.due(step) else contextlib.nullcontext()

    @contextlib.contextmanager
    def _probe(self, step: int) -> Iterator[Probe]:
        norms = [r["grad_norm"] for r in self.history if _finite(r.get("grad_norm"))]
        median = statistics.median(norms) if norms else None
        with watch(self.model, jacobian=self.config.jacobian, median_grad_norm=median) as probe:
            yield probe
        self.record(step, probe.report())

    def record(self, step: int, report: Report) -> None:
        """diagnostics.jsonl, TensorBoard scalars and the heatmap image of one probe, its verdicts said."""
        reason = self.losses.falling()
        if reason is not None:
            for layer in report.layers.values():
                layer.verdict = layer.verdict.soften(reason)
        row = {"step": step, **report.to_dict()}
        self.run.append(FILE, row)
        self.history.append(row)
        self.run.scalars("diagnostics", {"grad_norm": report.grad_norm}, step)
        for name, layer in report.layers.items():
            self.run.scalars(f"diagnostics/{name}", _headline(layer), step)
        from rnnlab.diagnostics import plots  # matplotlib loads with the first probe, not with rnnlab

        fig = plots.profile_heatmap(self.history)
        self.run.image("diagnostics/grad_flow", plots.figure_to_array(fig), step)
        for name, layer in report.layers.items():
            verdict = layer.verdict
            if self.said.get(name) != (verdict.name, verdict.severity):
                self.said[name] = (verdict.name, verdict.severity)
                self.say(f"step {step}: {name} {verdict.message}")
                for note in verdict.notes:
                    self.say(f"step {step}: {name} note: {note}")

    def finish(self) -> list[Path]:
        """The figures of the run's probes, as PNGs in `<run>/diagnostics/` (when `config.plots`)."""
        if not self.config.plots or not self.history:
            return []
        from rnnlab.diagnostics import plots

        return plots.save_all(self.history, self.run.path / "diagnostics")


def _headline(layer: LayerReport) -> dict[str, Any]:
    """The numbers of one layer worth a TensorBoard curve."""
    sat = layer.saturation or {}
    keep = sat.get("keep_gate") or {}
    drop = layer.first_over_peak
    return {
        "gamma": layer.jacobian.gamma if layer.jacobian else None,
        "horizon": layer.jacobian.horizon if layer.jacobian else None,
        "log10_first_over_peak": math.log10(drop) if drop else None,
        "spectral_radius": layer.spectral_radius,
        "tanh_saturated": sat.get("tanh"),
        "gates_saturated": sat.get("gates"),
        "keep_gate_median": (keep.get("quantiles") or {}).get("q50"),
        "healthy": float(layer.verdict.name == "healthy"),
        "alarm": float(layer.verdict.alarm),
    }


class LossTrend:
    """The finite training losses seen: whether the loss still falls (see `falling`)."""

    def __init__(self) -> None:
        self.first: list[float] = []
        self.recent: deque[float] = deque(maxlen=2 * TREND_WINDOW)

    def add(self, loss: float) -> None:
        if math.isfinite(loss):
            if len(self.first) < TREND_WINDOW:
                self.first.append(loss)
            self.recent.append(loss)

    def falling(self) -> str | None:
        """Why the loss counts as still falling ("the loss still falls: 0.52 → 0.31 over the last 100
        steps"), or None: the median of the last window is `FALLING` below the one before, or `FALLEN` × the
        first window's or less. The windows are `TREND_WINDOW` steps, fewer early in a run."""
        losses = list(self.recent)
        w = min(TREND_WINDOW, len(losses) // 2)
        if w < 2:
            return None
        before, now = statistics.median(losses[-2 * w : -w]), statistics.median(losses[-w:])
        start = statistics.median(self.first)

        def fmt(x: float) -> str:
            return format_number(x, 2)

        if now < before * (1 - FALLING):
            return f"the loss still falls: {fmt(before)} → {fmt(now)} over the last {2 * w} steps"
        if start > 0 and now <= FALLEN * start:
            return f"the loss fell from {fmt(start)} to {fmt(now)}"
        return None


def _finite(x: Any) -> bool:
    return isinstance(x, float) and math.isfinite(x)
