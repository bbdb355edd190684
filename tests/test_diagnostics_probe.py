"""rnnlab.watch: per-step gradient norms equal autograd's, observing changes nothing, the report holds up."""

import json
import math

import pytest
import torch
from diagnostics_cases import LinearCell, backward

import rnnlab

CELLS = ["rnn", "lstm", "gru", "layernorm_lstm", "indrnn"]  # kernel paths and the autograd path


def reference_state_grads(layer, x, weights):
    """∂L/∂state_t of every layer and direction by hand-stepping the cells under autograd (no masks)."""
    T = x.shape[0]
    grads, inp = {}, x
    outputs = []
    for unit in layer.units():
        if unit.direction == 0 and unit.layer > 0:
            inp, outputs = torch.cat(outputs, -1), []
        cell, params = unit.cell, unit.params
        xin = inp if unit.direction == 0 else inp.flip(0)
        state = cell.init_state(x.shape[1])
        steps = []
        for t in range(T):
            state, _ = cell.step(params, cell.project(params, xin[t]), tuple(state))
            for s in state:
                s.retain_grad()
            steps.append(state)
        grads[(unit.layer, unit.direction)] = steps
        h = torch.stack([s[0] for s in steps])
        outputs.append(h if unit.direction == 0 else h.flip(0))
    inp = torch.cat(outputs, -1)
    (inp * weights).sum().backward()
    return {
        k: [torch.stack([s[i].grad.norm() for s in v]) for i in range(len(v[0]))] for k, v in grads.items()
    }


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_profile_equals_autograd_state_gradients(cell, bidirectional):
    torch.manual_seed(0)
    layer = rnnlab.Recurrent(
        rnnlab.cell_type(cell), 3, 4, num_layers=2, bidirectional=bidirectional, dtype=torch.float64
    )
    x = torch.randn(9, 2, 3, dtype=torch.float64)
    weights = torch.randn(9, 2, 4 * layer.num_directions, dtype=torch.float64)
    expected = reference_state_grads(layer, x, weights)
    layer.zero_grad()
    with rnnlab.watch(layer, jacobian=False) as probe:
        backward(layer, x, weights)
    report = probe.report()
    for (index, direction), fields in expected.items():
        entry = report.layers[f"l{index}" + ("_reverse" if direction else "")]
        torch.testing.assert_close(torch.tensor(entry.profile_h, dtype=torch.float64), fields[0])
        if len(fields) > 1:
            torch.testing.assert_close(torch.tensor(entry.profile_c, dtype=torch.float64), fields[1])
        else:
            assert entry.profile_c is None
        assert entry.steps == 9 and entry.batch == 2


def _train_step(model, x, y, probe):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(7)  # dropout draws from here on
    opt.zero_grad()
    if probe:
        with rnnlab.watch(model) as p:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
        assert p.report().layers  # it did observe
    else:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    return loss.detach(), grads, [p.detach().clone() for p in model.parameters()], torch.rand(4)


@pytest.mark.parametrize("cell", ["lstm", "layernorm_gru"])
def test_observing_changes_nothing(cell):
    x, y = torch.randn(3, 12, 2), torch.randn(3, 1)
    results = []
    for probe in (False, True):
        torch.manual_seed(0)
        model = rnnlab.SequenceModel(
            2, 8, 1, cell=cell, num_layers=2, dropout=0.3, bidirectional=True, execution="unrolled"
        )
        results.append(_train_step(model, x, y, probe))
    (loss0, grads0, params0, rng0), (loss1, grads1, params1, rng1) = results
    assert torch.equal(loss0, loss1)
    assert all(torch.equal(a, b) for a, b in zip(grads0, grads1, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(params0, params1, strict=True))
    assert torch.equal(rng0, rng1)  # not one random number drawn by the probe


def test_probe_restores_the_layer_and_reads_the_pre_clip_norm():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 1, cell="lstm")  # auto runs torch's fused LSTM on CPU
    assert model.encoder.uses_fused()
    with rnnlab.watch(model) as probe:
        assert not model.encoder.uses_fused()  # observed steps need the unrolled path
        backward(model, torch.randn(4, 5, 2))
    expected = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
    report = probe.report()
    assert model.encoder.uses_fused() and model.encoder.observer_factory is None
    assert report.grad_norm == pytest.approx(expected, rel=1e-6)
    assert set(report.param_grad_norms) == {n for n, _ in model.named_parameters()}


def test_masked_steps_carry_no_gradient():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(2, 5, bidirectional=True)
    x, lengths = torch.randn(6, 2, 2), torch.tensor([6, 3])
    with rnnlab.watch(layer, jacobian=False) as both:
        layer(x, lengths=lengths)[0].sum().backward()
    with rnnlab.watch(layer, jacobian=False) as alone:
        layer(x[:, :1])[0].sum().backward()
    # the short sequence is masked from processing step 3 on (in either direction): only the long one is left
    for name in ("l0", "l0_reverse"):
        masked, single = both.report().layers[name], alone.report().layers[name]
        assert masked.steps == 6 and all(v > 0 for v in masked.profile_h)
        torch.testing.assert_close(torch.tensor(masked.profile_h[3:]), torch.tensor(single.profile_h[3:]))
        assert masked.profile_h[0] > single.profile_h[0]


