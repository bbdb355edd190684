"""Initialisers: each property holds per gate block, for every layer and direction."""

from __future__ import annotations

import math

import pytest
import torch

import rnnlab
from rnnlab.init import blocks, spectral_radius


def each_block(layer, name):
    for unit in layer.units():
        yield from blocks(unit.params[name], unit.cell.gate_count)


def test_default_is_torchs_uniform():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 16)
    bound = 1 / math.sqrt(16)
    for p in layer.parameters():
        assert p.abs().max() <= bound


@pytest.mark.parametrize("layer_cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN, rnnlab.LayerNormLSTM])
def test_orthogonal_per_gate_block(layer_cls):
    layer = layer_cls(8, 16, num_layers=2, bidirectional=True, init="orthogonal", dtype=torch.float64)
    eye = torch.eye(16, dtype=torch.float64)
    for block in each_block(layer, "weight_hh"):
        torch.testing.assert_close(block.T @ block, eye, rtol=0, atol=1e-10)
    for block in each_block(layer, "weight_ih"):  # (16, n): orthonormal columns (n <= 16) or rows (n > 16)
        gram = block.T @ block if block.shape[1] <= 16 else block @ block.T
        torch.testing.assert_close(gram, torch.eye(len(gram), dtype=torch.float64), rtol=0, atol=1e-10)
    # the fused (4H, H) matrix is NOT what was orthogonalised: its gram matrix is G·I
    if layer_cls is rnnlab.LSTM:
        w = layer.weight_hh_l0
        torch.testing.assert_close(w.T @ w, 4 * eye, rtol=0, atol=1e-10)


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.8])
@pytest.mark.parametrize("layer_cls", [rnnlab.RNN, rnnlab.LSTM, rnnlab.GRU])
def test_spectral_radius(rho, layer_cls):
    torch.manual_seed(2)
    layer = layer_cls(4, 24, num_layers=2, spectral_radius=rho, dtype=torch.float64)
    for block in each_block(layer, "weight_hh"):
        assert abs(spectral_radius(block) - rho) < 1e-6


def test_spectral_radius_for_indrnn_vector():
    layer = rnnlab.IndRNN(4, 8, spectral_radius=0.7, recurrent_max=2.0)
    assert abs(layer.weight_hh_l0.abs().max().item() - 0.7) < 1e-6


def test_identity_is_the_identity_and_leaves_input_weights():
    torch.manual_seed(0)
    layer = rnnlab.RNN(3, 5, nonlinearity="relu", init="identity")
    assert torch.equal(layer.weight_hh_l0, torch.eye(5))
    assert not torch.equal(layer.weight_ih_l0, torch.zeros(3, 5).T)
    assert torch.equal(layer.bias_hh_l0, torch.zeros(5))


def test_input_and_recurrent_separately():
    torch.manual_seed(0)
    layer = rnnlab.RNN(200, 100, init={"input": "normal(0.001)", "recurrent": "identity"})
    assert abs(layer.weight_ih_l0.std().item() - 0.001) < 1e-4
    assert torch.equal(layer.weight_hh_l0, torch.eye(100))


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"])
def test_fan_based_inits_use_the_gate_blocks_fans(name):
    torch.manual_seed(0)
    H, I = 256, 64
    layer = rnnlab.LSTM(I, H, init=name)
    w = layer.weight_ih_l0  # 4 blocks of (H, I): fan_in = I, fan_out = H
    if name.startswith("xavier"):
        std = math.sqrt(2.0 / (I + H))
    else:
        std = math.sqrt(2.0 / I)
    for block in blocks(w, 4):
        assert abs(block.std().item() / std - 1) < 0.05


def test_forget_bias_lands_on_the_forget_gate_only():
    layer = rnnlab.LSTM(3, 6, num_layers=2, bidirectional=True, init="orthogonal", forget_bias=1.5)
    for k in range(2):
        for d in range(2):
            p = layer.cell_parameters(k, d)
            effective = p["bias_ih"] + p["bias_hh"]
            i, f, g, o = blocks(effective, 4)
            assert torch.equal(f, torch.full((6,), 1.5))
            for other in (i, g, o):
                assert torch.equal(other, torch.zeros(6))


def test_forget_bias_without_init_keeps_torch_default_elsewhere():
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 6, forget_bias=2.0)
    assert torch.equal(blocks(layer.bias_ih_l0, 4)[1], torch.full((6,), 2.0))
    assert torch.equal(blocks(layer.bias_hh_l0, 4)[1], torch.zeros(6))
    assert blocks(layer.bias_ih_l0, 4)[0].abs().sum() > 0


def test_gru_forget_bias_goes_to_the_update_gate():
    layer = rnnlab.GRU(3, 6, forget_bias=1.0, init="xavier_uniform")
    r, z, n = blocks(layer.bias_ih_l0 + layer.bias_hh_l0, 3)
    assert torch.equal(z, torch.ones(6)) and r.abs().sum() == 0 and n.abs().sum() == 0


