"""Jacobian products through time on cases with a known answer, and the replayed trajectory they rest on."""

import math

import pytest
import torch
from diagnostics_cases import linear_rnn

import rnnlab
from rnnlab.diagnostics import jacobian, linearisation, trajectory


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


class OwnLSTMCell(rnnlab.cells.LSTMCell):
    """An LSTM with maths of its own (a leaky h): no closed form may be assumed for it."""

    def step(self, params, px, state):
        new, gates = super().step(params, px, state)
        return rnnlab.cells.LSTMState(0.5 * new.h + 0.5 * state[0], new.c), gates


CLOSED = {"rnn": {}, "rnn_relu": {"nonlinearity": "relu"}, "lstm": {}, "gru": {}, "indrnn": {}}


@pytest.mark.parametrize("cell", [*CLOSED, "layernorm_gru", "own_lstm"])
def test_step_jacobians_equal_autograd(cell):
    torch.manual_seed(0)
    name = cell.split("_")[0] if cell in CLOSED else cell
    kind = OwnLSTMCell if cell == "own_lstm" else rnnlab.cell_type(name)
    layer = rnnlab.Recurrent(kind, 3, 4, dtype=torch.float64, **CLOSED.get(cell, {}))
    call = trajectory.select(layer, (torch.randn(5, 2, 3, dtype=torch.float64),), {}, None)
    traj = trajectory.replay(layer, call)["l0"]
    owner = linearisation.closed_form_owner(layer.cell)
    assert (owner is not None) == (cell in CLOSED)  # a subclass with its own step is linearised by autograd
    f = traj.step_function()
    n = traj.states.shape[1]
    v = torch.randn(5, 3, n, dtype=torch.float64)
    expected = torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda s, j=j: f(s[None], traj.px[j : j + 1])[0], traj.states[j]
            )
            for j in range(5)
        ]
    )
    # from the projected inputs (replayed), and from the gates the probe observes
    _, gates = layer.cell.step(traj.params, traj.px, tuple(traj.states[:-1].split(4, -1)))
    forms = [
        linearisation.linearise(layer.cell, traj.params, traj.states, px=traj.px),
        linearisation.linearise(layer.cell, traj.params, traj.states, gates=gates, px=traj.px),
    ]
    for lin in forms:
        torch.testing.assert_close(lin.matrices(), expected)
        for j in range(5):
            torch.testing.assert_close(lin.jvp(j, v[j].clone()), v[j] @ expected[j].T)
            torch.testing.assert_close(lin.vjp(j, v[j].clone()), v[j] @ expected[j])
        rows = v[:, 0]
        torch.testing.assert_close(lin.jvp_steps(rows), torch.einsum("lij,lj->li", expected, rows))
        torch.testing.assert_close(lin.vjp_steps(rows), torch.einsum("li,lij->lj", rows, expected))


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


def _briefly_trained(cell, hidden, seed):
    torch.manual_seed(seed)
    model = rnnlab.SequenceModel(1, hidden, 1, cell=cell)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(32, 100, 1)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), x[:, 50]).backward()
        opt.step()
    return model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("trained", [False, True])
def test_the_sweep_is_as_accurate_as_stated(cell, trained):
    # the module docstring's claim: γ within 0.5%, the horizon within a step, every ‖P_k‖₂ a lower bound
    # within 20% (float32 against float64: a rounding above it)
    hidden = 64
    if trained:
        model = _briefly_trained(cell, hidden, 1)
    else:
        torch.manual_seed(1)
        model = rnnlab.SequenceModel(1, hidden, 1, cell=cell)
    x = torch.randn(2, 100, 1)
    call = trajectory.select(model.encoder, (x,), {}, None)
    exact = jacobian.products(trajectory.replay(model.encoder, call, torch.float64)["l0"], method="exact")
    sweep = jacobian.products(trajectory.replay(model.encoder, call, torch.float32)["l0"], method="sweep")
    assert sweep.method == "sweep" and sweep.passes < 2 + 2 * jacobian.STEP_ITERATIONS
    assert sweep.gamma == pytest.approx(exact.gamma, rel=5e-3)
    assert abs(sweep.horizon - exact.horizon) <= 1
    ratio = sweep.norms / exact.norms
    assert bool((ratio <= 1 + 1e-4).all()) and bool((ratio >= 0.8).all()), ratio.min()
    # auto takes the sweep above EXACT_MAX_STATE numbers of state
    assert jacobian.choose("auto", 2 * hidden) == "sweep" and jacobian.choose("auto", 32) == "exact"


def test_a_non_finite_trajectory_is_refused_with_its_reason():
    layer = linear_rnn(0.9)
    with torch.no_grad():
        layer.weight_hh_l0[0, 0] = math.inf
    with pytest.raises(
        ValueError, match=r"l0: the Jacobian analysis needs a finite trajectory, weight_hh not"
    ):
        rnnlab.jacobian_products(layer, torch.randn(10, 2, 3, dtype=torch.float64))
