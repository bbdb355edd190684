"""Verdicts on constructed cases whose gradient flow is known, and the rules behind them."""

from types import SimpleNamespace

import pytest
import torch
from diagnostics_cases import backward, linear_rnn, scaled

import rnnlab
from rnnlab.cells import CELLS
from rnnlab.diagnostics import verdict
from rnnlab.diagnostics.verdict import Evidence, diagnose
from rnnlab.training.build import build_model
from rnnlab.training.config import TrainConfig, override, to_dict


def probe(model, x, **options):
    with rnnlab.watch(model, **options) as p:
        backward(model, x)
    return p.report()


def test_tanh_rnn_with_radius_one_half_is_vanishing():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 32, 1, cell="rnn", spectral_radius=0.5)
    layer = probe(model, torch.randn(4, 60, 3)).layers["encoder.l0"]
    assert layer.verdict.name == "vanishing"
    assert layer.jacobian.gamma < 0.5 and layer.jacobian.horizon < 60
    assert layer.spectral_radius == pytest.approx(0.5)
    assert layer.verdict.remedies == [
        "model.cell=lstm",
        "model.cell=gru",
        "model.cell=lstm model.chrono=60",  # chrono needs a keep gate: it comes with the LSTM
        "model.init=orthogonal",
    ]
    assert layer.verdict.message.endswith(
        "try model.cell=lstm, model.cell=gru, model.cell=lstm model.chrono=60 or model.init=orthogonal"
    )


def test_profile_alone_shows_vanishing_without_the_jacobian():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 32, 1, cell="rnn", spectral_radius=0.5)  # many-to-one: loss at the end
    layer = probe(model, torch.randn(4, 60, 3), jacobian=False).layers["encoder.l0"]
    assert layer.jacobian is None
    assert layer.profile_h[0] / max(layer.profile_h) < verdict.VANISHING
    assert layer.verdict.name == "vanishing" and "‖∂L/∂h_t‖ falls by" in layer.verdict.evidence


def test_an_lstm_keeps_its_gradient_through_c_when_h_fades():
    # chrono opens the forget gates and closes the input gates: ∂L/∂h_t fades, ∂L/∂c_t carries the past
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(1, 64, 1, cell="lstm", chrono=100)
    layer = probe(model, torch.randn(32, 100, 1), jacobian=False).layers["encoder.l0"]
    h_drop = layer.profile_h[0] / max(layer.profile_h)
    c_drop = layer.profile_c[0] / max(layer.profile_c)
    assert h_drop < c_drop and c_drop > verdict.VANISHING
    assert layer.verdict.name == "healthy"


def test_a_profile_that_underflows_says_so():
    e = Evidence(cell="RNNCell", gated=False, steps=300, profile_drop=0.0)
    assert "‖∂L/∂h_t‖ underflows to 0 over 300 steps" in diagnose(e).evidence
    e = Evidence(
        cell="LSTMCell", gated=True, steps=300, profile_drop=1e-6, profile_names="‖∂L/∂h_t‖ and ‖∂L/∂c_t‖"
    )
    assert "‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ fall by 10⁶ over 300 steps" in diagnose(e).evidence


def test_linear_rnn_with_orthogonal_weights_is_healthy():
    layer = probe(linear_rnn(1.0), torch.randn(50, 2, 3, dtype=torch.float64)).layers["l0"]
    assert layer.verdict.name == "healthy" and layer.verdict.flags == [] and layer.verdict.remedies == []
    assert layer.jacobian.gamma == pytest.approx(1.0)


def test_linear_rnn_with_radius_one_and_a_half_is_exploding():
    layer = probe(linear_rnn(1.5), torch.randn(50, 2, 3, dtype=torch.float64)).layers["l0"]
    assert layer.verdict.name == "exploding"
    assert layer.jacobian.growth == pytest.approx(1.5**50, rel=1e-6)
    assert "model.spectral_radius=1.0" in layer.verdict.remedies
    assert layer.verdict.remedies[0].startswith("clip.mode=norm")


def test_chaotic_tanh_rnn_is_exploding():
    # Gaussian recurrent weights of gain 2 (std 2/√H) and small inputs: a positive Lyapunov exponent
    torch.manual_seed(0)
    H = 64
    model = rnnlab.SequenceModel(3, H, 1, cell="rnn", init={"recurrent": f"normal({2 / H**0.5})"})
    layer = probe(model, 0.01 * torch.randn(2, 100, 3)).layers["encoder.l0"]
    assert layer.verdict.name == "exploding"
    assert layer.jacobian.gamma > 1.05 and layer.jacobian.growth > verdict.EXPLODING


