"""Verdicts with a severity: what is wrong with a layer's gradient through time, how much it matters, what
to try.

Names: healthy, vanishing, exploding, saturated, forgetting, and three for values that are not numbers:
non-finite input, non-finite weight, non-finite gradient. Every threshold is a named constant with the
reasoning behind it.

Precedence. The checks run in this order and the first that holds names the verdict (the others are kept
as flags); a cause comes before what it causes:
1. non-finite input: NaN/Inf at a valid step of the input is a data problem, whatever follows from it
   (or the layer below sends NaN/Inf: its own verdict says why);
2. non-finite weight: a parameter of the layer holds NaN/Inf (named), even when the forward stays finite;
3. non-finite gradient: the gradient reaching the layer is already NaN/Inf (from the loss, or from the
   layer above), while its states are finite;
4. exploding by overflow: a state or ∂L/∂h_t of the layer's own went non-finite;
5. saturated: units sit in the flat tails of tanh and σ, which also closes gates and shrinks the
   Jacobians; the gate statistics come with it as supporting evidence;
6. forgetting: the keep gates (LSTM f, GRU z) are closed while the units are not saturated;
7. exploding: the layer's own recurrence grows;
8. vanishing: the layer's own recurrence decays within the sequence.

Own recurrence. Exploding and vanishing rest on the layer's own Jacobian products ‖∂s_L/∂s_t‖ (jacobian.py)
when they were measured. The profile ‖∂L/∂h_t‖ supports them; where it grows or falls and the Jacobian
does not, a note says why instead: the gradient arriving from the layer above (named with its verdict), or
the losses of many steps adding up (many-to-many, ∂L/∂h_t sums every later step's loss, so a
norm-preserving recurrence over T steps shows a profile ratio of up to T). Without the Jacobian the
profile is read for the layer's own part: its ratio divided by what the loss terms and the layer above
explain.

Severity. "alarm" when the verdict is likely why training fails, "note" when it is true but may not
matter, "ok" for healthy. Broken cases (the three non-finite verdicts, exploding) are alarms. Vanishing is
a note when the memory horizon still covers `SHORT_HORIZON` of the sequence ("note: horizon 18 steps <
50-step sequences; matters only if the task needs longer memory"), an alarm below. In training, an alarm
that is not broken becomes a note while the loss still falls (`Verdict.soften`).

Each remedy is one alternative to try, written as the run configuration's `key=value` overrides separated
by spaces ("model.cell=lstm", "clip.mode=norm clip.max_norm=2"): `rnnlab train --model.cell=lstm` on the
command line, `override(config, {"model.cell": "lstm"})` in code, `cell="lstm"` for `rnnlab.SequenceModel`.
Advice that no setting expresses ("scale the inputs to unit variance") is a hint, a plain sentence.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from rnnlab.cells import CELLS
from rnnlab.diagnostics.saturation import KEEP_CLOSED
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
FORGET_CLOSED = KEEP_CLOSED
#: Vanishing is only a note while the memory horizon covers at least this share of the sequence: the
#: layer still relates steps a quarter of the sequence apart, which many tasks need no more than; below
#: it the layer is nearly memoryless over the sequence it is trained on.
SHORT_HORIZON = 0.25
#: A profile ratio up to this many times what the loss terms explain is read as their sum, not growth:
#: correlated per-step losses add up linearly, and their sizes differ from step to step.
ACCUMULATION_SLACK = 10.0
#: significant digits of the numbers in a verdict: their order of magnitude matters, not a third digit.
DIGITS = 2

ALARM, NOTE, OK = "alarm", "note", "ok"
#: verdicts that stay alarms in training whatever the loss does.
BROKEN = ("non-finite input", "non-finite weight", "non-finite gradient", "exploding")


@dataclass
class Evidence:
    """What one layer's verdict rests on; None where it was not measured."""

    cell: str
    gated: bool
    steps: int | None = None
    profile_drop: float | None = None  # ‖∂L/∂state‖ at the first processed step / its peak (best field)
    profile_growth: float | None = None  # ‖∂L/∂state‖ at the first processed step / at the last
    profile_horizon: float | None = None  # steps back from the end until the profile is under VANISHING
    profile_names: str = "‖∂L/∂h_t‖"  # the profiles those ratios come from (the best of them)
    gamma: float | None = None
    horizon: float | None = None
    horizon_extrapolated: bool = False
    full_product: float | None = None  # ‖∂s_L/∂s_0‖₂ over the analysed sequence
    growth: float | None = None  # largest ‖∂s_L/∂s_{L-k}‖₂ over the lags
    jacobian_steps: int | None = None
    jacobian_sample: int | None = None
    jacobian_skipped: str | None = None  # why the Jacobian analysis was skipped
    spectral_radius: float | None = None  # largest over the gate blocks
    tanh_saturated: float | None = None
    gates_saturated: float | None = None
    keep_gate: str | None = None
    keep_median: float | None = None
    keep_closed: float | None = None  # share of keep gates below FORGET_CLOSED
    nonfinite_state_step: int | None = None
    nonfinite_grad_step: int | None = None
    nonfinite_input: tuple[int, int] | None = None  # (sample, step) of the first NaN/Inf in the input
    nonfinite_samples: int = 0
    batch: int | None = None
    nonfinite_weights: list[str] = field(default_factory=list)  # this layer's parameters holding NaN/Inf
    nonfinite_loss_step: int | None = None  # first step whose output gradient is NaN/Inf
    below_nonfinite: str = ""  # the units of the layer below whose states went NaN/Inf
    above_nonfinite: str = ""  # the units of the layer above with a NaN/Inf state, gradient or weight
    loss_terms: int | None = None  # steps where gradient enters from outside the layer's recurrence
    above: str = ""  # the layer above, with its verdict: "encoder.l1 exploding"
    above_growth: float | None = None  # largest profile growth of the layer above
    above_drop: float | None = None  # smallest profile drop of the layer above
    grad_norm: float | None = None
    median_grad_norm: float | None = None


