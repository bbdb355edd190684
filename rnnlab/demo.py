"""The README's main job: see why a plain RNN forgets, apply the remedy with one flag, train with it.

    bash scripts/demo.sh                     # python -m rnnlab.demo: about a minute on 2 CPU cores
    bash scripts/demo.sh --steps 600 --out runs/demo

1. Diagnose: one backward pass of three models over the same 100-step batch, watched by `rnnlab.watch`:
   a tanh RNN (the gradient through time vanishes), an LSTM with torch's default initialisation, and the
   LSTM with the remedy the verdict names (`chrono=100`).
2. Black box: `rnnlab.time_profile` on a plain `torch.nn.LSTM`, how much gradient reaches each input step.
3. Train: `rnnlab.train` runs the remedied LSTM on the synthetic sine task with clipping and diagnostics
   every 100 steps, writing a run folder (metrics, checkpoints, TensorBoard, diagnostics, plots).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.tasks import SineTask


def diagnose(seq_len: int) -> None:
    print(f"1. One backward pass over {seq_len} steps, watched: does the loss reach the first steps?\n")
    batch = next(
        iter(SineTask(seq_len=seq_len, train_size=64, val_size=64, batch_size=64, seed=1).val_batches())
    )
    models = {
        "tanh RNN, torch's init": rnnlab.SequenceModel(1, 64, 1, cell="rnn"),
        "LSTM, torch's init": rnnlab.SequenceModel(1, 64, 1, cell="lstm"),
        f"LSTM, chrono={seq_len}": rnnlab.SequenceModel(1, 64, 1, cell="lstm", chrono=seq_len),
    }
    for name, model in models.items():
        with rnnlab.watch(model) as probe:
            F.mse_loss(model(batch.inputs), batch.targets).backward()
        report = probe.report()
        print(f"-- {name}")
        print(report, "\n")


def black_box(seq_len: int) -> None:
    print("2. Any model, black box: ‖∂L/∂x_t‖ of a torch.nn.LSTM (fused kernel) at a few steps\n")
    lstm, head = torch.nn.LSTM(1, 64, batch_first=True), torch.nn.Linear(64, 1)
    x, y = torch.randn(64, seq_len, 1), torch.randn(64, 1)
    profile = rnnlab.time_profile(
        lambda inputs: head(lstm(inputs)[0][:, -1]), x, lambda out: F.mse_loss(out, y), batch_first=True
    )
    steps = sorted({0, seq_len // 4, seq_len // 2, 3 * seq_len // 4, seq_len - 1})
    print("   " + "  ".join(f"t={t}: {profile[t].item():.1e}" for t in steps))
    print("   torch's default initialisation: the same vanishing gradient the probe found in part 1\n")


def train(steps: int, out: str) -> None:
    print(f"3. Train the remedied LSTM for {steps} steps, watched now and then\n")
    task = SineTask(seq_len=50, train_size=1024, val_size=256, batch_size=32)
    model = rnnlab.SequenceModel(1, 32, 1, cell="lstm", chrono=50)
    config = rnnlab.TrainConfig(
        steps=steps,
        out=out,
        optim=rnnlab.OptimConfig("adam", lr=3e-3),
        clip=rnnlab.ClipConfig("norm", max_norm=1.0),
    )
    config.eval.every = config.diagnostics.every = max(1, min(100, steps // 3))
    history = rnnlab.train(model, task, config, progress=sys.stderr.isatty())
    first, final = history.train[0], history.summary["final"]
    print(f"   train loss {first['loss']:.4f} at step 1 -> {final['train']['loss']:.5f} at step {steps}")
    if "val" in final:
        print(f"   validation loss {final['val']['loss']:.5f}")
    print(f"   run folder: {history.run_dir}")
    for path in sorted(Path(history.run_dir).rglob("*")):
        if path.is_file() and path.suffix in (".png", ".jsonl", ".json", ".toml"):
            print(f"     {path.relative_to(history.run_dir)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps in part 3 (default 300)")
    parser.add_argument("--seq-len", type=int, default=100, help="sequence length in parts 1 and 2")
    parser.add_argument("--out", default="", help="run folder of part 3 (default: runs/demo-<time>)")
    args = parser.parse_args(argv)
    out = args.out or time.strftime("runs/demo-%Y%m%d-%H%M%S")
    torch.manual_seed(0)
    try:
        diagnose(args.seq_len)
        black_box(args.seq_len)
        train(args.steps, out)
    except (rnnlab.UserError, OSError) as error:  # an existing run folder, ...: one line, no traceback
        sys.exit(f"rnnlab demo: {error}")


if __name__ == "__main__":
    main()
