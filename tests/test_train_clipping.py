"""Gradient clipping: none, value, global norm, adaptive; and the norms the loop logs."""

import json
import math

import pytest
import torch
from torch import nn

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import ClipConfig, OptimConfig, TrainConfig, train
from rnnlab.training.clipping import Clipper, global_norm


def params_with_grads(*grads):
    ps = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g.clone()
    return ps


def test_global_norm_is_the_norm_of_all_gradients_together():
    ps = params_with_grads(torch.tensor([3.0]), torch.tensor([[4.0, 0.0]]))
    assert global_norm(ps) == pytest.approx(5.0)


def test_none_leaves_gradients_alone():
    ps = params_with_grads(torch.tensor([300.0, -400.0]))
    out = Clipper(ClipConfig("none"))(ps, global_norm(ps))
    assert not out.clipped and out.norm == out.norm_clipped == pytest.approx(500.0)
    assert torch.equal(ps[0].grad, torch.tensor([300.0, -400.0]))


def test_norm_clipping_bounds_the_global_norm_and_keeps_the_direction():
    ps = params_with_grads(torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0]))
    out = Clipper(ClipConfig("norm", max_norm=1.0))(ps, global_norm(ps))
    assert out.clipped and out.norm == pytest.approx(5.0) and out.threshold == 1.0
    assert out.norm_clipped <= 1.0 and global_norm(ps) == pytest.approx(out.norm_clipped)
    assert torch.allclose(ps[0].grad, torch.tensor([0.6, 0.0]), atol=1e-6)
    small = params_with_grads(torch.tensor([0.3, 0.4]))
    assert not Clipper(ClipConfig("norm", max_norm=1.0))(small, global_norm(small)).clipped


def test_value_clipping_bounds_every_entry():
    ps = params_with_grads(torch.tensor([5.0, -0.1, -7.0]), torch.tensor([[0.2, 2.0]]))
    out = Clipper(ClipConfig("value", max_value=0.5))(ps, global_norm(ps))
    assert out.clipped
    assert all(p.grad.abs().max() <= 0.5 for p in ps)
    assert torch.equal(ps[0].grad, torch.tensor([0.5, -0.1, -0.5]))


def test_adaptive_threshold_follows_the_running_mean_of_the_norm():
    config = ClipConfig("adaptive", multiple=2.0, beta=0.5)
    clipper, mean = Clipper(config), 0.0
    for t, norm in enumerate([1.0, 3.0, 2.0, 40.0, 2.0], start=1):
        expected = float("inf") if t == 1 else 2.0 * mean / (1 - 0.5 ** (t - 1))  # bias-corrected
        ps = params_with_grads(torch.tensor([norm]))
        out = clipper(ps, norm)
        assert out.threshold == pytest.approx(expected)
        assert out.clipped == (norm > expected)
        assert out.norm_clipped == pytest.approx(min(norm, expected), rel=1e-5)
        mean = 0.5 * mean + 0.5 * norm  # the statistic sees the measured pre-clip norm
    assert clipper.state_dict() == {"mean": pytest.approx(mean), "count": 5}


def test_the_loop_logs_pre_and_post_clip_norms_every_step(tmp_path):
    task = SineTask(seq_len=6, train_size=32, val_size=0, batch_size=8)
    torch.manual_seed(0)
    model = SequenceModel(1, 8, 1)
    clip = ClipConfig("norm", max_norm=1e-3)
    config = TrainConfig(steps=6, out=str(tmp_path / "run"), optim=OptimConfig("sgd", lr=0.1), clip=clip)
    train(model, task, config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert r["clipped"] and r["grad_norm"] > 1e-3 >= r["grad_norm_clipped"] - 1e-9


@pytest.mark.parametrize(
    "grads, expected",
    [
        ((torch.tensor([3.0]), torch.tensor([[4.0, 0.0]])), 5.0),
        ((torch.tensor([1.0, float("nan")]), torch.tensor([1.0])), math.nan),
        ((torch.tensor([1.0]), torch.tensor([float("inf")])), math.inf),
        ((torch.full((3,), 3e30), torch.full((2,), 4e30)), math.sqrt(59e60)),  # float32 overflows
        ((torch.full((2,), 1e-30, dtype=torch.float64), torch.tensor([0.0])), math.sqrt(2) * 1e-30),
    ],
)
def test_global_norm_against_float64(grads, expected):
    norm = global_norm(params_with_grads(*grads))
    if math.isnan(expected):
        assert math.isnan(norm)
    else:
        assert norm == pytest.approx(expected, rel=1e-6)


def test_a_huge_but_finite_gradient_has_a_finite_norm_and_is_clipped():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 1e25)  # its float32 squares overflow
    norm = global_norm([p])
    assert norm == pytest.approx(2e25)
    result = Clipper(ClipConfig("norm", max_norm=1.0))([p], norm)
    assert result.clipped and float(torch.linalg.vector_norm(p.grad)) == pytest.approx(1.0, rel=1e-5)
