"""What observing the gradient through time costs, against a plain unrolled training step in the same run.

    .venv/bin/python benchmarks/diagnostics_cost.py                        # T=100, B=64, H=256 LSTM
    .venv/bin/python benchmarks/diagnostics_cost.py --batch 32 --hidden 64   # T=100, B=32, H=64

The target: the default `watch()`, Jacobian analysis included, at most 2× a plain unrolled step at both
shapes. Variants, run interleaved (one of each per round, so drifts in machine load hit them alike),
median over rounds:
- plain: forward, backward and an SGD update of an `rnnlab.LSTM` on the unrolled path.
- watched: the same step inside `rnnlab.watch(model, jacobian=False)`: per-step ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖,
  saturation, keep-gate distribution, spectra of every gate block, per-parameter and global gradient norms.
- watched + Jacobian: the default `watch()`, with the Jacobian analysis (`auto`: the sweep at these
  sizes, float32; its passes and method are printed).
- time_profile: `rnnlab.time_profile` on `torch.nn.LSTM` (fused kernel), against one forward and backward
  of that LSTM: the black-box profile's claim is at most one extra pass.
Prints a Markdown table (the BENCHMARKS.md rows). Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import rnnlab


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="time steps T")
    parser.add_argument("--batch", type=int, default=64, help="batch size B")
    parser.add_argument("--hidden", type=int, default=256, help="hidden units H")
    parser.add_argument("--inputs", type=int, default=32, help="input features")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (one run of every variant each)")
    parser.add_argument(
        "--jacobian-rounds", type=int, default=None, help="rounds that include the Jacobian (default: all)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadiest on a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    T, B, H, I = args.steps, args.batch, args.hidden, args.inputs

    model = rnnlab.LSTM(I, H, execution="unrolled")
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(T, B, I)
    target = torch.randn(T, B, H)

    def step() -> None:
        opt.zero_grad()
        out, _ = model(x)
        torch.nn.functional.mse_loss(out, target).backward()
        opt.step()

    passes: list[float] = []
    methods: set[str] = set()

    def watched(jacobian: bool) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad()
            with rnnlab.watch(model, jacobian=jacobian) as probe:
                out, _ = model(x)
                torch.nn.functional.mse_loss(out, target).backward()
            opt.step()
            result = probe.report().layers["l0"].jacobian
            if result is not None:
                passes.append(result.passes)
                methods.add(result.method)

        return run

    fused = torch.nn.LSTM(I, H)

    def fused_pass() -> None:
        fused.zero_grad()
        out, _ = fused(x)
        torch.nn.functional.mse_loss(out, target).backward()

    def profile() -> None:
        rnnlab.time_profile(lambda v: fused(v)[0], x, lambda out: torch.nn.functional.mse_loss(out, target))

    variants: dict[str, Callable[[], None]] = {
        "plain": step,
        "watched": watched(False),
        "fused": fused_pass,
        "time_profile": profile,
    }
    for fn in [*variants.values(), watched(True)]:  # warm up every path once
        fn()
    times: dict[str, list[float]] = {name: [] for name in [*variants, "watched+jacobian"]}
    for r in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(timed(fn))
        if args.jacobian_rounds is None or r < args.jacobian_rounds:
            times["watched+jacobian"].append(timed(watched(True)))
    med = {name: statistics.median(t) for name, t in times.items()}

    print(
        f"LSTM T={T} B={B} H={H} I={I}, {args.threads} thread(s), torch {torch.__version__}, median of rounds"
    )
    print()
    print("| variant | median ms | ratio | against |")
    print("|---|---:|---:|---|")
    rows = [
        ("plain unrolled step (fwd+bwd+SGD)", "plain", "plain", "itself"),
        (
            "watch(jacobian=False): profiles, saturation, spectra, grad norms",
            "watched",
            "plain",
            "plain step",
        ),
        (
            f"watch(): + Jacobian analysis ({', '.join(sorted(methods))}, "
            f"{statistics.median(passes):.1f} sequence passes)",
            "watched+jacobian",
            "plain",
            "plain step",
        ),
        ("torch.nn.LSTM fused fwd+bwd", "fused", "fused", "itself"),
        ("time_profile on torch.nn.LSTM (fused)", "time_profile", "fused", "fused fwd+bwd"),
    ]
    for label, name, ref, against in rows:
        print(f"| {label} | {med[name] * 1e3:.1f} | {med[name] / med[ref]:.2f}x | {against} |")


if __name__ == "__main__":
    main()
