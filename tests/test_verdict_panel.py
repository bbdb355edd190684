"""The verdict panel: one constructed case per way a verdict can mislead, each asserting the verdict and the
evidence it rests on. The truth cases (ρ-scaled RNNs, chaos, saturation, closed forget gates, a healthy
LSTM) are in test_diagnostics_verdict.py; the precursor of divergence in test_train_precursor.py.

1. gate statistics describe every unit, not a stride of them;
2. a layer is judged by its own recurrence, growth from above is said where it arises;
3. losses at every step add up, and that is not growth;
4. units in the flat tails are saturated, whatever their gates do;
5. NaN/Inf anywhere: a report, the cause named (data, a weight, the loss), the Jacobian skipped and said;
6. a true finding that need not matter is a note, not an alarm.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from diagnostics_cases import scaled

import rnnlab
from rnnlab.diagnostics import saturation, verdict
from rnnlab.diagnostics.verdict import Evidence, diagnose

# ------------------------------------------------------------------------- 1. every unit's gate statistics


def lstm_with_closed_forget_gates(hidden=64, every=4):
    """An LSTM whose forget gate is σ(bias) exactly: open (σ(3) ≈ 0.95) except at units 0, every, 2·every,
    …, closed (σ(−10) ≈ 5e-5). A stride that divides the hidden size sees only one kind of unit."""
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, hidden, 1, cell="lstm")
    enc = model.encoder
    H = hidden
    with torch.no_grad():
        enc.weight_ih_l0[H : 2 * H].zero_()
        enc.weight_hh_l0[H : 2 * H].zero_()
        enc.bias_hh_l0[H : 2 * H].zero_()
        bias = torch.full((H,), 3.0)
        bias[::every] = -10.0
        enc.bias_ih_l0[H : 2 * H].copy_(bias)
    return model


def test_gate_statistics_describe_every_unit_and_leave_the_rng_alone():
    model = lstm_with_closed_forget_gates()
    x = torch.randn(8, 100, 3)  # 100 × 8 × 64 = 51200 values per gate: sampled, not all
    assert 100 * 8 * 64 > saturation.QUANTILE_SAMPLE
    rng = torch.get_rng_state()
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(x), torch.zeros(8, 1)).backward()
    assert torch.equal(torch.get_rng_state(), rng)  # the probe drew nothing from the global stream
    layer = probe.report().layers["encoder.l0"]
    keep = layer.saturation["keep_gate"]
    assert keep["quantiles"]["q50"] == pytest.approx(1 / (1 + math.exp(-3)), abs=1e-3)
    assert keep["closed"] == pytest.approx(0.25, abs=0.02)  # a quarter of the units, whichever they are
    assert keep["quantiles"]["q05"] < 1e-3 < keep["quantiles"]["q50"]
    assert layer.verdict.name != "forgetting" and "forgetting" not in layer.verdict.flags


@pytest.mark.parametrize("every", [2, 4, 8, 64])
def test_sampled_shares_match_the_whole_population(every):
    T, B, H = 50, 16, 64
    x = torch.full((T, B, H), 0.5)
    x[:, :, ::every] = 0.999  # saturated high: a share of 1/every of all values
    mask = torch.ones(T, B, 1, dtype=torch.bool)
    mask[40:, 8:] = False  # padding: not part of the population
    x[40:, 8:] = 0.999
    valid = mask.expand(T, B, H)
    expected = float((x[valid] > saturation.SIGMOID_HIGH).float().mean())
    rng = torch.get_rng_state()
    out = saturation.measure({"z": x}, mask, (), ("z",), "z")
    assert torch.equal(torch.get_rng_state(), rng)
    assert float(out["per_gate"]["z"]["high"]) == pytest.approx(expected, abs=0.015)


# ----------------------------------------------------------------- 2. a layer judged by its own recurrence


def two_layer_rnn(hidden, upper_radius, steps):
    """Two linear-regime tanh layers with orthogonal W_hh: the lower one keeps norms exactly (ρ = 1), the
    upper one scales them by `upper_radius` per step. Inputs of 1e-9 keep every tanh at slope 1."""
    torch.manual_seed(0)
    layer = rnnlab.RNN(2, hidden, num_layers=2, init="orthogonal", bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l1.mul_(upper_radius)
    return layer, 1e-9 * torch.randn(steps, 4, 2, dtype=torch.float64)


@pytest.mark.parametrize("hidden", [16, 48])  # the exact method, and the sweep
@pytest.mark.parametrize("jacobian", [True, False])
def test_growth_from_the_layer_above_is_reported_where_it_arises(hidden, jacobian):
    layer, x = two_layer_rnn(hidden, 1.5, 30)
    w = torch.randn(4, hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with rnnlab.watch(layer, jacobian=jacobian) as probe:
        out, _ = layer(x)
        (out[-1] * w).sum().backward()  # many-to-one
    lower, upper = probe.report().layers["l0"], probe.report().layers["l1"]
    assert lower.first_over_last > 1e4  # the lower layer's ‖∂L/∂h_t‖ grows as much as the upper's
    assert lower.verdict.name == "healthy" and lower.verdict.severity == "ok"
    assert any("arriving from the layer above (l1 exploding)" in n for n in lower.verdict.notes)
    assert upper.verdict.name == "exploding" and upper.verdict.severity == "alarm"
    if jacobian:
        torch.testing.assert_close(
            lower.jacobian.norms, torch.ones_like(lower.jacobian.norms), rtol=1e-6, atol=0
        )
        assert upper.jacobian.growth == pytest.approx(1.5**30, rel=1e-4)
        assert "‖∂s_L/∂s_t‖ grows to" in upper.verdict.evidence


def test_a_layer_below_a_vanishing_one_keeps_its_own_verdict():
    layer, x = two_layer_rnn(16, 0.5, 40)
    with rnnlab.watch(layer) as probe:
        out, _ = layer(x)
        out[-1].sum().backward()
    report = probe.report()
    assert report.verdicts == {"l0": "healthy", "l1": "vanishing"}
    assert report.layers["l0"].jacobian.gamma == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- 3. losses at every step


@pytest.mark.parametrize("jacobian", [True, False])
def test_losses_at_every_step_add_up_and_are_not_growth(jacobian):
    # W = I, linear regime, L = Σ_t Σ h_t: ∂L/∂h_t = (T − t)·1, so ‖∂L/∂h_0‖ = T·‖∂L/∂h_T‖ = 1500·…
    torch.manual_seed(0)
    layer = rnnlab.RNN(2, 8, bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.eye(8, dtype=torch.float64))
    with rnnlab.watch(layer, jacobian=jacobian) as probe:
        out, _ = layer(1e-9 * torch.randn(1500, 2, 2, dtype=torch.float64))
        out.sum().backward()
    entry = probe.report().layers["l0"]
    assert entry.first_over_last == pytest.approx(1500, rel=1e-6)
    assert entry.verdict.name == "healthy"
    assert any("the sum of the losses at 1500 steps, not growth" in n for n in entry.verdict.notes)
    if jacobian:
        assert entry.jacobian.gamma == pytest.approx(1.0, abs=1e-9)


def test_a_growing_recurrence_with_losses_at_every_step_is_still_exploding():
    torch.manual_seed(0)
    layer = rnnlab.RNN(2, 8, bias=False, init="orthogonal", dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(1.3)
    for jacobian in (True, False):
        with rnnlab.watch(layer, jacobian=jacobian) as probe:
            out, _ = layer(1e-12 * torch.randn(60, 2, 2, dtype=torch.float64))
            out.sum().backward()
        entry = probe.report().layers["l0"]
        assert entry.verdict.name == "exploding", jacobian  # 1.3⁶⁰ ≈ 7e6, far beyond 60 loss terms


# --------------------------------------------------------------------------- 4. saturated, not forgetting


def test_an_lstm_scaled_twenty_times_is_saturated_with_its_gates_as_evidence():
    torch.manual_seed(0)
    model = scaled(rnnlab.SequenceModel(3, 32, 1, cell="lstm"), 20.0)
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(torch.randn(8, 50, 3)), torch.randn(8, 1)).backward()
    layer = probe.report().layers["encoder.l0"]
    assert layer.saturation["tanh"] > verdict.TANH_SATURATED
    assert layer.verdict.name == "saturated" and layer.verdict.severity == "alarm"
    assert "of tanh units have |tanh| > 0.99" in layer.verdict.evidence
    median = layer.saturation["keep_gate"]["quantiles"]["q50"]
    assert f"median f gate {rnnlab.text.format_number(median, 2)}" in layer.verdict.evidence
    assert "model.forget_bias=1.0" not in layer.verdict.remedies


def test_closed_keep_gates_in_saturated_units_are_saturation():
    e = Evidence(cell="LSTMCell", gated=True, steps=50, keep_gate="f", keep_median=0.02, keep_closed=0.8)
    e.tanh_saturated = 0.5
    v = diagnose(e)
    assert v.name == "saturated" and v.flags == ["saturated", "forgetting"]
    assert "median f gate 0.02 (memory 0.26 steps), 80% of them below 0.1" in v.evidence


# ----------------------------------------------------------------------------------- 5. non-finite values


@pytest.mark.parametrize("hidden", [8, 40])  # the exact method, and the sweep
def test_nan_in_the_input_is_a_data_problem(hidden):
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, hidden, 1, cell="lstm")
    x = torch.randn(6, 30, 2)
    x[3, 17, 1] = math.nan
    x[4, 20, 0] = math.inf
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(x), torch.randn(6, 1)).backward()
    report = probe.report()
    layer = report.layers["encoder.l0"]
    assert layer.verdict.name == "non-finite input" and layer.verdict.severity == "alarm"
    assert layer.verdict.evidence == "at sample 3, step 17 (2 of 6 sequences hold NaN or Inf)"
    assert layer.verdict.remedies == [] and "clean the data" in layer.verdict.hints
    assert layer.jacobian is not None and layer.jacobian.sample not in (3, 4)  # a finite sequence instead
    assert json.loads(report.to_json())["layers"]["encoder.l0"]["verdict"]["name"] == "non-finite input"


def test_a_batch_without_a_finite_sequence_skips_the_jacobian_and_says_so():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 8, 1, cell="gru")
    x = torch.randn(3, 10, 2)
    x[:, 4] = math.nan
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(x), torch.randn(3, 1)).backward()
    layer = probe.report().layers["encoder.l0"]
    assert layer.jacobian is None and "not finite" in layer.jacobian_skipped
    assert layer.verdict.name == "non-finite input" and layer.verdict.evidence.startswith(
        "at sample 0, step 4"
    )
    assert any(n.startswith("the Jacobian analysis skipped this layer") for n in layer.verdict.notes)


def test_an_inf_weight_is_named_even_when_the_forward_stays_finite():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 8, 1, cell="lstm")
    with torch.no_grad():
        model.encoder.bias_ih_l0[0] = math.inf  # input gate of unit 0: σ(∞) = 1, every value stays finite
    x = torch.randn(4, 12, 2)
    with rnnlab.watch(model) as probe:
        out = model(x)
        F.mse_loss(out, torch.randn(4, 1)).backward()
    assert bool(torch.isfinite(out).all())
    report = probe.report()
    layer = report.layers["encoder.l0"]
    assert layer.nonfinite == {"state_step": None, "grad_step": None}
    assert layer.verdict.name == "non-finite weight"
    assert layer.verdict.evidence == "encoder.bias_ih_l0 holds NaN or Inf"
    assert report.nonfinite_weights == ["encoder.bias_ih_l0"] and "non-finite weights in" in str(report)
    assert layer.jacobian is None and "bias_ih not finite" in layer.jacobian_skipped


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "layernorm_lstm", "indrnn"])
@pytest.mark.parametrize("where", ["input", "weight_hh", "bias", "upper weight_ih", "target"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("hidden", [8, 40])
def test_watch_never_raises_on_nan_or_inf(cell, where, value, hidden):
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, hidden, 1, cell=cell, num_layers=2)
    x, y = torch.randn(4, 12, 2), torch.randn(4, 1)
    enc = model.encoder
    with torch.no_grad():
        if where == "input":
            x[2, 5, 0] = value
        elif where == "target":
            y[1, 0] = value
        elif where == "weight_hh":
            enc.weight_hh_l0.view(-1)[3] = value
        elif where == "bias":
            bias = next(n for n, _ in enc.named_parameters() if "bias" in n and n.endswith("_l0"))
            enc.get_parameter(bias).view(-1)[0] = value
        else:
            enc.weight_ih_l1.view(-1)[0] = value
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(x), y).backward()
    report = probe.report()
    json.loads(report.to_json())
    str(report)
    lower, upper = report.layers["encoder.l0"].verdict, report.layers["encoder.l1"].verdict
    expected = {
        "input": ("non-finite input", "non-finite input"),
        "target": ("non-finite gradient", "non-finite gradient"),
        "weight_hh": ("non-finite weight", "non-finite input"),  # the upper layer reads what l0 sends
        "upper weight_ih": ("non-finite gradient", "non-finite weight"),  # the lower gets its gradient
    }
    if cell == "indrnn" and where == "weight_hh" and math.isinf(value):
        expected[where] = ("non-finite weight", "healthy")  # recurrent_max clamps u: l0 stays finite
    if where in expected:
        assert (lower.name, upper.name) == expected[where]
        assert "exploding" not in (lower.name, upper.name)  # nothing here is a growing recurrence
    else:  # an Inf in a bias may saturate a gate and leave every value finite
        assert lower.name == "non-finite weight" and f"encoder.{bias}" in lower.evidence


# ------------------------------------------------------------------------------------------- 6. severity


def test_a_short_horizon_on_short_sequences_is_a_note():
    e = Evidence(cell="LSTMCell", gated=True, steps=50, jacobian_steps=50, full_product=1e-8, gamma=0.69)
    e.horizon = 18.0
    v = diagnose(e)
    assert v.name == "vanishing" and v.severity == "note" and not v.alarm
    assert v.message.startswith(
        "note: vanishing: horizon 18 steps < 50-step sequences; matters only if the task needs longer memory"
    )
    e.horizon, e.steps, e.jacobian_steps = 18.0, 100, 100  # under a quarter of the sequence: an alarm
    v = diagnose(e)
    assert v.severity == "alarm" and v.message.startswith("alarm: vanishing: horizon 18 steps < 100-step")
    assert "matters only" not in v.message


def test_an_alarm_softens_while_the_loss_falls_but_broken_cases_stay_alarms():
    vanishing = diagnose(Evidence(cell="RNNCell", gated=False, steps=100, profile_drop=1e-9))
    softened = vanishing.soften("the loss still falls: 0.5 → 0.3 over the last 100 steps")
    assert (vanishing.severity, softened.severity) == ("alarm", "note")
    assert softened.message.startswith("note: vanishing: ") and "the loss still falls" in softened.message
    broken = [
        Evidence(cell="RNNCell", gated=False, jacobian_steps=10, growth=1e6, gamma=4.0),
        Evidence(cell="RNNCell", gated=False, nonfinite_state_step=3),
        Evidence(cell="RNNCell", gated=False, nonfinite_input=(0, 1)),
        Evidence(cell="RNNCell", gated=False, nonfinite_weights=["weight_hh_l0"]),
        Evidence(cell="RNNCell", gated=False, nonfinite_loss_step=9),
    ]
    for e in broken:
        v = diagnose(e)
        assert v.alarm and v.soften("the loss still falls").alarm, v.name


def test_a_torch_initialised_lstm_on_a_short_task_raises_no_alarm():
    torch.manual_seed(0)
    task = rnnlab.tasks.SineTask(seq_len=50, train_size=64, val_size=64, batch_size=64, seed=1)
    batch = next(iter(task.val_batches()))
    model = rnnlab.SequenceModel(1, 32, 1, cell="lstm")
    with rnnlab.watch(model) as probe:
        F.mse_loss(model(batch.inputs), batch.targets).backward()
    report = probe.report()
    layer = report.layers["encoder.l0"]
    assert layer.verdict.name == "vanishing" and layer.jacobian.horizon < 50  # true: it forgets in 50 steps
    assert report.alarms == {} and layer.verdict.severity == "note"
    assert "matters only if the task needs longer memory" in layer.verdict.message
