"""The README's main job: why gated cells and the remedies work, measured on this machine in a few minutes.

    rnnlab demo                               # bash scripts/demo.sh; about a minute on 2 CPU cores
    rnnlab demo --out demo/ --length 200 --seed 1

Six models learn the adding problem (Hochreiter & Schmidhuber 1997: the sum of the two numbers marked among
`length` random ones; a model with no memory scores MSE 1/6) one after another, each probed by the
diagnostics at its first step and every 100 steps:

1. a tanh RNN with torch's initialisation: its gradient through time vanishes within ~20 steps;
2. the same with an orthogonal recurrent matrix and norm clipping (the remedies the verdict names for it);
3. an LSTM with chrono initialisation (Tallec & Ollivier 2018: forget gates that remember ~`length` steps);
4. a GRU;
5. a tanh RNN whose recurrent matrix is orthogonal scaled to spectral radius 1.5: its gradient through time
   explodes (γ ≈ 1.07 per step, ~2·10⁴ over 150 steps); plain SGD then diverges (non-finite steps: the
   guard rolls back and halves the learning rate) and ends with most of its tanh units saturated;
6. the same with the gradient clipped to norm 1: the same explosion at the first step, and it trains on,
   finite and unsaturated.

Runs 1-4 use Adam (lr 1e-2, as the adding task's recipe); 5 and 6 use plain SGD (lr 0.05), because Adam
divides every step by the gradient's running size, which hides an explosion (and makes clipping look useless).
A run stops when its validation MSE reaches 0.01 ("solved"). The demo prints the ranked table, what the
diagnostics said at the first step and how each run ended, and writes every run folder, `curves.png` and
`report.html` into `--out`.
The same seed gives the same numbers (denormals are flushed to zero, the data and weights come from the seed).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab.compare import Comparison, Variant, compare, guard_events, last_verdict, table

#: what every run of the demo shares (flags of `rnnlab train`).
SHARED = {
    "task.name": "adding",
    "model.hidden_size": "32",
    "optim.name": "adam",
    "optim.lr": "1e-2",
    "clip.mode": "none",
    "eval.every": "50",
    "eval.target": "0.01",
    "diagnostics.every": "100",
    "checkpoint.every": "500",
}

#: plain SGD for the exploding pair (see the module docstring).
SGD = {"optim.name": "sgd", "optim.lr": "0.05"}
CLIP = {"clip.mode": "norm", "clip.max_norm": "1"}
EXPLODING = {"model.cell": "rnn", "model.init": "orthogonal", "model.spectral_radius": "1.5"}


def variants(length: int) -> list[Variant]:
    """The six models of the demo, in the order of the module docstring."""
    return [
        Variant("tanh RNN, torch init", {"model.cell": "rnn"}),
        Variant(
            "tanh RNN, orthogonal init + clipping", {"model.cell": "rnn", "model.init": "orthogonal", **CLIP}
        ),
        Variant("LSTM, chrono init", {"model.cell": "lstm", "model.chrono": str(length)}),
        Variant("GRU", {"model.cell": "gru"}),
        Variant("tanh RNN, ρ=1.5, SGD", {**EXPLODING, **SGD}),
        Variant("tanh RNN, ρ=1.5, SGD + clipping", {**EXPLODING, **SGD, **CLIP}),
    ]


@dataclass
class Demo:
    comparison: Comparison
    seconds: float

    @property
    def report(self) -> Path:
        return self.comparison.out / "report.html"


def run(
    out: str | Path,
    length: int = 150,
    steps: int = 1500,
    seed: int = 0,
    *,
    progress: bool = True,
    say: Any = None,
    quiet: bool = False,
) -> Demo:
    """Train the six models (see the module docstring) into `out`, which must not exist."""
    say = say or (lambda line: print(line, file=sys.stderr))
    shared = {**SHARED, "task.length": str(length), "steps": str(steps)}
    t0 = time.perf_counter()
    comparison = compare(
        variants(length),
        shared,
        [seed],
        out,
        progress=progress,
        quiet=quiet,
        say=say,
        report_title=f"rnnlab demo: the adding problem over {length} steps",
    )
    return Demo(comparison, time.perf_counter() - t0)


def first_verdicts(comparison: Comparison) -> list[tuple[str, str]]:
    """Each run's verdict at its first probe (the initialisation's), "vanishing (alarm): horizon 18 steps <
    150-step sequences ...", beside the variant's label."""
    said = []
    for o in comparison.outcomes:
        path = o.folder / "diagnostics.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        if not lines:
            said.append((o.variant.label, "no probe"))
            continue
        layers: dict[str, Any] = json.loads(lines[0]).get("layers", {})
        first: dict[str, Any] = next(iter(layers.values()), {})
        verdict = first.get("verdict") or {}
        evidence = verdict.get("evidence", "")
        said.append(
            (o.variant.label, f"{verdict.get('name', '?')} ({verdict.get('severity', '?')}): {evidence}")
        )
    return said


def summary(demo: Demo) -> str:
    """What the demo prints when it is done."""
    lines = [table(demo.comparison), "", "At the first step, before any update, the diagnostics said:"]
    width = max(len(label) for label, _ in first_verdicts(demo.comparison))
    lines += [f"  {label:{width}s}  {text}" for label, text in first_verdicts(demo.comparison)]
    lines += ["", "By the end of training:"]
    for o in demo.comparison.outcomes:
        said = o.error or ", ".join(
            filter(None, [guard_events(o.summary), f"last probe {last_verdict(o.folder)}"])
        )
        lines.append(f"  {o.variant.label:{width}s}  {said}")
    lines += ["", f"{demo.seconds:.0f} s; the report: {demo.report}"]
    return "\n".join(lines)


def default_out() -> Path:
    return Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"


def main(argv: list[str] | None = None) -> int:
    """`python -m rnnlab.demo` is `rnnlab demo`."""
    from rnnlab.cli import main as cli

    return cli(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
