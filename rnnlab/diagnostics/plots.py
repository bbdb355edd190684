"""Figures of gradient flow (matplotlib, no pyplot state, so they render anywhere, headless included).

Each function takes what a probe produced — a `Report`, its `to_dict()`, or a run's history (the objects of
`diagnostics.jsonl`, each with a "step") — and returns a `Figure`; `save_all` writes the PNGs of a run.

    profile_heatmap(history)          log10 ‖∂L/∂h_t‖: time step across, training step down
    profile_plot(report)              ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) over t at one probe, log scale
    spectral_radius_plot(history)     spectral radius of every recurrent gate block over training
    saturation_bars(report)           saturated tanh units, sigmoid gates, closed keep gates per layer
    keep_gate_plot(history)           the keep gate's median and quantiles per layer over training
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnlab.diagnostics.saturation import KEEP_CLOSED
from rnnlab.text import format_number

Record = Mapping[str, Any]


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a `diagnostics.jsonl`, in order."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _record(report: Any) -> Record:
    return report.to_dict() if hasattr(report, "to_dict") else report


def _layers(record: Record, layer: str | None) -> list[str]:
    names = list(record.get("layers", {}))
    if layer is not None:
        if layer not in names:
            raise ValueError(f"no layer {layer!r} in the diagnostics; layers: {', '.join(names)}")
        return [layer]
    if not names:
        raise ValueError("the diagnostics hold no layers")
    return names


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(7.0, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]


def _log10(values: Iterable[float | None]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


def profile_heatmap(history: Sequence[Record], layer: str | None = None, which: str = "h") -> Figure:
    """log10 ‖∂L/∂h_t‖ (or c with which="c") over time step × training step, one panel per layer."""
    if not history:
        raise ValueError("the history is empty: no probe has run yet")
    names = _layers(history[-1], layer)
    fig, axes = _figure(len(names))
    steps = [r.get("step", i) for i, r in enumerate(history)]
    for ax, name in zip(axes, names, strict=True):
        profiles = [((r.get("layers", {}).get(name) or {}).get(f"profile_{which}") or []) for r in history]
        width = max((len(p) for p in profiles), default=0)
        grid = np.full((len(profiles), max(width, 1)), np.nan)
        for i, p in enumerate(profiles):
            grid[i, : len(p)] = _log10(p)
        image = ax.imshow(
            np.ma.masked_invalid(grid),
            aspect="auto",
            interpolation="nearest",
            cmap="viridis",
            origin="upper",
            extent=(-0.5, grid.shape[1] - 0.5, len(steps) - 0.5, -0.5),
        )
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 6)).astype(int))
        ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
        ax.set(xlabel="time step t (processing order)", ylabel="training step", title=name)
        fig.colorbar(image, ax=ax, label=f"log10 ‖∂L/∂{which}_t‖")
    return fig


def profile_plot(report: Any, layer: str | None = None) -> Figure:
    """‖∂L/∂h_t‖ (solid) and ‖∂L/∂c_t‖ (dashed) over t at one probe, every layer on a log scale."""
    record = _record(report)
    fig, (ax,) = _figure()
    for name in _layers(record, layer):
        entry = record["layers"][name]
        for which, style in (("h", "-"), ("c", "--")):
            p = entry.get(f"profile_{which}")
            if p:
                values = np.array([np.nan if v is None or not v > 0 else v for v in p], dtype=float)
                ax.plot(np.arange(len(p)), values, style, label=f"{name} ∂L/∂{which}")
    ax.set_yscale("log")
    step = f" at step {record['step']}" if "step" in record else ""
    ax.set(
        xlabel="time step t (processing order)", ylabel="‖∂L/∂state_t‖", title=f"gradient through time{step}"
    )
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def spectral_radius_plot(history: Sequence[Record], layer: str | None = None) -> Figure:
    """Spectral radius of every recurrent gate block over training steps, with the line ρ = 1."""
    if not history:
        raise ValueError("the history is empty: no probe has run yet")
    fig, (ax,) = _figure()
    steps = [r.get("step", i) for i, r in enumerate(history)]
    for name in _layers(history[-1], layer):
        gates = (history[-1]["layers"][name].get("spectra") or {}).keys()
        for gate in gates:
            values = [
                ((r.get("layers", {}).get(name) or {}).get("spectra") or {})
                .get(gate, {})
                .get("spectral_radius")
                for r in history
            ]
            ax.plot(steps, [math.nan if v is None else v for v in values], marker=".", label=f"{name} {gate}")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="training step", ylabel="spectral radius ρ(W_hh block)", title="recurrent spectra")
    if ax.lines:
        ax.legend(fontsize="small", ncol=2)
    return fig


def saturation_bars(report: Any) -> Figure:
    """Per layer: share of saturated tanh units, of saturated sigmoid gates and of closed keep gates."""
    record = _record(report)
    names = _layers(record, None)
    kinds = (
        ("tanh", "tanh |x| > 0.99"),
        ("gates", "sigmoid gates ∉ [0.01, 0.99]"),
        ("keep", "keep gate < 0.01"),
    )
    fig, (ax,) = _figure()
    x = np.arange(len(names))
    for i, (kind, label) in enumerate(kinds):
        values = [_saturation(record["layers"][n].get("saturation") or {}, kind) for n in names]
        ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set(ylabel="share of activations", title="saturation")
    ax.legend(fontsize="small")
    return fig


def keep_gate_plot(history: Sequence[Record], layer: str | None = None) -> Figure:
    """The keep gate (LSTM f, GRU z) of every layer that has one over training steps: its median, the
    25-75% and 5-95% bands of its values, and the line below which a gate counts as closed."""
    if not history:
        raise ValueError("the history is empty: no probe has run yet")
    names = [n for n in _layers(history[-1], layer) if _keep_gate(history[-1], n) is not None]
    if not names:
        raise ValueError("no layer of the diagnostics has a keep gate (LSTM f, GRU z)")
    fig, (ax,) = _figure()
    steps = np.array([r.get("step", i) for i, r in enumerate(history)], dtype=float)
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        q = {
            key: np.array(
                [((_keep_gate(r, name) or {}).get("quantiles") or {}).get(key) for r in history], float
            )
            for key in ("q05", "q25", "q50", "q75", "q95")
        }
        gate = (_keep_gate(history[-1], name) or {}).get("name", "keep")
        ax.fill_between(steps, q["q05"], q["q95"], color=color, alpha=0.12, lw=0)
        ax.fill_between(steps, q["q25"], q["q75"], color=color, alpha=0.3, lw=0)
        ax.plot(steps, q["q50"], color=color, marker=".", label=f"{name} {gate}: median, 25-75%, 5-95%")
    ax.axhline(KEEP_CLOSED, color="grey", lw=0.8, ls=":", label=f"closed below {KEEP_CLOSED:g}")
    ax.set_ylim(0, 1)
    ax.set(xlabel="training step", ylabel="keep gate value", title="keep gate over training")
    ax.legend(fontsize="small")
    return fig


def _keep_gate(record: Record, name: str) -> Mapping[str, Any] | None:
    return ((record.get("layers", {}).get(name) or {}).get("saturation") or {}).get("keep_gate")


def _saturation(sat: Mapping[str, Any], kind: str) -> float:
    if kind == "keep":
        keep = sat.get("keep_gate")
        value = (sat.get("per_gate", {}).get(keep["name"], {}) or {}).get("low") if keep else None
    else:
        value = sat.get(kind)
    return math.nan if value is None else float(value)


def figure_to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as an (H, W, 3) uint8 array (for TensorBoard's `add_image`, dataformats="HWC")."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_all(history: Sequence[Record], folder: str | Path) -> list[Path]:
    """Write the four figures of a run's history to `folder` as PNGs; returns their paths."""
    if not history:
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "grad_flow_heatmap.png": profile_heatmap(history),
        "grad_flow_profile.png": profile_plot(history[-1]),
        "spectral_radius.png": spectral_radius_plot(history),
        "saturation.png": saturation_bars(history[-1]),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(folder / name, dpi=100)
        paths.append(folder / name)
    return paths