def test_preactivations_scaled_by_twenty_are_saturated():
    torch.manual_seed(0)
    model = scaled(rnnlab.SequenceModel(3, 32, 1, cell="rnn"), 20.0)
    layer = probe(model, torch.randn(4, 30, 3)).layers["encoder.l0"]
    assert layer.verdict.name == "saturated"
    assert layer.saturation["tanh"] > verdict.TANH_SATURATED
    assert layer.verdict.flags[0] == "saturated"  # the cause is named first, other findings kept as flags


def test_lstm_with_forget_bias_minus_six_is_forgetting():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 16, 1, cell="lstm", forget_bias=-6.0)
    layer = probe(model, torch.randn(4, 30, 3)).layers["encoder.l0"]
    assert layer.verdict.name == "forgetting"
    keep = layer.saturation["keep_gate"]
    assert keep["name"] == "f" and keep["quantiles"]["q50"] < 0.01
    assert layer.verdict.remedies == ["model.forget_bias=1.0", "model.chrono=30"]


def test_healthy_lstm_on_a_short_task_raises_no_alarm():
    # recall the input from 3 steps before the end of 8-step sequences, after a short training
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(1, 16, 1, cell="lstm", forget_bias=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(64, 8, 1)
    y = x[:, -4]
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    with rnnlab.watch(model) as p:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
    report = p.report()
    assert float(loss.detach()) < 0.1  # it learned the task
    assert report.verdicts == {"encoder.l0": "healthy"} and report.healthy
    assert report.layers["encoder.l0"].jacobian.horizon > 8


# ---------------------------------------------------------------------------------------------- the rules


def test_checks_run_in_order_and_keep_every_flag():
    # saturation names the verdict over closed keep gates: it is their cause, they are its evidence
    e = Evidence(cell="LSTMCell", gated=True, steps=100, jacobian_steps=100, keep_gate="f", keep_median=0.01)
    e.full_product, e.growth, e.tanh_saturated = 1e-9, 0.5, 0.9
    v = diagnose(e)
    assert v.name == "saturated" and v.flags == ["saturated", "forgetting", "vanishing"]
    assert "median f gate 0.01" in v.evidence and v.severity == "alarm"
    e.tanh_saturated = 0.1
    assert diagnose(e).name == "forgetting" and diagnose(e).flags == ["forgetting", "vanishing"]
    e.nonfinite_grad_step = 42
    v = diagnose(e)
    assert v.name == "exploding" and "step 42" in v.evidence
    assert v.remedies == ["clip.mode=norm clip.max_norm=1"] and v.hints == ["lower optim.lr"]
    assert v.message.endswith(": try clip.mode=norm clip.max_norm=1; also: lower optim.lr")
    assert v.to_dict()["hints"] == ["lower optim.lr"]
    e.nonfinite_weights = ["encoder.bias_hh_l0"]
    assert (
        diagnose(e).name == "non-finite weight"
        and "encoder.bias_hh_l0 holds NaN or Inf" in diagnose(e).evidence
    )
    e.nonfinite_input = (3, 17)
    v = diagnose(e)
    assert v.name == "non-finite input" and v.evidence.startswith("at sample 3, step 17")
    assert v.remedies == [] and "clean the data" in v.hints
    assert v.flags[:3] == ["non-finite input", "non-finite weight", "exploding"]


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("full_product", verdict.VANISHING * 0.99, "vanishing"),
        ("full_product", verdict.VANISHING * 1.01, "healthy"),
        ("growth", verdict.EXPLODING * 1.01, "exploding"),
        ("growth", verdict.EXPLODING * 0.99, "healthy"),
        ("profile_drop", verdict.VANISHING * 0.99, "vanishing"),
        ("profile_growth", verdict.EXPLODING * 1.01, "exploding"),
        ("tanh_saturated", verdict.TANH_SATURATED + 0.01, "saturated"),
        ("gates_saturated", verdict.GATES_SATURATED - 0.01, "healthy"),
        ("keep_median", verdict.FORGET_CLOSED * 0.99, "forgetting"),
        ("keep_median", verdict.FORGET_CLOSED * 1.01, "healthy"),
    ],
)
def test_each_threshold_decides(field, value, name):
    e = Evidence(cell="GRUCell", gated=True, steps=50, jacobian_steps=50, keep_gate="z")
    setattr(e, field, value)
    assert diagnose(e).name == name


