"""Denormals: flushed inside rnnlab's blocks, the caller's setting restored, the diagnostics still true."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.numerics import flush_denormals, flushing_denormals


@pytest.fixture(autouse=True)
def restore_the_setting():
    before = flushing_denormals()
    yield
    torch.set_flush_denormal(before)


@pytest.mark.parametrize("before", [False, True])
def test_flush_denormals_restores_the_callers_setting(before):
    torch.set_flush_denormal(before)
    assert flushing_denormals() is before
    with flush_denormals() as on:
        assert on and flushing_denormals()
        assert (torch.tensor([1e-39]) * 1.0).item() == 0.0  # a denormal reads 0
    assert flushing_denormals() is before
    with flush_denormals(enabled=False):
        assert flushing_denormals() is before
    with pytest.raises(KeyError), flush_denormals():
        raise KeyError("an error inside the block")
    assert flushing_denormals() is before


def vanishing_rnn():
    torch.manual_seed(0)
    return rnnlab.SequenceModel(1, 16, 1, cell="rnn", spectral_radius=0.4, execution="unrolled")


def test_watch_and_time_profile_flush_inside_and_restore():
    torch.set_flush_denormal(False)
    model, x, y = vanishing_rnn(), torch.randn(8, 120, 1), torch.randn(8, 1)
    seen = []
    with rnnlab.watch(model, jacobian=False):
        seen.append(flushing_denormals())
        F.mse_loss(model(x), y).backward()
    assert seen == [True] and not flushing_denormals()
    profile = rnnlab.time_profile(model, x, lambda out: F.mse_loss(out, y), batch_first=True)
    assert not flushing_denormals()
    assert profile[0] == 0.0 and profile[-1] > 0  # below the normal range it reads 0
    kept = rnnlab.time_profile(
        model, x, lambda out: F.mse_loss(out, y), batch_first=True, flush_denormal=False
    )
    assert torch.equal(kept[-40:], profile[-40:])  # where the gradient is normal, flushing changes nothing


def test_an_underflowed_profile_is_said_to_underflow():
    model, x, y = vanishing_rnn(), torch.randn(8, 120, 1), torch.randn(8, 1)
    with rnnlab.watch(model, jacobian=False) as probe:
        F.mse_loss(model(x), y).backward()
    layer = probe.report().layers["encoder.l0"]
    assert layer.profile_h[0] == 0.0 and layer.first_over_peak == 0.0
    assert layer.verdict.name == "vanishing" and "underflow" in layer.verdict.message


def test_the_jacobian_analysis_does_not_depend_on_flushing():
    model, x = vanishing_rnn(), torch.randn(2, 120, 1)
    on = rnnlab.jacobian_products(model, x, method="exact")
    off = rnnlab.jacobian_products(model, x, method="exact", flush_denormal=False)
    assert on["encoder.l0"].norms[-1] < 1e-38  # far below the normal float range: kept in log space
    torch.testing.assert_close(
        torch.as_tensor(on["encoder.l0"].norms), torch.as_tensor(off["encoder.l0"].norms)
    )
    assert on["encoder.l0"].gamma == pytest.approx(off["encoder.l0"].gamma)


class RecordingTask(rnnlab.tasks.TensorTask):
    """Notes whether denormals are flushed each time the loop asks for a loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[bool] = []

    def loss(self, outputs, targets):
        self.seen.append(flushing_denormals())
        return super().loss(outputs, targets)


@pytest.mark.parametrize("flush", [True, False])
def test_train_and_evaluate_flush_as_configured_and_restore(tmp_path, flush):
    torch.set_flush_denormal(False)
    x = torch.randn(16, 5, 1)
    task = RecordingTask(x, x.mean(1), batch_size=8, val=(x[:8], x[:8].mean(1)))
    model = rnnlab.SequenceModel(1, 4, 1)
    config = rnnlab.TrainConfig(steps=3, out=str(tmp_path / "run"), numerics=rnnlab.NumericsConfig(flush))
    rnnlab.train(model, task, config, progress=False)
    assert task.seen and set(task.seen) == {flush}  # training steps and the evaluation at the end
    assert not flushing_denormals()
    task.seen.clear()
    rnnlab.evaluate(model, task)
    assert task.seen == [True] and not flushing_denormals()
