"""Forward+backward time of the hand-written kernels for IndRNN and the LayerNorm cells against torch.nn.LSTM.

Variants, interleaved round by round so that machine noise hits all of them alike:
  torch.nn.LSTM        the baseline: torch's fused LSTM at the same shape
  <cell> kernel        rnnlab layer, execution="unrolled" with an observer receiving every step's state and
                       gradient (rnnlab/bptt_cells.py)
  <cell> autograd      rnnlab layer, execution="reference": the cell's own step under per-step autograd
                       (what these cells ran before they had kernels)

    python benchmarks/cell_kernels.py                             # T x B x H = 500 x 64 x 128, I = H
    python benchmarks/cell_kernels.py --shape 100x16x64 --repeats 3 --cells indrnn
    python benchmarks/cell_kernels.py --no-autograd               # the kernels only (the old path is slow)

Prints one table: median milliseconds per forward+backward and the ratio to torch.nn.LSTM.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from speed import CountingObserver  # the same observer as the layer benchmark (this folder)

import rnnlab

LAYERS = {
    "indrnn": rnnlab.IndRNN,
    "layernorm_lstm": rnnlab.LayerNormLSTM,
    "layernorm_gru": rnnlab.LayerNormGRU,
}
#: the speed goals, as a ratio to torch.nn.LSTM at (500, 64, 128)
GOALS = {"indrnn": 0.5, "layernorm_lstm": 1.5, "layernorm_gru": 1.5}


def variants(cells: list[str], T: int, B: int, H: int, autograd: bool) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    x = torch.randn(T, B, H, requires_grad=True)
    observer = CountingObserver()

    def run(layer: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            out, _ = layer(x)
            out.sum().backward()

        return step

    fns = {"torch.nn.LSTM": run(torch.nn.LSTM(H, H))}
    for cell in cells:
        kernel = LAYERS[cell](H, H, execution="unrolled")
        kernel.observer_factory = lambda unit: observer
        fns[f"{cell} kernel"] = run(kernel)
        if autograd:
            reference = LAYERS[cell](H, H, execution="reference")
            reference.load_state_dict(kernel.state_dict())
            fns[f"{cell} autograd"] = run(reference)
    return fns


def measure(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", default=",".join(LAYERS), help=f"comma-separated: {', '.join(LAYERS)}")
    parser.add_argument("--shape", default="500x64x128", help="TxBxH (I = H)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; each variant runs once per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-autograd", action="store_true", help="skip the per-step autograd variants")
    args = parser.parse_args()
    cells = args.cells.split(",")
    unknown = sorted(set(cells) - set(LAYERS))
    if unknown:
        parser.error(f"unknown cell(s) {', '.join(unknown)}; valid cells: {', '.join(LAYERS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    T, B, H = (int(v) for v in args.shape.split("x"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, forward + backward, "
        f"T x B x H = {args.shape}, I = H, median of {args.repeats} rounds"
    )
    ms = measure(variants(cells, T, B, H, not args.no_autograd), args.repeats)
    header = f"{'variant':24} | {'ms':>9} | {'ratio':>6} | goal"
    print(header)
    print("-" * len(header))
    for name, value in ms.items():
        cell, _, path = name.partition(" ")
        goal = f"<= {GOALS[cell]}" if path == "kernel" else ""
        print(f"{name:24} | {value:9.1f} | {value / ms['torch.nn.LSTM']:6.2f} | {goal}", flush=True)


if __name__ == "__main__":
    main()