#: a y axis is logarithmic when its positive values span more than this factor: a loss that falls by
#: orders of magnitude is then readable all along, not only its first steps.
LOG_SPAN = 20.0
#: the y axis of a metric to lower ends at this many times the median of the values drawn
OFF_CHART = 1e3


def scale_falling(ax: Any, values: Sequence[np.ndarray]) -> None:
    """The y axis of a metric to lower: capped at OFF_CHART times the median of the values drawn, so a
    diverged run's spike (a loss of 1e30) does not flatten every other curve (a note says how high it went),
    and logarithmic when the values below the cap are all positive and span more than LOG_SPAN."""
    finite = [v[np.isfinite(v)] for v in values if len(v)]
    every = np.concatenate(finite) if finite else np.zeros(0)
    if not len(every):
        return
    cap = OFF_CHART * float(np.median(np.abs(every)))
    shown = every[every <= cap] if cap > 0 else every
    if len(shown) < len(every):
        ax.text(
            0.01,
            0.98,
            f"off the chart: values up to {format_number(float(every.max()))}",
            transform=ax.transAxes,
            fontsize="small",
            va="top",
            color="C3",
        )
    if len(shown) and shown.min() > 0 and shown.max() / shown.min() > LOG_SPAN:
        ax.set_yscale("log")
    if len(shown) < len(every):
        bottom = shown.min() / 2 if ax.get_yscale() == "log" else min(0.0, float(shown.min()))
        ax.set_ylim(bottom, cap)