def test_chrono_biases_lie_in_range():
    torch.manual_seed(0)
    t_max = 200
    layer = rnnlab.LSTM(3, 500, chrono=t_max)
    i, f, _, _ = blocks(layer.bias_ih_l0 + layer.bias_hh_l0, 4)
    assert f.min() >= 0.0 and f.max() <= math.log(t_max - 1)
    assert f.max() > math.log(t_max - 1) - 0.5  # spread out to nearly log(T_max - 1)
    torch.testing.assert_close(i, -f, rtol=0, atol=0)


def test_layernorm_forget_bias_uses_the_norm_shift():
    layer = rnnlab.LayerNormLSTM(3, 4, forget_bias=1.0)
    assert torch.equal(blocks(layer.ln_ih_bias_l0, 4)[1], torch.ones(4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"init": "glorot"}, "unknown init 'glorot'; valid names: .*orthogonal"),
        ({"init": {"hidden": "orthogonal"}}, "init dict keys must be"),
        ({"init": "normal(-1)"}, "unknown init|std > 0"),
        ({"forget_bias": 1.0, "chrono": 10}, "give one of them"),
        ({"chrono": 1}, "must be > 2"),
        ({"spectral_radius": 0.0}, "spectral_radius must be positive"),
    ],
)
def test_bad_initialiser_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.LSTM(3, 4, **kwargs)


def test_forget_bias_needs_a_gated_cell():
    with pytest.raises(ValueError, match="forget_bias needs a gated cell"):
        rnnlab.RNN(3, 4, forget_bias=1.0)
    with pytest.raises(ValueError, match="bias=False"):
        rnnlab.LSTM(3, 4, bias=False, forget_bias=1.0)


def test_matrix_initialiser_on_vector_weight_is_refused():
    with pytest.raises(ValueError, match="needs a weight matrix"):
        rnnlab.IndRNN(3, 4, init={"recurrent": "orthogonal"})


def test_initialisers_apply_to_a_single_cell():
    cell = rnnlab.LSTMCell(3, 8)
    rnnlab.init.initialize(cell, init="orthogonal", forget_bias=1.0)
    for block in blocks(cell.weight_hh, 4):
        torch.testing.assert_close(block.T @ block, torch.eye(8), atol=1e-5, rtol=0)
    assert torch.equal(blocks(cell.bias_ih, 4)[1], torch.ones(8))


def test_callable_initialiser_acts_per_block():
    seen = []
    rnnlab.GRU(3, 4, init={"recurrent": lambda block: seen.append(tuple(block.shape))})
    assert seen == [(4, 4)] * 3


@pytest.mark.parametrize(
    "options",
    [
        {"init": "orthogonal", "forget_bias": 1.0},
        {"init": {"input": "xavier_uniform", "recurrent": "identity"}, "spectral_radius": 0.9},
        {"chrono": 50.0},
    ],
)
def test_reset_parameters_applies_the_initialisers_given_at_construction(options):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 8, num_layers=2, **options)
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(7.0)  # anything but an initialisation
    torch.manual_seed(0)
    layer.reset_parameters()
    torch.manual_seed(0)
    fresh = rnnlab.LSTM(3, 8, num_layers=2, **options)
    for (name, p), q in zip(layer.named_parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q), name
    if "forget_bias" in options:
        assert torch.equal(layer.bias_ih_l0[8:16], torch.ones(8))
    if options.get("init") == "orthogonal":
        w = blocks(layer.weight_hh_l1, 4)[2]
        torch.testing.assert_close(w.T @ w, torch.eye(8), rtol=0, atol=1e-5)


def test_the_layer_shows_its_arguments():
    assert repr(rnnlab.LSTM(3, 5)) == "LSTM(3, 5)"
    shown = repr(rnnlab.LSTM(3, 5, num_layers=2, batch_first=True, dropout=0.1, init="orthogonal"))
    assert shown == "LSTM(3, 5, num_layers=2, batch_first=True, dropout=0.1, init='orthogonal')"
    assert repr(rnnlab.IndRNN(2, 4, recurrent_max=2.0)) == "IndRNN(2, 4, recurrent_max=2.0)"
    assert (
        repr(rnnlab.Recurrent(rnnlab.GRUCell, 2, 4, forget_bias=1.0))
        == "Recurrent(GRUCell, 2, 4, forget_bias=1.0)"
    )
    assert "nonlinearity='relu'" in repr(rnnlab.RNN(2, 4, nonlinearity="relu"))


def test_default_by_name_is_the_default():
    """init="default" (what a config file says) changes nothing: torch's uniform init, biases included."""
    torch.manual_seed(0)
    named = rnnlab.GRU(3, 5, init="default")
    torch.manual_seed(0)
    plain = rnnlab.GRU(3, 5)
    for (name, p), q in zip(named.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert named.bias_ih_l0.abs().sum() > 0
