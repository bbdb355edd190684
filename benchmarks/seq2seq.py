"""Sequence to sequence goals: numbers to French words >= 98% and date normalisation >= 99% exact within 10
minutes on 2 CPU cores with attention, and the same model without attention measurably worse on long inputs.

Each run is `rnnlab train --task seq2seq ...` (the task's recipe: a bidirectional LSTM encoder, H = 128,
Adam 3e-3, 3000 steps) in its own process with one thread, `--jobs` at a time, stopped by SIGTERM at
`--timeout` seconds (rnnlab then ends the step and writes its summary; the test split is then scored
here, with the best checkpoint). Then the run's model translates every test source and the exact-match
rate is split by the source's length (in tokens): the long third is where a fixed-size encoder state runs
out.

    python benchmarks/seq2seq.py                          # numbers and dates, with and without attention
    python benchmarks/seq2seq.py --only numbers --attention luong --steps 500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

EXPERIMENTS = {
    "numbers": ["--task.source", "numbers", "--task.lang", "fr"],
    "dates": ["--task.source", "dates"],
}


def train(name: str, attention: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    out = root / f"{name}-{attention}"
    command = [sys.executable, "-m", "rnnlab", "train", "--task", "seq2seq", *EXPERIMENTS[name]]
    command += ["--task.attention", attention, "--steps", str(args.steps), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        process.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: the run stops at the end of its step and writes its summary
        process.wait()
    seconds = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    if "exact" not in (summary.get("test") or {}):  # stopped by the timeout: score the test split here
        import rnnlab
        from rnnlab.training.saved import open_run

        run = open_run(out, "best")
        summary["test"] = rnnlab.evaluate(run.model, run.task, split="test")
    return {
        "task": name,
        "attention": attention,
        "seconds": seconds,
        "steps": summary["steps"],
        "test": summary["test"],
        "baseline": summary["baseline"],
        "by_length": by_length(out),
    }


def by_length(folder: Path) -> dict[str, float]:
    """Exact matches of the test pairs by the source's length in tokens: the short, middle and long third."""
    import torch

    from rnnlab.training.saved import open_run

    torch.set_num_threads(1)
    run = open_run(folder, "best")
    task: Any = run.task
    pairs = sorted(task.test.pairs, key=lambda p: len(task._tokens(p.source)))
    thirds = {"short": pairs[: len(pairs) // 3], "middle": pairs[len(pairs) // 3 : 2 * len(pairs) // 3]}
    thirds["long"] = pairs[2 * len(pairs) // 3 :]
    out = {}
    for name, part in thirds.items():
        got = task.translate(run.model, [p.source for p in part])
        out[name] = sum(g == p.target for g, p in zip(got, part, strict=True)) / max(len(part), 1)
        lengths = [len(task._tokens(p.source)) for p in part]
        out[f"{name}_tokens"] = f"{min(lengths)}-{max(lengths)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="numbers,dates")
    parser.add_argument("--attention", default="luong,none")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    plan = [(n, a) for n in args.only.split(",") for a in args.attention.split(",")]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: train(*job, args, Path(tmp)), plan))
    print(
        f"`python benchmarks/seq2seq.py --only {args.only} --attention {args.attention} --steps {args.steps} "
        f"--timeout {args.timeout:g} --jobs {args.jobs} --threads {args.threads}` on {os.cpu_count()} "
        "CPU cores\n"
    )
    print(
        "| task | attention | test exact | token acc. | BLEU | baseline exact / BLEU "
        "| exact: short / middle / long source | steps | time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t, b, L = r["test"], r["baseline"], r["by_length"]
        thirds = " / ".join(f"{L[k]:.3f} ({L[k + '_tokens']})" for k in ("short", "middle", "long"))
        print(
            f"| {r['task']} | {r['attention']} | {t['exact']:.4f} | {t['token_accuracy']:.4f} "
            f"| {t['bleu']:.1f} | {b['exact']:.3f} / {b['bleu']:.1f} | {thirds} | {r['steps']} "
            f"| {r['seconds']:.0f} s |"
        )


if __name__ == "__main__":
    main()
