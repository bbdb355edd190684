"""Time per step of rnnlab.train against the loop a user writes by hand, on a model so small that the loop's
own costs show: SequenceModel(LSTM, H=32) on (T, B) = (50, 32) sequences.

  hand      zero_grad, forward, MSE, backward, Adam step: nothing else
  rnnlab    rnnlab.train with its defaults (metrics row and TensorBoard scalars every step, the guard,
            evaluation and checkpoint every 100 steps, summary and loss.png at the end), progress bar off

Both run in this process, interleaved round by round, each round a fresh run of --steps steps; the time
per step is the wall time of the whole call over its steps (so rnnlab's setup, checkpoints, evaluation
and end-of-run plot count). Goal: rnnlab at most 1.15x the hand loop. The "median step" columns are the
median time of one step (the hand loop timed step by step, rnnlab from its rows' time_s): the steps between
evaluations and checkpoints.

    python benchmarks/loop_overhead.py                  # 5 rounds of 300 steps
    python benchmarks/loop_overhead.py --profile        # where rnnlab's extra time goes (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import rnnlab

T, B, I, H, N = 50, 32, 1, 32, 1024


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, T, I, generator=g)
    return x, x.mean(dim=1)


def median_step(ends: list[float]) -> float:
    """The median time between consecutive steps' ends."""
    return statistics.median(b - a for a, b in zip(ends, ends[1:], strict=False))


def hand(steps: int) -> tuple[float, float]:
    """(seconds per step over the whole loop, median seconds of one step)."""
    torch.manual_seed(0)
    x, y = data()
    model = rnnlab.SequenceModel(I, H, 1)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    order = torch.randperm(N, generator=g)
    ends = []
    for step in range(steps):
        i = (step * B) % N
        if i == 0 and step:
            order = torch.randperm(N, generator=g)
        rows = order[i : i + B]
        loss = F.mse_loss(model(x[rows]), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ends.append(time.perf_counter())
    return (ends[-1] - start) / steps, median_step(ends)


def with_rnnlab(steps: int) -> tuple[float, float]:
    """(seconds per step over the whole call, median seconds of one step from the rows' time_s)."""
    torch.manual_seed(0)
    x, y = data()
    task = rnnlab.tasks.TensorTask(x, y, batch_size=B, val=(x[:256], y[:256]))
    model = rnnlab.SequenceModel(I, H, 1)
    with tempfile.TemporaryDirectory() as folder:
        config = rnnlab.TrainConfig(
            steps=steps, out=f"{folder}/run", optim=rnnlab.OptimConfig("adam", lr=1e-3)
        )
        start = time.perf_counter()
        history = rnnlab.train(model, task, config, progress=False)
        whole = (time.perf_counter() - start) / steps
    ends = [row["time_s"] for row in history.train]
    return whole, median_step(ends)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one rnnlab run instead")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a tiny model: threads only add noise
    if args.profile:
        with_rnnlab(20)  # imports and first allocations out of the way
        profiler = cProfile.Profile()
        profiler.runcall(with_rnnlab, args.steps)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        return
    hand(20), with_rnnlab(20)  # warm-up: imports, first allocations
    times: dict[str, list[tuple[float, float]]] = {"hand": [], "rnnlab": []}
    for _ in range(args.rounds):
        times["hand"].append(hand(args.steps))
        times["rnnlab"].append(with_rnnlab(args.steps))
    whole = {k: 1000 * statistics.median(w for w, _ in v) for k, v in times.items()}
    step = {k: 1000 * statistics.median(s for _, s in v) for k, v in times.items()}
    print(
        f"SequenceModel(LSTM, H={H}), (T, B) = ({T}, {B}); {args.steps} steps, median of {args.rounds} rounds"
    )
    print("| loop | ms per step | ratio | median step ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for k in whole:
        print(
            f"| {k} | {whole[k]:.2f} | {whole[k] / whole['hand']:.2f} | {step[k]:.2f} | "
            f"{step[k] / step['hand']:.2f} |"
        )


if __name__ == "__main__":
    main()
