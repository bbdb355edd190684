"""Time per step of rnnlab.train against the loop a user writes by hand, on a model so small that the loop's
own costs show: SequenceModel(LSTM, H=32) on (T, B) = (50, 32) sequences.

  hand      zero_grad, forward, MSE, backward, Adam step: nothing else
  rnnlab    rnnlab.train with its defaults (metrics row and TensorBoard scalars every step, the guard,
            evaluation and checkpoint every 100 steps, summary and loss.png at the end), progress bar off

Both run in this process, interleaved round by round, each round a fresh run of --steps steps; the time
per step is the wall time of the whole call over its steps (so rnnlab's setup, checkpoints, evaluation
and end-of-run plot count). Goal: rnnlab at most 1.15x the hand loop.

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


def hand(steps: int) -> float:
    torch.manual_seed(0)
    x, y = data()
    model = rnnlab.SequenceModel(I, H, 1)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    order = torch.randperm(N, generator=g)
    for step in range(steps):
        i = (step * B) % N
        if i == 0 and step:
            order = torch.randperm(N, generator=g)
        rows = order[i : i + B]
        loss = F.mse_loss(model(x[rows]), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def with_rnnlab(steps: int) -> float:
    torch.manual_seed(0)
    x, y = data()
    task = rnnlab.tasks.TensorTask(x, y, batch_size=B, val=(x[:256], y[:256]))
    model = rnnlab.SequenceModel(I, H, 1)
    with tempfile.TemporaryDirectory() as folder:
        config = rnnlab.TrainConfig(
            steps=steps, out=f"{folder}/run", optim=rnnlab.OptimConfig("adam", lr=1e-3)
        )
        start = time.perf_counter()
        rnnlab.train(model, task, config, progress=False)
        return (time.perf_counter() - start) / steps


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
    times: dict[str, list[float]] = {"hand": [], "rnnlab": []}
    for _ in range(args.rounds):
        times["hand"].append(hand(args.steps))
        times["rnnlab"].append(with_rnnlab(args.steps))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(
        f"SequenceModel(LSTM, H={H}), (T, B) = ({T}, {B}); {args.steps} steps, median of {args.rounds} rounds"
    )
    print("| loop | ms per step | ratio |")
    print("|---|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {v / med['hand']:.2f} |")


if __name__ == "__main__":
    main()