def test_clip_threshold_follows_the_median_norm():
    e = Evidence(
        cell="RNNCell", gated=False, jacobian_steps=10, growth=1e5, spectral_radius=1.8, grad_norm=3e4
    )
    e.median_grad_norm = 0.7
    v = diagnose(e)
    assert v.remedies == [
        "clip.mode=norm clip.max_norm=1",
        "model.spectral_radius=1.0",
        "model.init=orthogonal",
    ]
    assert "pre-clip norm 30000 (median 0.7)" in v.evidence and "spectral radius 1.8" in v.evidence
    assert (
        v.message.startswith("alarm: exploding: ") and ": try clip.mode=norm clip.max_norm=1, " in v.message
    )
    for median, threshold in [(2.5, "5"), (1.0, "1"), (0.031, "0.05"), (1500.0, "2000"), (3e6, "5e+06")]:
        e.median_grad_norm = median
        assert diagnose(e).remedies[0] == f"clip.mode=norm clip.max_norm={threshold}", median


# ------------------------------------------------------------------------- remedies are config overrides

#: evidence that makes each check hold, and the verdict it gives (median norm known or not, radius > 1 or not)
BRANCHES = {
    "nonfinite state": ("exploding", {"nonfinite_state_step": 7}),
    "nonfinite gradient": ("exploding", {"nonfinite_grad_step": 3, "median_grad_norm": 0.031}),
    "forgetting": ("forgetting", {"keep_median": 0.01}),
    "tanh saturated": ("saturated", {"tanh_saturated": 0.9}),
    "gates saturated": ("saturated", {"gates_saturated": 0.9}),
    "growth": (
        "exploding",
        {"growth": 1e5, "gamma": 1.3, "spectral_radius": 1.8, "grad_norm": 3e4, "median_grad_norm": 1500.0},
    ),
    "profile growth": ("exploding", {"profile_growth": 1e6, "spectral_radius": 0.9}),
    "vanishing product": ("vanishing", {"full_product": 1e-9, "gamma": 0.8, "horizon": 4.5}),
    "vanishing profile": ("vanishing", {"profile_drop": 0.0}),
    "healthy": ("healthy", {"gamma": 0.99, "horizon": 945.3}),
    "nonfinite input": ("non-finite input", {"nonfinite_input": (3, 17), "nonfinite_samples": 2, "batch": 8}),
    "nonfinite input from below": ("non-finite input", {"below_nonfinite": "l0", "nonfinite_state_step": 4}),
    "nonfinite weight": ("non-finite weight", {"nonfinite_weights": ["encoder.weight_hh_l0"]}),
    "nonfinite loss": ("non-finite gradient", {"nonfinite_loss_step": 79, "nonfinite_grad_step": 79}),
    "nonfinite from above": ("non-finite gradient", {"above_nonfinite": "l1", "nonfinite_grad_step": 2}),
    "profile growth of many losses": ("healthy", {"profile_growth": 2e3, "loss_terms": 80}),
    "vanishing note": ("vanishing", {"full_product": 1e-5, "gamma": 0.8, "horizon": 40.0}),
}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("branch", list(BRANCHES))
def test_every_remedy_is_a_config_override_that_builds_a_model(cell, branch):
    kind = CELLS[cell]
    e = Evidence(cell=kind.__name__, gated=kind.keep_gate is not None, steps=80, jacobian_steps=80)
    e.keep_gate = kind.keep_gate
    expected, measured = BRANCHES[branch]
    if branch == "forgetting" and not e.gated:
        pytest.skip("only a cell with a keep gate measures it")
    for name, value in measured.items():
        setattr(e, name, value)
    v = diagnose(e)
    assert v.name == expected
    assert bool(v.remedies) == (expected not in ("healthy", "non-finite input", "non-finite gradient"))
    base = override(TrainConfig(), {"model.cell": cell})
    task = SimpleNamespace(input_size=2, output_size=1, output="last")
    for remedy in v.remedies:
        pairs = [item.split("=", 1) for item in remedy.split(" ")]
        assert all(len(p) == 2 and p[0] and p[1] for p in pairs), remedy
        config = override(base, dict(pairs))  # raises ConfigError on an unknown key or a bad value
        assert to_dict(config) != to_dict(base), remedy  # it changes something
        build_model(config.model, task)  # raises ConfigError when the model cannot take it
    for hint in v.hints:
        assert "=" not in hint and hint[0].islower(), hint  # a sentence, not a setting
    assert all(r in v.message for r in v.remedies + v.hints)