def test_earliest_non_finite_state_and_gradient_step():
    # h_t = 1000^t · 1 in float32: finite up to t = 12 (1e36), inf from t = 13 (1e39 > 3.4e38).
    # ∂L/∂h_t = Σ_{k ≤ T-1-t} 1000^k for L = Σ h: infinite once T-1-t ≥ 13, first met by backward at t = 6.
    T, H = 20, 4
    layer = rnnlab.Recurrent(LinearCell, H, H, bias=False)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.eye(H))
        layer.weight_hh_l0.copy_(1000 * torch.eye(H))
    x = torch.zeros(T, 1, H)
    x[0] = 1.0
    with rnnlab.watch(layer) as probe:
        out, _ = layer(x)
        out.sum().backward()
    report = probe.report()
    entry = report.layers["l0"]
    assert entry.nonfinite == {"state_step": 13, "grad_step": 6}
    assert entry.verdict.name == "exploding"
    assert "step 13" in entry.verdict.evidence
    assert report.nonfinite_params == ["weight_ih_l0", "weight_hh_l0"]  # both sum ∂L/∂h_t ≈ inf for t ≤ 6


def test_report_converts_to_json_and_prints_a_table():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 1, cell="lstm", num_layers=2)
    with rnnlab.watch(model) as probe:
        backward(model, torch.randn(3, 7, 2))
    report = probe.report()
    data = json.loads(report.to_json())
    assert set(data["layers"]) == {"encoder.l0", "encoder.l1"}
    layer = data["layers"]["encoder.l1"]
    assert len(layer["profile_h"]) == 7 and len(layer["profile_c"]) == 7
    assert set(layer["spectra"]) == {"i", "f", "g", "o"}
    assert set(layer["saturation"]["per_gate"]) == {"i", "f", "g", "o", "tanh_c"}
    assert layer["saturation"]["keep_gate"]["name"] == "f"
    assert layer["jacobian"]["method"] == "exact" and len(layer["jacobian"]["norms"]) == 7
    assert layer["verdict"]["name"] in {"healthy", "vanishing", "exploding", "saturated", "forgetting"}
    text = str(report)
    assert "encoder.l0" in text and "encoder.l1" in text and "gradient norm before clipping" in text


def test_a_layer_pinned_to_the_fused_kernel_runs_unrolled_inside_the_block_only():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(2, 4, execution="fused")
    x = torch.randn(5, 3, 2)
    fused_out = layer(x)[0]
    with rnnlab.watch(layer, jacobian=False) as probe:
        out = layer(x)[0]
        out.sum().backward()
    assert layer.execution == "fused" and layer.observer_factory is None
    assert len(probe.report().layers["l0"].profile_h) == 5
    torch.testing.assert_close(out, fused_out)  # the two paths agree to rounding


def test_watch_needs_an_rnnlab_layer_and_notes_torch_rnns():
    with pytest.raises(ValueError, match="time_profile"):
        rnnlab.watch(torch.nn.LSTM(2, 3))
    both = torch.nn.ModuleDict({"ours": rnnlab.GRU(2, 3), "theirs": torch.nn.GRU(2, 3)})
    with rnnlab.watch(both) as probe:
        both["ours"](torch.randn(4, 1, 2))[0].sum().backward()
    assert any("theirs" in n for n in probe.report().notes)
    with pytest.raises(RuntimeError, match="block has ended"):
        rnnlab.watch(both).report()


def test_nested_probes_both_observe():
    torch.manual_seed(0)
    layer = rnnlab.RNN(2, 4)
    x = torch.randn(5, 2, 2)
    with rnnlab.watch(layer, jacobian=False) as outer:
        with rnnlab.watch(layer, jacobian=False) as inner:
            layer(x)[0].sum().backward()
    assert outer.report().layers["l0"].profile_h == inner.report().layers["l0"].profile_h
    assert layer.observer_factory is None


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "indrnn", "layernorm_lstm"])
def test_the_probe_analyses_the_observed_steps_as_a_replay_would(cell):
    # closed-form cells are linearised from the states and gates the probe saw; others are replayed
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(2, 6, 1, cell=cell, num_layers=2, bidirectional=True).double()
    x, lengths = torch.randn(3, 9, 2, dtype=torch.float64), torch.tensor([5, 9, 7])
    with rnnlab.watch(model, method="exact") as probe:
        model(x, lengths=lengths).sum().backward()
    replayed = rnnlab.jacobian_products(model, x, method="exact", lengths=lengths)
    for name, expected in replayed.items():
        got = probe.report().layers[name].jacobian
        assert got.sample == expected.sample == 1 and got.steps == 9  # the longest sequence
        torch.testing.assert_close(got.norms, expected.norms)
