"""Diagnostics in training: the loop's adapter from `rnnlab.watch` to the run folder, every N steps.

    [diagnostics]                      rnnlab train ... --diagnostics.every=100
    every = 100

The training loop wraps its forward and backward in `TrainingDiagnostics.watch(step)`. On every N-th step
that block runs under `rnnlab.watch`; the report is appended to `diagnostics.jsonl` (one object per probe:
"step" and `Report.to_dict()`: per-layer profile, γ, horizon, spectra, saturation, verdict), its headline
numbers go to TensorBoard under `diagnostics/<layer>/...` with the heatmap of log10 ‖∂L/∂h_t‖ over time step
× training step as an image, each layer's verdict is said live (at the first probe, then whenever it
changes), and `finish()` draws the figures into `<run>/diagnostics/`. A probed step
runs the unrolled path (equal to the fused kernel up to rounding); it computes the same update otherwise.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from rnnlab.diagnostics.probe import Probe, watch
from rnnlab.diagnostics.report import LayerReport, Report
from rnnlab.training.config import DiagnosticsConfig
from rnnlab.training.run import RunDir

FILE = "diagnostics.jsonl"


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
        self.said: dict[str, str] = {}  # layer -> the verdict last said

    def due(self, step: int) -> bool:
        return self.config.every > 0 and step % self.config.every == 0

    @contextlib.contextmanager
    def watch(self, step: int) -> Iterator[Probe | None]:
        """Wrap one update's forward and backward: a probe on the steps that are due, else nothing."""
        if not self.due(step):
            yield None
            return
        norms = [r["grad_norm"] for r in self.history if _finite(r.get("grad_norm"))]
        median = statistics.median(norms) if norms else None
        with watch(self.model, jacobian=self.config.jacobian, median_grad_norm=median) as probe:
            yield probe
        self.record(step, probe.report())

    def record(self, step: int, report: Report) -> None:
        """diagnostics.jsonl, TensorBoard scalars and the heatmap image of one probe."""
        row = {"step": step, **report.to_dict()}
        self.run.append(FILE, row)
        self.history.append(row)
        self.run.scalars("diagnostics", {"grad_norm": report.grad_norm}, step)
        for name, layer in report.layers.items():
            self.run.scalars(f"diagnostics/{name}", _headline(layer), step)
        from rnnlab.diagnostics import plots  # matplotlib loads with the first probe, not with rnnlab

        fig = plots.profile_heatmap(self.history)
        self.run.tensorboard.add_image(
            "diagnostics/grad_flow", plots.figure_to_array(fig), step, dataformats="HWC"
        )
        for name, layer in report.layers.items():
            if self.said.get(name) != layer.verdict.name:
                self.said[name] = layer.verdict.name
                self.say(f"step {step}: {name} {layer.verdict.message}")

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
    }


def _finite(x: Any) -> bool:
    return isinstance(x, float) and math.isfinite(x)
