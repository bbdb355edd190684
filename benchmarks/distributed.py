"""Steps per second of `rnnlab train` on one process against N processes (torchrun + DDP) on this machine,
the same global batch, each in its own run, alternated.

    python benchmarks/distributed.py                           # 1 vs 2 processes, LSTM on adding T=200
    python benchmarks/distributed.py --nproc 1,2,4 --steps 100 --cell gru

One process uses every core (torch's default threads); N processes share them (torchrun's launcher in
`rnnlab train --nproc` gives each cores // N threads). What DDP buys on one CPU machine is parallelism across
the batch's rows where torch's own threads do not reach (the recurrence's small matmuls), against its
gradient all-reduce every step; across machines or GPUs it is the way to scale at all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, args: argparse.Namespace, out: Path) -> float:
    command = [sys.executable, "-m", "rnnlab", "train", "--task", "adding", "--task.length", str(args.length)]
    command += ["--task.batch_size", str(args.batch), "--model.cell", args.cell, "--model.hidden_size"]
    command += [str(args.hidden), "--steps", str(args.steps), "--eval.every", "0", "--checkpoint.every"]
    command += [str(args.steps), "--out", str(out), "--quiet", "--nproc", str(nproc)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return float(json.loads((out / "summary.json").read_text())["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nproc", default="1,2", help="comma-separated process counts")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.nproc.split(",")]
    rates: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n in counts:
                rates[n].append(run(n, args, Path(tmp) / f"n{n}-r{r}"))
    print(
        f"`python benchmarks/distributed.py --nproc {args.nproc} --cell {args.cell} --length {args.length} "
        f"--batch {args.batch} --hidden {args.hidden} --steps {args.steps} --repeats {args.repeats}` on "
        f"{os.cpu_count()} CPU cores\n"
    )
    print("| processes | steps/s (median) | runs | ratio to 1 process |")
    print("|---|---|---|---|")
    base = statistics.median(rates[counts[0]])
    for n in counts:
        median = statistics.median(rates[n])
        runs = ", ".join(f"{v:.2f}" for v in rates[n])
        print(f"| {n} | {median:.2f} | {runs} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