@dataclass
class Verdict:
    """A layer's verdict: the name, its severity, every condition that held, the numbers in words, what to
    try, and notes (true findings that need no action, or that belong to another layer).

    `remedies` are alternatives, each one or more space-separated `key=value` config overrides
    ("model.cell=lstm", "clip.mode=norm clip.max_norm=2"); `hints` are advice no setting expresses.
    """

    name: str
    severity: str = OK
    flags: list[str] = field(default_factory=list)
    evidence: str = ""
    remedies: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return self.severity == ALARM

    @property
    def message(self) -> str:
        """The verdict in one line: "alarm: vanishing: … (γ = 0.93 per step, horizon 95 steps): try A, B
        or C", then "; also: " and the hints ("healthy: γ = …" when healthy)."""
        text = f"{self.name}: {self.evidence}" if self.evidence else self.name
        if self.severity != OK:
            text = f"{self.severity}: {text}"
        advice = [f"try {_either(self.remedies)}"] if self.remedies else []
        if self.hints:
            advice.append(("also: " if self.remedies else "") + "; ".join(self.hints))
        return f"{text}: {'; '.join(advice)}" if advice else text

    def soften(self, reason: str) -> Verdict:
        """The verdict as a note, `reason` added to its evidence; broken cases and notes stay as they are."""
        if self.severity != ALARM or self.name in BROKEN:
            return self
        return dataclasses.replace(self, severity=NOTE, evidence=f"{self.evidence}; {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "flags": self.flags,
            "evidence": self.evidence,
            "remedies": self.remedies,
            "hints": self.hints,
            "notes": self.notes,
        }


def _either(alternatives: list[str]) -> str:
    """The alternatives in words: a; a or b; a, b or c."""
    *others, last = alternatives
    return f"{', '.join(others)} or {last}" if others else last


