"""Precursors of divergence: a spike or a steady climb of the pre-clip gradient norm while the loss is finite
is said in one line and recorded in events.jsonl, before anything is non-finite."""

import json
import math

import pytest
import torch

import rnnlab
from rnnlab.training import EvalConfig, OptimConfig, TrainConfig, train
from rnnlab.training.precursor import GROWTH, SPIKE, WARMUP, WINDOW, NormWatch


def feed(watch, norms, loss=1.0):
    return [(step, w) for step, n in enumerate(norms, 1) if (w := watch.observe(step, n, loss)) is not None]


def noisy(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (1.0 + 0.3 * torch.rand(n, generator=g)).tolist()  # a steady run: 1.0 to 1.3


def test_a_steady_norm_says_nothing():
    assert feed(NormWatch(), noisy(500)) == []


def test_a_spike_is_said_once_per_episode_after_the_warm_up():
    norms = noisy(100)
    norms[5] = 1e3  # inside the warm-up: the first steps say nothing
    norms[40] = norms[41] = norms[42] = 50.0  # one episode of three steps
    norms[70] = 12.0 * 1.15
    warnings = feed(NormWatch(), norms)
    assert [step for step, _ in warnings] == [41, 71]
    first = warnings[0][1]
    assert first.event == "grad_norm_spike" and first.norm == 50.0 and first.ratio > SPIKE
    assert first.message.startswith("step 41: warning: gradient norm before clipping 50 is ")
    assert (
        "the loss still finite: a precursor of divergence; try clip.mode=norm clip.max_norm=2"
        in first.message
    )
    assert set(first.details()) == {"norm", "median", "ratio"}


def test_a_steady_climb_is_said_before_it_is_a_spike():
    rate = (3 * GROWTH) ** (1 / WINDOW)  # ×30 over a window, ×5.5 over half of it: never a spike
    norms = noisy(WARMUP) + [1.15 * rate**k for k in range(3 * WINDOW)]
    warnings = feed(NormWatch(), norms)
    kinds = [w.event for _, w in warnings]
    assert kinds and kinds[0] == "grad_norm_growth"
    first = warnings[0][1]
    assert first.reference * GROWTH <= first.norm and "grew" in first.message
    steps = [s for s, _ in warnings]
    assert all(b - a >= WINDOW for a, b in zip(steps, steps[1:], strict=False))  # said once a window


def test_non_finite_steps_are_the_guards():
    norms = noisy(60)
    norms[30] = math.inf
    assert feed(NormWatch(), norms) == []
    assert feed(NormWatch(), noisy(60), loss=math.nan) == []


def test_training_says_a_spike_and_records_it_before_any_non_finite_step(tmp_path, capsys):
    torch.manual_seed(0)
    x = torch.randn(256, 10, 1)
    y = x.mean(dim=1)
    y[7] = 1e4  # one sample whose batch has a gradient ~10⁴ times the others, once an epoch
    task = rnnlab.tasks.TensorTask(x, y, loss="mse", batch_size=32)
    model = rnnlab.SequenceModel(1, 8, 1, cell="gru")
    config = TrainConfig(steps=48, out=str(tmp_path / "run"), optim=OptimConfig("adam", lr=1e-3))
    config.eval = EvalConfig(every=0)
    history = train(model, task, config, progress=False)
    events = [json.loads(line) for line in (history.run_dir / "events.jsonl").read_text().splitlines()]
    spikes = [e for e in events if e["event"] == "grad_norm_spike"]
    assert spikes and all(e["step"] > WARMUP for e in spikes)
    assert not [e for e in events if e["event"] == "nonfinite"]
    norms = {r["step"]: r["grad_norm"] for r in history.train}
    for e in spikes:
        assert e["norm"] == pytest.approx(norms[e["step"]]) and e["ratio"] > SPIKE
    said = [line for line in capsys.readouterr().err.splitlines() if "warning: gradient norm" in line]
    assert len(said) == len(spikes) and said[0].startswith(f"step {spikes[0]['step']}: warning:")
