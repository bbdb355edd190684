"""Verdicts: healthy, vanishing, exploding, saturated or forgetting, with the numbers and the options to try.

Every threshold is a named constant with the reasoning behind it. The checks run in this order and the
first that holds names the verdict (the others are kept as flags): a non-finite state or gradient
(exploding), forget gates closed (forgetting), saturation, growth (exploding), decay (vanishing).
Each remedy is one alternative to try, written as the run configuration's `key=value` overrides separated
by spaces ("model.cell=lstm", "clip.mode=norm clip.max_norm=2"): `rnnlab train --model.cell=lstm` on the
command line, `override(config, {"model.cell": "lstm"})` in code, `cell="lstm"` for `rnnlab.SequenceModel`.
Advice that no setting expresses ("scale the inputs to unit variance") is a hint, a plain sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rnnlab.cells import CELLS
from rnnlab.text import format_number

#: Vanishing when the Jacobian product over the whole sequence falls below this (the memory horizon is
#: shorter than the sequence), or the gradient reaching the first step is below this share of its peak.
#: A contribution 10³ times smaller than the nearer ones summed into the same weight gradient is lost
#: among them; no optimiser step follows it, so a dependency that long is in practice unlearnable.
VANISHING = 1e-3
#: Exploding when the product grows by more than this over any lag, or the gradient at the first step is
#: this many times the one at the last: one early perturbation then outweighs everything the loss says.
EXPLODING = 1e3
#: Saturated when more than this share of tanh activations have |tanh| > 0.99 (slope below 0.02): then
#: most paths through the layer pass on under 2% of their gradient per step. Default inits give under 5%.
TANH_SATURATED = 0.3
#: ... or more than this share of the sigmoid gates (other than the keep gate) lie outside [0.01, 0.99].
#: Higher than for tanh because chrono initialisation closes about half the LSTM input gates on purpose.
GATES_SATURATED = 0.6
#: Forgetting when the median keep gate (LSTM f, GRU z) is below this: the cell keeps under 10% of its
#: state per step (memory −1/ln 0.1 ≈ 0.4 steps) and the gated path through time, the reason to use an
#: LSTM or GRU at all, is shut. Default inits sit near 0.5, chrono and forget_bias=1 higher.
FORGET_CLOSED = 0.1
#: significant digits of the numbers in a verdict: their order of magnitude matters, not a third digit.
DIGITS = 2


@dataclass
class Evidence:
    """What one layer's verdict rests on; None where it was not measured."""

    cell: str
    gated: bool
    steps: int | None = None
    profile_drop: float | None = None  # ‖∂L/∂state‖ at the first processed step / its peak (best field)
    profile_growth: float | None = None  # ‖∂L/∂state‖ at the first processed step / at the last
    profile_names: str = "‖∂L/∂h_t‖"  # the profiles those ratios come from (the best of them)
    gamma: float | None = None
    horizon: float | None = None
    horizon_extrapolated: bool = False
    full_product: float | None = None  # ‖∂s_L/∂s_0‖₂ over the analysed sequence
    growth: float | None = None  # largest ‖∂s_L/∂s_{L-k}‖₂ over the lags
    jacobian_steps: int | None = None
    spectral_radius: float | None = None  # largest over the gate blocks
    tanh_saturated: float | None = None
    gates_saturated: float | None = None
    keep_gate: str | None = None
    keep_median: float | None = None
    nonfinite_state_step: int | None = None
    nonfinite_grad_step: int | None = None
    grad_norm: float | None = None
    median_grad_norm: float | None = None


