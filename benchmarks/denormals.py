"""Steps per second where a gradient vanishes through time: rnnlab.train against the loop a user writes.

A many-to-one model over (T, B, I) = (200, 64, 2) with torch's default initialisation: the gradient that
reaches the early steps falls below the float32 normal range, and on x86 each multiply on a denormal takes
the slow path. Variants, each in its own process (so no global flag leaks from one to the next), run in
alternation round by round:

  torch         a plain PyTorch loop: nn.LSTM/GRU/RNN + nn.Linear, Adam, MSE on the last step
  torch+flush   the same loop inside torch.set_flush_denormal(True)
  rnnlab        rnnlab.train on a TensorTask of the same data (progress off, denormals flushed by default)

    python benchmarks/denormals.py                       # lstm, gru, rnn; 3 rounds of 20 steps
    python benchmarks/denormals.py --cells lstm --steps 30 --rounds 5

Prints steps/s per variant (median over rounds) and the ratio to the plain torch loop. Goal: rnnlab.train
at least 5x the plain loop's steps/s for the LSTM.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

T, B, I, H = 200, 64, 2, 128


def data(seed: int = 0):
    """The adding problem: values U(0, 1) and a marker channel with one mark in each half; the target is
    the sum of the two marked values, so the loss at the end depends on early steps."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = B * 4
    values = torch.rand(n, T, generator=g)
    marks = torch.zeros(n, T)
    rows = torch.arange(n)
    first = torch.randint(0, T // 2, (n,), generator=g)
    second = torch.randint(T // 2, T, (n,), generator=g)
    marks[rows, first] = marks[rows, second] = 1.0
    x = torch.stack([values, marks], dim=-1)  # (N, T, 2)
    return x, (values * marks).sum(dim=1, keepdim=True)  # (N, T, I), (N, 1)


def torch_loop(cell: str, steps: int, flush: bool) -> float:
    import torch

    torch.manual_seed(0)
    torch.set_flush_denormal(flush)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](I, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    params = [*rnn.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, 1e-3)
    x, y = data()
    times = []
    for step in range(steps):
        rows = slice((step % 4) * B, (step % 4 + 1) * B)
        out, _ = rnn(x[rows])
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter())
    return (steps - 1) / (times[-1] - times[0])  # from the end of step 1: imports and setup left out


def rnnlab_train(cell: str, steps: int) -> float:
    import torch

    import rnnlab

    torch.manual_seed(0)
    x, y = data()
    task = rnnlab.tasks.TensorTask(x, y, batch_size=B)
    model = rnnlab.SequenceModel(I, H, 1, cell=cell)
    with tempfile.TemporaryDirectory() as folder:
        config = rnnlab.TrainConfig(
            steps=steps,
            out=f"{folder}/run",
            optim=rnnlab.OptimConfig("adam", lr=1e-3),
            eval=rnnlab.EvalConfig(every=0),
        )
        history = rnnlab.train(model, task, config, progress=False)
    times = [r["time_s"] for r in history.train]
    return (len(times) - 1) / (times[-1] - times[0])  # from the end of step 1, as the torch loop counts


def denormal_penalty() -> float:
    """How much slower this CPU multiplies denormal floats than normal ones (flushing off): ~1 on CPUs that
    handle denormals in hardware, ~10-100 on those that take a microcode assist."""
    import torch

    before = torch.tensor([1e-39]).mul(1.0).item() == 0.0
    torch.set_flush_denormal(False)
    times = {}
    for name, value in (("normal", 1e-30), ("denormal", 1e-39)):
        x, y, out = torch.full((1000, 1000), value), torch.full((1000, 1000), 0.5), torch.empty(1000, 1000)
        best = float("inf")
        for _ in range(20):
            start = time.perf_counter()
            torch.mul(x, y, out=out)
            best = min(best, time.perf_counter() - start)
        times[name] = best
    torch.set_flush_denormal(before)
    return times["denormal"] / times["normal"]


def child(variant: str, cell: str, steps: int) -> None:
    rate = (
        rnnlab_train(cell, steps)
        if variant == "rnnlab"
        else torch_loop(cell, steps, variant.endswith("flush"))
    )
    print(json.dumps({"steps_per_s": rate}))


def run(variant: str, cell: str, steps: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--cells", cell, "--steps", str(steps)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"{variant} {cell} failed:\n{out.stderr}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per variant, in alternation")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cells, args.steps)
        return
    variants = ("torch", "torch+flush", "rnnlab")
    print(f"this CPU multiplies denormals {denormal_penalty():.1f}x slower than normal floats")
    print(f"(T, B, I, H) = ({T}, {B}, {I}, {H}); steps/s, median of {args.rounds} processes per variant")
    print(f"{'cell':5} | " + " | ".join(f"{v:>11} {'ratio':>6}" for v in variants))
    for cell in args.cells.split(","):
        rates: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                rates[v].append(run(v, cell, args.steps))
        med = {v: statistics.median(r) for v, r in rates.items()}
        print(f"{cell:5} | " + " | ".join(f"{med[v]:11.2f} {med[v] / med['torch']:6.2f}" for v in variants))


if __name__ == "__main__":
    main()
