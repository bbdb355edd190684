"""Jacobian products through time on cases with a known answer, and the replayed trajectory they rest on."""

import math

import pytest
import torch
from diagnostics_cases import linear_rnn

import rnnlab
from rnnlab.diagnostics import jacobian, trajectory


@pytest.mark.parametrize("method", ["exact", "power"])
@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.5])
def test_linear_rnn_products_are_rho_to_the_lag(method, rho):
    T = 30  # every lag is measured up to jacobian.ALL_LAGS steps
    layer = linear_rnn(rho)
    x = torch.randn(T, 2, 3, dtype=torch.float64)
    res = rnnlab.jacobian_products(layer, x, method=method, iterations=2, dtype=torch.float64)["l0"]
    lags = res.lags.double()
    assert res.lags.tolist() == list(range(1, T + 1))
    torch.testing.assert_close(res.norms, rho**lags, rtol=1e-6, atol=0.0)
    assert res.gamma == pytest.approx(rho, rel=1e-6)
    assert res.log_rate == pytest.approx(math.log(rho), abs=1e-6)
    torch.testing.assert_close(res.step_singular_values, torch.full_like(res.step_singular_values, rho))
    if rho < 1:  # first lag with rho^k < 1e-3, extrapolated past T when the sequence is too short
        assert res.horizon == math.ceil(math.log(1e-3) / math.log(rho) - 1e-9)
        assert res.horizon_extrapolated == (res.horizon > T)
    else:
        assert math.isinf(res.horizon)
    assert res.method == method and res.steps == T


def test_exact_singular_values_of_every_step():
    layer = linear_rnn(0.7, hidden=5)
    res = rnnlab.jacobian_products(layer, torch.randn(6, 1, 3, dtype=torch.float64), method="exact")["l0"]
    assert res.step_singular_values.shape == (6, 5)
    torch.testing.assert_close(res.step_singular_values, torch.full((6, 5), 0.7, dtype=torch.float64))
    assert res.passes == 5.0


@pytest.mark.parametrize("cell", ["lstm", "layernorm_gru"])
def test_step_jacobians_equal_autograd(cell):
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(rnnlab.cell_type(cell), 3, 4, dtype=torch.float64)
    call = trajectory.select(layer, (torch.randn(5, 2, 3, dtype=torch.float64),), {}, None)
    traj = trajectory.replay(layer, call)["l0"]
    f = traj.step_function()
    jac = jacobian.step_jacobians(f, traj.states[:-1], traj.px)
    for j in range(5):
        expected = torch.autograd.functional.jacobian(
            lambda s, j=j: f(s[None], traj.px[j : j + 1])[0], traj.states[j]
        )
        torch.testing.assert_close(jac[j], expected)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_power_iteration_rises_to_the_exact_norms(cell):
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 12, 1, cell=cell).double()
    x = torch.randn(2, 30, 3, dtype=torch.float64)
    exact = rnnlab.jacobian_products(model, x, method="exact")["encoder.l0"]
    power = rnnlab.jacobian_products(model, x, method="power", iterations=30, dtype=torch.float64)[
        "encoder.l0"
    ]
    assert power.norms.shape == exact.norms.shape
    assert bool((power.norms <= exact.norms * (1 + 1e-9)).all())  # a lower bound, rising with iterations
    torch.testing.assert_close(power.norms, exact.norms, rtol=0.05, atol=0.0)
    # long products have well separated singular values: power iteration is then exact
    torch.testing.assert_close(power.norms[20:], exact.norms[20:], rtol=1e-8, atol=0.0)
    assert power.gamma == pytest.approx(exact.gamma, rel=1e-8)
    step_power, step_exact = power.step_singular_values[:, 0], exact.step_singular_values[:, 0]
    assert bool((step_power <= step_exact * (1 + 1e-9)).all())
    torch.testing.assert_close(step_power, step_exact, rtol=0.1, atol=0.0)


def test_geometric_lags_for_long_sequences_interpolate_the_horizon():
    T = 300
    res = rnnlab.jacobian_products(
        linear_rnn(0.95), torch.randn(T, 1, 3, dtype=torch.float64), method="power"
    )
    lags = res["l0"].lags
    assert len(lags) < 40 and int(lags[0]) == 1 and int(lags[-1]) == T
    assert res["l0"].horizon == math.ceil(math.log(1e-3) / math.log(0.95))  # 135, between measured lags


def test_replay_matches_the_layer_for_every_layer_and_direction():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 7, 5])
    out, (h_n, c_n) = layer(x, lengths=lengths)
    call = trajectory.select(layer, (x,), {"lengths": lengths}, None)
    assert call.sample == 1 and call.x.shape == (7, 3)  # the longest sequence by default
    for sample in (0, 1, 2):
        call = trajectory.select(layer, (x,), {"lengths": lengths}, sample)
        replayed = trajectory.replay(layer, call)
        assert list(replayed) == ["l0", "l0_reverse", "l1", "l1_reverse"]
        for k, traj in enumerate(replayed.values()):
            assert traj.states.shape == (int(lengths[sample]) + 1, 10)
            torch.testing.assert_close(traj.states[-1, :5], h_n[k, sample])
            torch.testing.assert_close(traj.states[-1, 5:], c_n[k, sample])
        top = replayed["l1"].states[1:, :5]
        torch.testing.assert_close(top, out[: int(lengths[sample]), sample, :5])


def test_batch_first_input_and_initial_state_are_honoured():
    torch.manual_seed(0)
    layer = rnnlab.GRU(2, 3, batch_first=True, dtype=torch.float64)
    x, h0 = torch.randn(2, 6, 2, dtype=torch.float64), torch.randn(1, 2, 3, dtype=torch.float64)
    _, h_n = layer(x, h0)
    traj = trajectory.replay(layer, trajectory.select(layer, (x, h0), {}, 1))["l0"]
    torch.testing.assert_close(traj.states[0], h0[0, 1])
    torch.testing.assert_close(traj.states[-1], h_n[0, 1])


def test_analysis_leaves_the_rng_alone():
    model = rnnlab.SequenceModel(3, 8, 1, cell="gru", num_layers=2, dropout=0.5)
    torch.manual_seed(3)
    rnnlab.jacobian_products(model, torch.randn(2, 10, 3), method="power", iterations=2)
    after = torch.rand(3)
    torch.manual_seed(3)
    torch.randn(2, 10, 3)
    assert torch.equal(after, torch.rand(3))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="no rnnlab.Recurrent"):
        rnnlab.jacobian_products(torch.nn.LSTM(2, 3), torch.randn(4, 1, 2))
    with pytest.raises(ValueError, match="method"):
        rnnlab.jacobian_products(rnnlab.RNN(2, 3), torch.randn(4, 1, 2), method="svd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample"):
        rnnlab.jacobian_products(rnnlab.RNN(2, 3), torch.randn(4, 1, 2), sample=3)