def diagnose(e: Evidence) -> Verdict:
    """The verdict of one layer from its evidence; the first check that holds names it (the precedence in
    the module docstring), the others are kept as flags, and the notes say what the numbers do not
    mean."""
    checks = [
        ("non-finite input", _nonfinite_input(e)),
        ("non-finite weight", _nonfinite_weight(e)),
        ("non-finite gradient", _nonfinite_gradient(e)),
        ("exploding", _overflow(e)),
        ("saturated", _saturated(e)),
        ("forgetting", _forgetting(e)),
        ("exploding", _exploding(e)),
        ("vanishing", _vanishing(e)),
    ]
    held = [(name, found) for name, found in checks if found is not None]
    notes = _notes(e)
    if not held:
        return Verdict("healthy", OK, [], _healthy(e), notes=notes)
    name, (evidence, remedies, hints) = held[0]
    flags = list(dict.fromkeys(n for n, _ in held))
    severity = ALARM
    if name == "vanishing" and not _short(e):
        severity = NOTE
    return Verdict(name, severity, flags, evidence, remedies, hints, notes)


#: (evidence, remedies, hints) of a check that held; None when it did not.
Finding = tuple[str, list[str], list[str]] | None


def _nonfinite_input(e: Evidence) -> Finding:
    if e.nonfinite_input is not None:
        sample, step = e.nonfinite_input
        text = f"at sample {sample}, step {step}"
        if e.nonfinite_samples > 1:
            of = f" of {e.batch}" if e.batch else ""
            text += f" ({e.nonfinite_samples}{of} sequences hold NaN or Inf)"
        return text, [], ["clean the data", "check the padding: pass the lengths so padded steps are masked"]
    if e.below_nonfinite and e.nonfinite_state_step is not None:
        step = e.nonfinite_state_step
        text = f"from the layer below ({e.below_nonfinite}), this layer's state from step {step}"
        return text, [], [f"see {e.below_nonfinite}"]
    return None


def _nonfinite_weight(e: Evidence) -> Finding:
    if not e.nonfinite_weights:
        return None
    text = (
        f"{', '.join(e.nonfinite_weights)} {'holds' if len(e.nonfinite_weights) == 1 else 'hold'} NaN or Inf"
    )
    return text, [_clip(e)], ["restore weights from a checkpoint taken before they broke", "lower optim.lr"]


def _nonfinite_gradient(e: Evidence) -> Finding:
    if e.nonfinite_state_step is not None:
        return None
    if e.nonfinite_loss_step is not None:
        step = e.nonfinite_loss_step
        text = f"the gradient reaching the outputs is NaN or Inf from step {step}, the states are finite"
        return text, [], ["check the targets and the loss for NaN or Inf"]
    if e.above_nonfinite and e.nonfinite_grad_step is not None:
        text = f"the gradient arriving from the layer above ({e.above_nonfinite}) is NaN or Inf"
        return text, [], [f"see {e.above_nonfinite}"]
    return None


def _overflow(e: Evidence) -> Finding:
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
    return _keep_text(e), ["model.forget_bias=1.0", f"model.chrono={_chrono(e)}"], []


def _keep_text(e: Evidence) -> str:
    """ "median f gate 0.0025 (memory 0.17 steps), 100% of them below 0.1"."""
    assert e.keep_median is not None
    memory = (
        -1.0 / math.log(e.keep_median) if 0 < e.keep_median < 1 else (0.0 if e.keep_median <= 0 else math.inf)
    )
    median, steps = format_number(e.keep_median, DIGITS), format_number(memory, DIGITS)
    text = f"median {e.keep_gate} gate {median} (memory {steps} steps)"
    if e.keep_closed is not None:
        text += f", {format_number(e.keep_closed, DIGITS, percent=True)} of them below {FORGET_CLOSED:g}"
    return text


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
    text = ", ".join(parts)
    if e.keep_median is not None:
        text += f"; {_keep_text(e)}"
    remedies = _init(e, "xavier_uniform") + _cells(e, "layernorm_lstm", "layernorm_gru")
    return text, remedies, ["scale the inputs to unit variance"]


