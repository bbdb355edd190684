"""What a probe found: one `LayerReport` per layer and direction, a `Report` over the model.

`Report.to_dict()` is what `diagnostics.jsonl` holds (one object per probe); `str(report)` is a short
table with the verdict and severity (alarm, note, ok) of every layer and, for each finding, its numbers,
the options to try (config overrides) and hints, then the notes. "-" marks a number that was not
measured. Non-finite
numbers stay floats (`NaN`, `Infinity` in the JSON, as Python's `json` writes and reads them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from rnnlab.diagnostics.jacobian import JacobianResult
from rnnlab.diagnostics.verdict import Evidence, Verdict
from rnnlab.text import format_number


def to_python(obj: Any) -> Any:
    """Tensors inside dicts, lists and tuples as Python numbers and lists."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, dict):
        return {k: to_python(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_python(v) for v in obj]
    return obj


@dataclass
class LayerReport:
    """One layer and direction, e.g. "encoder.l0_reverse"; time is in processing order.

    profile_h (T,) is ‖∂L/∂h_t‖ over batch and features at every step (profile_c the same for an LSTM's
    c_t); None when no backward reached the layer inside the probe.
    """

    name: str
    cell: str
    steps: int | None
    batch: int | None
    profile_h: list[float] | None
    profile_c: list[float] | None
    saturation: dict[str, Any] | None
    spectra: dict[str, dict[str, float]]
    jacobian: JacobianResult | None
    nonfinite: dict[str, int | None]
    verdict: Verdict
    jacobian_skipped: str | None = None
    evidence: Evidence | None = field(default=None, repr=False)  # what the verdict rests on

    @property
    def spectral_radius(self) -> float | None:
        """The largest spectral radius over the gate blocks of the recurrent weights."""
        return max_radius(self.spectra)

    @property
    def first_over_peak(self) -> float | None:
        """‖∂L/∂s‖ at the first processed step over its peak, the best over h (and c)."""
        return first_over([p for p in (self.profile_h, self.profile_c) if p], "peak")

    @property
    def first_over_last(self) -> float | None:
        """‖∂L/∂s‖ at the first processed step over the one at the last, the largest over h (and c)."""
        return first_over([p for p in (self.profile_h, self.profile_c) if p], "last")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "steps": self.steps,
            "batch": self.batch,
            "profile_h": self.profile_h,
            "profile_c": self.profile_c,
            "saturation": self.saturation,
            "spectra": self.spectra,
            "jacobian": None if self.jacobian is None else self.jacobian.to_dict(),
            "nonfinite": self.nonfinite,
            "jacobian_skipped": self.jacobian_skipped,
            "verdict": self.verdict.to_dict(),
        }


@dataclass
class Report:
    """The model-wide result of one probe (see `rnnlab.watch`)."""

    layers: dict[str, LayerReport]
    grad_norm: float | None
    param_grad_norms: dict[str, float]
    nonfinite_params: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nonfinite_weights: list[str] = field(default_factory=list)

    @property
    def verdicts(self) -> dict[str, str]:
        """{layer: verdict name}."""
        return {name: layer.verdict.name for name, layer in self.layers.items()}

    @property
    def healthy(self) -> bool:
        return all(v == "healthy" for v in self.verdicts.values())

    @property
    def alarms(self) -> dict[str, Verdict]:
        """{layer: verdict} of the layers whose verdict is an alarm (not a note)."""
        return {name: layer.verdict for name, layer in self.layers.items() if layer.verdict.alarm}

    def to_dict(self) -> dict[str, Any]:
        return {
            "grad_norm": self.grad_norm,
            "param_grad_norms": self.param_grad_norms,
            "nonfinite_params": self.nonfinite_params,
            "nonfinite_weights": self.nonfinite_weights,
            "layers": {name: layer.to_dict() for name, layer in self.layers.items()},
            "notes": self.notes,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        head = (
            "layer",
            "verdict",
            "severity",
            "‖∂L/∂s_0‖/peak",
            "γ/step",
            "horizon",
            "max ρ(W_hh)",
            "tanh sat",
            "keep gate",
        )
        rows = [head]
        for name, layer in self.layers.items():
            rows.append(
                (
                    name,
                    layer.verdict.name,
                    layer.verdict.severity,
                    _fmt(layer.first_over_peak),
                    _fmt(layer.jacobian.gamma if layer.jacobian else None),
                    _fmt(layer.jacobian.horizon if layer.jacobian else None),
                    _fmt(layer.spectral_radius),
                    _fmt(_get(layer.saturation, "tanh"), percent=True),
                    _fmt(_get(layer.saturation, "keep_gate", "quantiles", "q50")),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        for name, layer in self.layers.items():
            if layer.verdict.flags:
                lines.append(f"  {name}: {layer.verdict.message}")
            lines += [f"  {name}: note: {note}" for note in layer.verdict.notes]
        lines.append(f"gradient norm before clipping: {_fmt(self.grad_norm)}")
        if self.nonfinite_params:
            lines.append("non-finite gradients in: " + ", ".join(self.nonfinite_params))
        if self.nonfinite_weights:
            lines.append("non-finite weights in: " + ", ".join(self.nonfinite_weights))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def max_radius(spectra: dict[str, dict[str, float]]) -> float | None:
    """The largest spectral radius in `recurrent_spectra`'s {gate: {"spectral_radius": ρ, ...}}."""
    radii = [v["spectral_radius"] for v in spectra.values()]
    return max(radii) if radii else None


def first_over(profiles: list[list[float]] | None, to: str) -> float | None:
    """The largest ratio over the state fields' profiles of ‖∂L/∂s‖ at the first processed step to its
    peak (`to="peak"`) or its last value: the gradient reaches the past along its best path (for an LSTM
    often c while ∂L/∂h_t has faded). None where no ratio is finite."""
    ratios = []
    for p in profiles or []:
        ref = max(p) if to == "peak" else p[-1]
        if ref > 0 and math.isfinite(ref) and math.isfinite(p[0]):
            ratios.append(p[0] / ref)
    return max(ratios) if ratios else None


def profile_horizon(profiles: list[list[float]] | None, threshold: float) -> float | None:
    """The steps back from the last processed one until ‖∂L/∂s_t‖ first falls below `threshold` × its
    peak, the longest over the state fields; None where it never does (or nothing was measured)."""
    horizons = []
    for p in profiles or []:
        peak = max(p) if p else 0.0
        if not peak > 0 or not math.isfinite(peak):
            continue
        below = [len(p) - 1 - t for t in range(len(p) - 1, -1, -1) if p[t] < threshold * peak]
        if not below:
            return None
        horizons.append(float(below[0]))
    return max(horizons) if horizons else None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _fmt(x: float | None, percent: bool = False) -> str:
    """A table cell: two significant digits, "-" where nothing was measured."""
    return format_number(x, 2, missing="-", percent=percent)
