"""Peak memory of one training step (forward, backward, SGD update) at long T, one process per variant.

  torch              torch.nn.LSTM (fused) + nn.Linear on the last step
  rnnlab auto        rnnlab.SequenceModel(cell="lstm"), execution="auto" (torch's fused kernel on CPU)
  rnnlab unrolled    the same, execution="unrolled" (the hand-written BPTT kernel)
  watch, no jacobian rnnlab.watch(model, jacobian=False) around the step: profiles, saturation, spectra
  watch              rnnlab.watch(model): + the Jacobian analysis along one sequence

Memory is the process's peak resident set (VmHWM) minus its resident set just before the step (VmRSS, with
the model, optimiser and data already allocated): what the step itself needs on top.

    python benchmarks/memory.py                      # T = 1000 and 5000, (B, I, H) = (32, 1, 128)
    python benchmarks/memory.py --lengths 1000 --batch 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

VARIANTS = ("torch", "rnnlab auto", "rnnlab unrolled", "watch, no jacobian", "watch")


def _status(field: str) -> int:
    """A VmRSS / VmHWM line of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(variant: str, T: int, B: int, I: int, H: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    import rnnlab

    torch.manual_seed(0)
    x, y = torch.randn(B, T, I), torch.randn(B, 1)
    if variant == "torch":
        lstm, head = torch.nn.LSTM(I, H, batch_first=True), torch.nn.Linear(H, 1)
        params = [*lstm.parameters(), *head.parameters()]

        def loss() -> torch.Tensor:
            return F.mse_loss(head(lstm(x)[0][:, -1]), y)

    else:
        execution = "auto" if variant == "rnnlab auto" else "unrolled"
        model = rnnlab.SequenceModel(I, H, 1, execution=execution)
        params = list(model.parameters())

        def loss() -> torch.Tensor:
            return F.mse_loss(model(x), y)

    optimizer = torch.optim.SGD(params, lr=0.01)
    before = _status("VmRSS")
    _reset_peak()
    optimizer.zero_grad()
    if variant.startswith("watch"):
        with rnnlab.watch(model, jacobian=variant == "watch"):
            loss().backward()
    else:
        loss().backward()
    optimizer.step()
    return {"step_mb": (_status("VmHWM") - before) / 2**20, "peak_mb": _status("VmHWM") / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="1000,5000", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    B, I, H = args.batch, 1, args.hidden
    if args.child:
        print(json.dumps(child(args.child, int(args.lengths), B, I, H)))
        return
    print(
        f"(B, I, H) = ({B}, {I}, {H}); MB the step adds to the resident set (its process's peak in brackets)"
    )
    print("| T | " + " | ".join(VARIANTS) + " |")
    print("|---:|" + "---:|" * len(VARIANTS))
    for T in (int(t) for t in args.lengths.split(",")):
        cells = []
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--child", variant, "--lengths", str(T)]
            cmd += ["--batch", str(B), "--hidden", str(H)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{variant} at T={T} failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            cells.append(f"{r['step_mb']:.0f} ({r['peak_mb']:.0f})")
        print(f"| {T} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