@dataclass
class Verdict:
    """A layer's verdict: the name, every condition that held, the numbers in words and what to try.

    `remedies` are alternatives, each one or more space-separated `key=value` config overrides
    ("model.cell=lstm", "clip.mode=norm clip.max_norm=2"); `hints` are advice no setting expresses.
    """

    name: str
    flags: list[str] = field(default_factory=list)
    evidence: str = ""
    remedies: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The verdict in one line: "vanishing: … (γ = 0.93 per step, horizon 95 steps): try A, B or C",
        then "; also: " and the hints."""
        text = f"{self.name}: {self.evidence}" if self.evidence else self.name
        advice = [f"try {_either(self.remedies)}"] if self.remedies else []
        if self.hints:
            advice.append(("also: " if self.remedies else "") + "; ".join(self.hints))
        return f"{text}: {'; '.join(advice)}" if advice else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flags": self.flags,
            "evidence": self.evidence,
            "remedies": self.remedies,
            "hints": self.hints,
        }


def _either(alternatives: list[str]) -> str:
    """The alternatives in words: a; a or b; a, b or c."""
    *others, last = alternatives
    return f"{', '.join(others)} or {last}" if others else last


def diagnose(e: Evidence) -> Verdict:
    """The verdict of one layer from its evidence (see the module docstring for the order of the checks)."""
    checks = [
        ("exploding", _nonfinite(e)),
        ("forgetting", _forgetting(e)),
        ("saturated", _saturated(e)),
        ("exploding", _exploding(e)),
        ("vanishing", _vanishing(e)),
    ]
    held = [(name, found) for name, found in checks if found is not None]
    if not held:
        return Verdict("healthy", [], _healthy(e))
    name, (evidence, remedies, hints) = held[0]
    flags = list(dict.fromkeys(n for n, _ in held))
    return Verdict(name, flags, evidence, remedies, hints)


#: (evidence, remedies, hints) of a check that held; None when it did not.
Finding = tuple[str, list[str], list[str]] | None


def _nonfinite(e: Evidence) -> Finding:
    where = []
    if e.nonfinite_state_step is not None:
        where.append(f"state non-finite from step {e.nonfinite_state_step}")
    if e.nonfinite_grad_step is not None:
        where.append(f"gradient non-finite from step {e.nonfinite_grad_step} (counting back from the end)")
    if not where:
        return None
    return "; ".join(where + _norms(e)), [_clip(e)], ["lower optim.lr"]


def _forgetting(e: Evidence) -> Finding:
    if e.keep_median is None or not e.keep_median < FORGET_CLOSED:
        return None
    memory = -1.0 / math.log(e.keep_median) if e.keep_median > 0 else 0.0
    median, steps = format_number(e.keep_median, DIGITS), format_number(memory, DIGITS)
    text = f"median {e.keep_gate} gate {median} (memory {steps} steps)"
    return text, ["model.forget_bias=1.0", f"model.chrono={_chrono(e)}"], []


def _saturated(e: Evidence) -> Finding:
    parts = []
    if e.tanh_saturated is not None and e.tanh_saturated > TANH_SATURATED:
        parts.append(
            f"{format_number(e.tanh_saturated, DIGITS, percent=True)} of tanh units have |tanh| > 0.99"
        )
    if e.gates_saturated is not None and e.gates_saturated > GATES_SATURATED:
        share = format_number(e.gates_saturated, DIGITS, percent=True)
        parts.append(f"{share} of sigmoid gates lie outside [0.01, 0.99]")
    if not parts:
        return None
    remedies = _init(e, "xavier_uniform") + _cells(e, "layernorm_lstm", "layernorm_gru")
    return ", ".join(parts), remedies, ["scale the inputs to unit variance"]


def _exploding(e: Evidence) -> Finding:
    parts = []
    if e.growth is not None and e.growth > EXPLODING:
        growth, gamma = format_number(e.growth, DIGITS), format_number(e.gamma, DIGITS)
        parts.append(f"‖∂s_L/∂s_t‖ grows to {growth} over {e.jacobian_steps} steps (γ = {gamma} per step)")
    if e.profile_growth is not None and e.profile_growth > EXPLODING:
        grow = _verb(e, "grows", "grow")
        parts.append(f"{e.profile_names} {grow} by {_pow10(e.profile_growth)} over {e.steps} steps")
    if not parts:
        return None
    remedies = [_clip(e)]
    if e.spectral_radius is not None and e.spectral_radius > 1.0:
        remedies.append("model.spectral_radius=1.0")
    remedies += _init(e, "orthogonal")
    numbers = _norms(e)
    if e.spectral_radius is not None:
        numbers.append(f"spectral radius {format_number(e.spectral_radius, DIGITS)}")
    return ", ".join(parts + numbers), remedies, []


def _vanishing(e: Evidence) -> Finding:
    parts = []
    if e.full_product is not None and e.full_product < VANISHING:
        parts.append(f"‖∂s_L/∂s_0‖ is {format_number(e.full_product, DIGITS)} over {e.jacobian_steps} steps")
    if e.profile_drop is not None and e.profile_drop < VANISHING:
        if e.profile_drop > 0:
            fall = _verb(e, "falls", "fall") + f" by {_pow10(1.0 / e.profile_drop)}"
        else:
            fall = _verb(e, "underflows", "underflow") + " to 0"
        parts.append(f"{e.profile_names} {fall} over {e.steps} steps")
    if not parts:
        return None
    text = ", ".join(parts) + _rate(e)
    chrono = f"model.chrono={_chrono(e)}"
    if e.gated:
        return text, [chrono, *_init(e, "orthogonal")], []
    # chrono sets the keep gate, which a cell without gates lacks: it comes with the change of cell
    return text, [*_cells(e, "lstm", "gru"), f"model.cell=lstm {chrono}", *_init(e, "orthogonal")], []


def _verb(e: Evidence, one: str, several: str) -> str:
    return several if " and " in e.profile_names else one


def _healthy(e: Evidence) -> str:
    return _rate(e).strip(" ()")


def _rate(e: Evidence) -> str:
    if e.gamma is None or e.horizon is None:
        return ""
    horizon = "beyond reach" if math.isinf(e.horizon) else f"{format_number(e.horizon, DIGITS)} steps"
    if e.horizon_extrapolated and not math.isinf(e.horizon):
        horizon += ", extrapolated"
    return f" (γ = {format_number(e.gamma, DIGITS)} per step, horizon {horizon})"


def _clip(e: Evidence) -> str:
    """Clip at the first of 1, 2, 5 × 10^k at or above the median norm: typical steps pass untouched."""
    m = e.median_grad_norm
    if m is None or not math.isfinite(m) or m <= 0:
        return "clip.mode=norm clip.max_norm=1"
    scale = 10.0 ** math.floor(math.log10(m))
    threshold = next(k * scale for k in (1, 2, 5, 10) if k * scale >= m * (1 - 1e-9))
    return f"clip.mode=norm clip.max_norm={threshold:g}"  # :g is a TOML number too: 1, 0.05, 2e+06


def _norms(e: Evidence) -> list[str]:
    """The gradient norms the clip threshold rests on, in words: "pre-clip norm 30000 (median 0.7)"."""
    median = None if e.median_grad_norm is None else format_number(e.median_grad_norm, DIGITS)
    if e.grad_norm is None:
        return [] if median is None else [f"median pre-clip norm {median}"]
    return [
        f"pre-clip norm {format_number(e.grad_norm, DIGITS)}"
        + ("" if median is None else f" (median {median})")
    ]


#: cells whose recurrent weight is a vector (one weight per unit), which the matrix initialisers refuse.
VECTOR_RECURRENT = ("IndRNNCell",)


def _init(e: Evidence, name: str) -> list[str]:
    """The remedy `model.init=name`, where the cell's weights are matrices."""
    return [] if e.cell in VECTOR_RECURRENT else [f"model.init={name}"]


def _cells(e: Evidence, *names: str) -> list[str]:
    """The remedies `model.cell=name`, except the cell the layer has already."""
    return [f"model.cell={name}" for name in names if CELLS[name].__name__ != e.cell]


def _chrono(e: Evidence) -> int:
    return max(3, e.jacobian_steps or e.steps or 3)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow10(x: float) -> str:
    """10⁶ for 1.3e6: the order of magnitude."""
    if not math.isfinite(x) or x <= 0:
        return str(x)
    return "10" + str(round(math.log10(x))).translate(_SUPERSCRIPT)