def _explained_growth(e: Evidence) -> float:
    """How much ‖∂L/∂h_t‖ may grow towards the first step without this layer's recurrence growing: the
    loss terms that add up, times the growth of the gradient arriving from above."""
    return max(1, e.loss_terms or 1) * max(1.0, e.above_growth or 1.0)


def _exploding(e: Evidence) -> Finding:
    parts = []
    if e.growth is not None:
        if e.growth > EXPLODING:
            growth, gamma = format_number(e.growth, DIGITS), format_number(e.gamma, DIGITS)
            parts.append(
                f"‖∂s_L/∂s_t‖ grows to {growth} over {e.jacobian_steps} steps (γ = {gamma} per step)"
            )
    elif e.profile_growth is not None:
        own = e.profile_growth / _explained_growth(e)
        if own > EXPLODING:
            grow = _verb(e, "grows", "grow")
            text = f"{e.profile_names} {grow} by {_pow10(e.profile_growth)} over {e.steps} steps"
            if own < e.profile_growth:
                text += f" ({_pow10(own)} beyond what the loss terms and the layer above explain)"
            parts.append(text)
    if not parts:
        return None
    remedies = [_clip(e)]
    if e.spectral_radius is not None and e.spectral_radius > 1.0 and e.cell not in ORTHOGONAL_RECURRENT:
        remedies.append("model.spectral_radius=1.0")
    remedies += _init(e, "orthogonal")
    numbers = _norms(e)
    if e.spectral_radius is not None:
        numbers.append(f"spectral radius {format_number(e.spectral_radius, DIGITS)}")
    return ", ".join(parts + numbers), remedies, []


def _own_drop(e: Evidence) -> float | None:
    """The profile's drop that this layer's recurrence accounts for: what arrives from above has already
    fallen by `above_drop`."""
    if e.profile_drop is None:
        return None
    above = min(1.0, e.above_drop) if e.above_drop is not None and e.above_drop > 0 else 1.0
    return e.profile_drop / above


def _vanishing(e: Evidence) -> Finding:
    parts = []
    if e.full_product is not None:
        if e.full_product < VANISHING:
            product = format_number(e.full_product, DIGITS)
            parts.append(f"‖∂s_L/∂s_0‖ is {product} over {e.jacobian_steps} steps")
            if e.profile_drop is not None and e.profile_drop < VANISHING:
                parts.append(_fall(e))
    else:
        own = _own_drop(e)
        if own is not None and own < VANISHING:
            parts.append(_fall(e))
    if not parts:
        return None
    horizon, steps = _horizon(e), _sequence(e)
    if horizon is not None and steps is not None and not math.isinf(horizon):
        text = f"horizon {format_number(horizon, DIGITS)} steps < {steps}-step sequences"
        if not _short(e):
            text += "; matters only if the task needs longer memory"
        gamma = [] if e.gamma is None else [f"γ = {format_number(e.gamma, DIGITS)} per step"]
        text += f" ({', '.join(parts + gamma)})"
    else:
        text = ", ".join(parts) + _rate(e)
    chrono = f"model.chrono={_chrono(e)}"
    if e.gated:
        return text, [chrono, *_init(e, "orthogonal")], []
    # chrono sets the keep gate, which a cell without gates lacks: it comes with the change of cell
    return text, [*_cells(e, "lstm", "gru"), f"model.cell=lstm {chrono}", *_init(e, "orthogonal")], []


def _fall(e: Evidence) -> str:
    assert e.profile_drop is not None
    if e.profile_drop > 0:
        fall = _verb(e, "falls", "fall") + f" by {_pow10(1.0 / e.profile_drop)}"
    else:
        fall = _verb(e, "underflows", "underflow") + " to 0"
    return f"{e.profile_names} {fall} over {e.steps} steps"


