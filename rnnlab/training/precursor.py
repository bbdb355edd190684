"""Precursors of divergence: the pre-clip gradient norm spikes or climbs while the loss is still finite.

A run often turns to NaN some steps after its gradient norm has blown up, and the loss says nothing until
then. `NormWatch` sees every step's pre-clip norm and warns, once per episode, when

    spike:   ‖g_t‖ > SPIKE × median of the last WINDOW finite norms          (after WARMUP norms)
    growth:  the medians of the last four quarters of WINDOW steps rise one after the other, and the last
             is GROWTH × the first

while the loss is finite (a non-finite step is the guard's, guard.py). The loop says the warning in one
line and records it in events.jsonl ("grad_norm_spike" or "grad_norm_growth", with the step, the norm and
the median it was compared with). The watch starts afresh when a run resumes (its WARMUP steps again).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from rnnlab.diagnostics.verdict import clip_remedy
from rnnlab.text import format_number

#: a norm this many times the running median is a spike: a step 10× the typical one moves the weights as
#: far as ten typical steps at once, and rarely comes alone.
SPIKE = 10.0
#: steps in the running median, and the window over which steady growth is measured.
WINDOW = 64
#: a growth of the quarter-window median by this factor over the window (steadily) is a warning: ten times
#: the norm within 64 steps is no longer the usual drift of training.
GROWTH = 10.0
#: norms seen before any warning: the first steps of a run move the norm a lot, and say nothing.
WARMUP = 20


@dataclass
class Precursor:
    """One warning: what ("grad_norm_spike" or "grad_norm_growth"), at which step, the norm and the median
    it was compared with."""

    event: str
    step: int
    norm: float
    reference: float

    @property
    def ratio(self) -> float:
        return self.norm / self.reference if self.reference > 0 else math.inf

    @property
    def message(self) -> str:
        norm, ref = format_number(self.norm, 2), format_number(self.reference, 2)
        times = format_number(self.ratio, 2)
        if self.event == "grad_norm_spike":
            what = f"gradient norm before clipping {norm} is {times}× its median over the last steps ({ref})"
        else:
            what = (
                f"gradient norm before clipping grew {times}× over the last {WINDOW} steps ({ref} → {norm})"
            )
        advice = f"try {clip_remedy(self.reference)} or lower optim.lr"
        return (
            f"step {self.step}: warning: {what}, the loss still finite: a precursor of divergence; {advice}"
        )

    def details(self) -> dict[str, Any]:
        """The events.jsonl fields besides the event and the step."""
        return {"norm": self.norm, "median": self.reference, "ratio": self.ratio}


class NormWatch:
    """Sees every step's pre-clip gradient norm; `observe` returns a `Precursor` when one is due."""

    def __init__(self) -> None:
        self.norms: deque[float] = deque(maxlen=WINDOW)
        self.spiking = False  # inside a spike episode: said once, until a norm is back under the bar
        self.growing_since: int | None = None  # the step growth was said at: again only a window later

    def observe(self, step: int, norm: float, loss: float) -> Precursor | None:
        if not (math.isfinite(norm) and math.isfinite(loss)):
            return None  # the guard records non-finite steps
        found = None
        if len(self.norms) >= WARMUP:
            median = statistics.median(self.norms)
            spike = median > 0 and norm > SPIKE * median
            if spike and not self.spiking:
                found = Precursor("grad_norm_spike", step, norm, median)
            self.spiking = spike
        self.norms.append(norm)
        if found is None and len(self.norms) == WINDOW:
            found = self._growth(step)
        return found

    def _growth(self, step: int) -> Precursor | None:
        if self.growing_since is not None and step - self.growing_since < WINDOW:
            return None
        values = list(self.norms)
        quarter = WINDOW // 4
        medians = [statistics.median(values[i : i + quarter]) for i in range(0, WINDOW, quarter)]
        rising = all(b > a for a, b in zip(medians, medians[1:], strict=False))
        if rising and medians[0] > 0 and medians[-1] >= GROWTH * medians[0]:
            self.growing_since = step
            return Precursor("grad_norm_growth", step, medians[-1], medians[0])
        return None
