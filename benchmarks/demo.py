"""The demo's promises, measured: `rnnlab demo` within 5 minutes on 2 CPU cores, and the same numbers for the
same seed.

Runs `rnnlab demo` (exactly as the README says, in its own process) `--repeats` times with one seed, times
each, and checks that every run of the six has bitwise the same test metric, steps, solved step, guard
events and verdicts in every repeat. Prints a Markdown table for RESULTS.md: per model, its test MSE beside
the memoryless baseline, the step it solved at, the verdict at its first probe and at its last, what the
non-finite guard did.

    python benchmarks/demo.py                      # 2 repeats of the README's demo
    python benchmarks/demo.py --length 100 --steps 600 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def verdicts(folder: Path) -> tuple[str, str]:
    """The first and the last probe's verdict names (one layer: "vanishing")."""
    lines = [json.loads(line) for line in (folder / "diagnostics.jsonl").read_text().splitlines() if line]

    def names(probe: dict[str, Any]) -> str:
        return ", ".join(layer["verdict"]["name"] for layer in probe["layers"].values())

    return (names(lines[0]), names(lines[-1])) if lines else ("-", "-")


def one_demo(out: Path, args: argparse.Namespace) -> tuple[float, dict[str, dict[str, Any]]]:
    """Run the demo into `out`; its wall time and, per variant, what is compared across repeats."""
    command = [sys.executable, "-m", "rnnlab", "demo", "--out", str(out), "--quiet"]
    command += ["--length", str(args.length), "--steps", str(args.steps), "--seed", str(args.seed)]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    rows = {}
    for run in json.loads((out / "compare.json").read_text())["runs"]:
        folder = out / run["folder"]
        s = json.loads((folder / "summary.json").read_text())
        first, last = verdicts(folder)
        rows[run["variant"]] = {
            "test mse": s["test"]["mse"],
            "baseline": s["baseline"]["mse"],
            "steps": s["steps"],
            "solved": (s.get("solved") or {}).get("step"),
            "skipped": s["skipped_steps"],
            "rollbacks": s["rollbacks"],
            "first verdict": first,
            "last verdict": last,
            "seconds": s["wall_time_s"],
        }
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds, rows = one_demo(Path(tmp) / f"demo{i}", args)
            times.append(seconds)
            results.append(rows)
            print(f"repeat {i + 1}: {seconds:.0f} s", file=sys.stderr)

    def numbers(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k != "seconds"}

    same = all(numbers(r) == numbers(results[0][label]) for rows in results[1:] for label, r in rows.items())
    print(
        f"`python benchmarks/demo.py --length {args.length} --steps {args.steps} --seed {args.seed} "
        f"--repeats {args.repeats}` on {os.cpu_count()} CPU cores ({platform.machine()}, "
        f"torch threads default): wall time {', '.join(f'{t:.0f} s' for t in times)}; "
        + ("every number identical in every repeat" if same else "**the repeats differ**")
        + "\n"
    )
    print("| model | test MSE | baseline | solved at step | first probe | last probe | guard | time |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results[0].items():
        guard = (
            f"{r['skipped']} skipped, {r['rollbacks']} rollback(s)" if r["skipped"] or r["rollbacks"] else "-"
        )
        print(
            f"| {label} | {r['test mse']:.4g} | {r['baseline']:.4g} | {r['solved'] or '-'} | "
            f"{r['first verdict']} | {r['last verdict']} | {guard} | {r['seconds']:.0f} s |"
        )
    if not same:
        for i, rows in enumerate(results[1:], 2):
            for label, r in rows.items():
                if numbers(r) != numbers(results[0][label]):
                    print(f"repeat {i} differs for {label}: {r} vs {results[0][label]}", file=sys.stderr)


if __name__ == "__main__":
    main()
