"""Forward+backward time of rnnlab's execution paths against torch.nn, measured in the same run.

Variants, interleaved round by round so that machine noise hits all of them alike:
  torch      torch.nn.LSTM/GRU/RNN (the baseline; its fused kernel)
  fused      rnnlab layer, execution="fused" (onto the same fused kernel)
  unrolled   rnnlab layer, execution="unrolled", with an observer receiving every step's state and gradient
  auto       rnnlab layer, execution="auto" (the default: whichever of the two was measured faster here)
  naive      a Python loop over torch.nn.LSTMCell/GRUCell/RNNCell under per-step autograd

    python benchmarks/speed.py                     # all cells, the three issue shapes
    python benchmarks/speed.py --cells lstm --shapes 100x64x256 --repeats 5
    python benchmarks/speed.py --inference         # forward only, under torch.no_grad
    python benchmarks/speed.py --device cuda       # on a GPU: torch's is cuDNN (times synchronised)

Prints one table: median milliseconds per forward+backward and the ratio to torch, and `auto/best`: auto's
time over the faster of fused and unrolled (goal: at most 1.05 at every shape).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

import rnnlab

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
OURS = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}
CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


class CountingObserver:
    """Touches every step's state and gradient, as a probe would, so nothing can be skipped."""

    def __init__(self) -> None:
        self.steps = 0

    def forward(self, states, gates, mask) -> None:
        self.steps += states[0].shape[0]

    def backward(self, grads) -> None:
        self.steps += grads[0].shape[0]


def variants(
    kind: str, T: int, B: int, H: int, inference: bool, device: torch.device
) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    x = torch.randn(T, B, H, requires_grad=not inference, device=device)
    reference = TORCH[kind](H, H).to(device)
    layers = {}
    for execution in ("fused", "unrolled", "auto"):
        layers[execution] = OURS[kind](H, H, execution=execution).to(device)
        layers[execution].load_state_dict(reference.state_dict())
    observer = CountingObserver()
    layers["unrolled"].observer_factory = lambda unit: observer
    cell = CELLS[kind](H, H).to(device)

    def run_layer(layer: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            if inference:
                with torch.no_grad():
                    layer(x)
                return
            out, _ = layer(x)
            out.sum().backward()

        return step

    def naive() -> None:
        h = torch.zeros(B, H, device=device)
        c = torch.zeros(B, H, device=device)
        outs = []
        with torch.set_grad_enabled(not inference):
            for t in range(T):
                if kind == "lstm":
                    h, c = cell(x[t], (h, c))
                else:
                    h = cell(x[t], h)
                outs.append(h)
            if not inference:
                torch.stack(outs).sum().backward()

    return {"torch": run_layer(reference), **{k: run_layer(v) for k, v in layers.items()}, "naive": naive}


def measure(fns: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    def done() -> None:  # CUDA runs asynchronously: a time is the kernels', not their launch's
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():  # warm-up
        fn()
    done()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)  # a fresh order each round: no variant always runs after the same one
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            fn()
            done()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", default="lstm,gru,rnn", help="comma-separated: lstm, gru, rnn")
    parser.add_argument(
        "--shapes", default="100x64x256,1000x32x128,50x16x64", help="comma-separated TxBxH (I = H) shapes"
    )
    parser.add_argument("--repeats", type=int, default=7, help="rounds; each variant runs once per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--inference", action="store_true", help="forward only, under torch.no_grad")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    what = "forward (no_grad)" if args.inference else "forward + backward"
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{threads} threads"
    print(f"torch {torch.__version__}, {where}, {what}, median of {args.repeats} rounds")
    names = ("torch", "fused", "unrolled", "auto", "naive")
    header = f"{'cell':5} {'T x B x H':>14} | " + " | ".join(f"{n:>8} ms {'ratio':>6}" for n in names)
    header += " | auto/best"
    print(header)
    print("-" * len(header))
    for kind in args.cells.split(","):
        for shape in args.shapes.split(","):
            T, B, H = (int(v) for v in shape.split("x"))
            ms = measure(variants(kind, T, B, H, args.inference, device), args.repeats, device)
            cells = " | ".join(f"{ms[n]:11.1f} {ms[n] / ms['torch']:6.2f}" for n in ms)
            best = min(ms["fused"], ms["unrolled"])
            print(f"{kind:5} {shape:>14} | {cells} | {ms['auto'] / best:9.2f}", flush=True)


if __name__ == "__main__":
    main()