def _horizon(e: Evidence) -> float | None:
    return e.horizon if e.horizon is not None else e.profile_horizon


def _sequence(e: Evidence) -> int | None:
    """The length of the sequence the horizon was measured on."""
    return e.jacobian_steps if e.horizon is not None else e.steps


def _short(e: Evidence) -> bool:
    """Whether the memory horizon covers under `SHORT_HORIZON` of the sequence (unknown: short)."""
    horizon, steps = _horizon(e), _sequence(e)
    return horizon is None or steps is None or horizon < SHORT_HORIZON * steps


def _notes(e: Evidence) -> list[str]:
    """What a profile shows that the layer's own recurrence does not: said, never read as its verdict."""
    notes = []
    own_growth = e.growth
    grows_alone = own_growth is not None and own_growth > EXPLODING  # then its own verdict says it
    if e.profile_growth is not None and e.profile_growth > EXPLODING and not grows_alone:
        grow = _verb(e, "grows", "grow")
        grow = f"{e.profile_names} {grow} by {_pow10(e.profile_growth)} over {e.steps} steps"
        explained = _explained_growth(e)
        if e.above and e.above_growth is not None and e.above_growth > EXPLODING:
            notes.append(f"{grow} with the gradient arriving from the layer above ({e.above})")
        elif (e.loss_terms or 1) > 1 and e.profile_growth <= explained * ACCUMULATION_SLACK:
            own = "" if own_growth is None else f" (‖∂s_L/∂s_t‖ at most {format_number(own_growth, DIGITS)})"
            notes.append(f"{grow}: the sum of the losses at {e.loss_terms} steps, not growth{own}")
        elif own_growth is not None:
            notes.append(
                f"{grow} while ‖∂s_L/∂s_t‖ of sample {e.jacobian_sample} stays at most "
                f"{format_number(own_growth, DIGITS)}: other sequences may grow"
            )
    if e.profile_drop is not None and e.profile_drop < VANISHING:
        fall = _fall(e)
        keeps = e.full_product is not None and e.full_product >= VANISHING
        if (
            e.above
            and e.above_drop is not None
            and e.above_drop < VANISHING
            and (keeps or e.full_product is None)
        ):
            notes.append(f"{fall} with the gradient arriving from the layer above ({e.above})")
        elif keeps:
            notes.append(
                f"{fall}, though ‖∂s_L/∂s_0‖ (the most this recurrence keeps) is "
                f"{format_number(e.full_product, DIGITS)}: the gradient lies in directions it shrinks"
            )
    if e.jacobian_skipped:
        notes.append(f"the Jacobian analysis skipped this layer: {e.jacobian_skipped}")
    return notes


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


def clip_remedy(median: float | None) -> str:
    """Clip at the first of 1, 2, 5 × 10^k at or above the median norm: typical steps pass untouched."""
    if median is None or not math.isfinite(median) or median <= 0:
        return "clip.mode=norm clip.max_norm=1"
    scale = 10.0 ** math.floor(math.log10(median))
    threshold = next(k * scale for k in (1, 2, 5, 10) if k * scale >= median * (1 - 1e-9))
    return f"clip.mode=norm clip.max_norm={threshold:g}"  # :g is a TOML number too: 1, 0.05, 2e+06


def _clip(e: Evidence) -> str:
    return clip_remedy(e.median_grad_norm)


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
#: cells whose recurrent weight is kept orthogonal (spectral radius 1 always: no rescaling, no re-init).
ORTHOGONAL_RECURRENT = ("OrthogonalCell",)


def _init(e: Evidence, name: str) -> list[str]:
    """The remedy `model.init=name`, where the cell's weights are matrices that training may move."""
    return [] if e.cell in VECTOR_RECURRENT + ORTHOGONAL_RECURRENT else [f"model.init={name}"]


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
