"""rnnlab.time_profile: the black-box profile equals autograd's input gradient and leaves the model alone."""

import pytest
import torch

import rnnlab


def input_grad_norms(model, x, loss_fn, time_dim):
    x = x.clone().requires_grad_(True)
    loss_fn(model(x)).backward()
    dims = [d for d in range(x.dim()) if d != time_dim]
    return x.grad.pow(2).sum(dims).sqrt()


def test_torch_lstm_on_its_own_kernel():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 8, num_layers=2).double()

    def model(x):
        return lstm(x)[0][-1]  # many-to-one

    def loss_fn(h):
        return h.pow(2).sum()

    x = torch.randn(20, 4, 3, dtype=torch.float64)
    profile = rnnlab.time_profile(model, x, loss_fn)
    assert profile.shape == (20,) and profile.dtype == torch.float64
    assert all(p.grad is None for p in lstm.parameters())  # only the input's gradient was computed
    torch.testing.assert_close(profile, input_grad_norms(model, x, loss_fn, 0))


def test_batch_first_model_with_time_on_dim_one():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 3, cell="gru", output="sequence").double()  # batch_first
    target = torch.randn(5, 11, 3, dtype=torch.float64)

    def loss_fn(out):
        return torch.nn.functional.mse_loss(out, target)

    x = torch.randn(5, 11, 2, dtype=torch.float64)
    profile = rnnlab.time_profile(model, x, loss_fn, batch_first=True)
    assert profile.shape == (11,)
    model.zero_grad()
    torch.testing.assert_close(profile, input_grad_norms(model, x, loss_fn, 1))


def test_a_users_own_model_and_unbatched_input():
    w = torch.randn(4, dtype=torch.float64)

    def model(x):  # weights step t by t + 1: the profile is (t + 1) · ‖w‖ by construction
        return (x * torch.arange(1, 8, dtype=x.dtype)[:, None]).sum(0)

    profile = rnnlab.time_profile(model, torch.randn(7, 4, dtype=torch.float64), lambda y: (y * w).sum())
    torch.testing.assert_close(profile, torch.arange(1, 8, dtype=torch.float64) * w.norm())


def test_profile_leaves_grads_and_rng_alone():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 1, cell="lstm", num_layers=2, dropout=0.5)  # dropout draws numbers
    model(torch.randn(2, 5, 2)).sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    torch.manual_seed(1)
    rnnlab.time_profile(model, torch.randn(2, 5, 2), lambda y: y.sum(), batch_first=True)
    after_rng = torch.rand(3)
    torch.manual_seed(1)
    torch.randn(2, 5, 2)
    assert torch.equal(after_rng, torch.rand(3))
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters(), strict=True))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="floating-point"):
        rnnlab.time_profile(lambda x: x, torch.ones(3, 2, dtype=torch.long), lambda y: y.sum())
    with pytest.raises(ValueError, match="scalar"):
        rnnlab.time_profile(lambda x: x, torch.ones(3, 2), lambda y: y)
