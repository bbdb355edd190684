"""Mixed precision: bf16 autocast on the CPU trains, rnnlab's own kernels stay float32 inside it, fp16 asks
for CUDA; on CUDA (skipped here without one) fp16's GradScaler skips overflowed steps without the guard."""

from __future__ import annotations

import json

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import ConfigError
from rnnlab.training.precision import Precision


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "layernorm_lstm", "indrnn"])
def test_rnnlabs_own_kernels_compute_in_float32_inside_autocast(cell):
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(rnnlab.cell_type(cell), 3, 8, num_layers=2, execution="unrolled")
    x = torch.randn(12, 4, 3)
    plain, plain_state = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, mixed_state = layer(x)
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, plain)  # the same float32 maths, bit for bit
    (mixed.sum()).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in layer.parameters())


def test_torchs_fused_lstm_computes_in_bfloat16_inside_autocast():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 8, execution="fused")
    x = torch.randn(12, 4, 3)
    plain, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = layer(x)
    assert mixed.dtype == torch.bfloat16
    assert 0 < float((mixed.float() - plain).abs().max().detach()) < 0.05  # bf16's ~3 significant digits


def test_a_bf16_run_trains_like_the_float32_run(tmp_path, capsys):
    flags = ["--task", "adding", "--task.length", "20", "--model.cell", "lstm", "--model.hidden_size", "16"]
    flags += ["--steps", "60", "--eval.every", "60", "--quiet"]
    assert main(["train", *flags, "--out", str(tmp_path / "fp32")]) == 0
    assert main(["train", *flags, "--precision", "bf16", "--out", str(tmp_path / "bf16")]) == 0
    full, mixed = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("fp32", "bf16"))
    assert mixed["skipped_steps"] == 0
    a, b = full["final"]["val"]["loss"], mixed["final"]["val"]["loss"]
    assert abs(a - b) < 0.1 * a  # the same training, to bf16's precision
    weights = torch.load(tmp_path / "bf16" / "checkpoints" / "step-000060.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in weights["model"].values())  # master weights stay float32
    assert weights["carry"]["state"] is None or weights["carry"]["state"][0].dtype == torch.float32


def test_fp16_on_the_cpu_is_refused_with_bf16_named(tmp_path, capsys):
    flags = ["--task", "adding", "--steps", "2", "--device", "cpu", "--precision", "fp16", "--quiet"]
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 2
    assert "on the CPU use bf16" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
    with pytest.raises(ConfigError, match="fp16 needs CUDA .* on the CPU use bf16"):
        Precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="precision: one of fp32, bf16, fp16"):
        Precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_overflow_is_the_scalers_skip_not_the_guards(tmp_path):
    flags = ["--task", "adding", "--task.length", "20", "--model.cell", "lstm", "--steps", "30"]
    flags += ["--device", "cuda", "--precision", "fp16"]
    assert main(["train", *flags, "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    # overflows of the loss scale are routine: skipped by the scaler, never the guard's, never a rollback
    assert summary["rollbacks"] == 0 and summary["skipped_steps"] == 0
    assert all(e["event"] != "nonfinite" for e in events)
    assert summary["final"]["val"]["loss"] < 1.0
