"""SequenceModel: one line to a model for any cell, many-to-one and many-to-many."""

from __future__ import annotations

import pytest
import torch

import rnnlab


@pytest.mark.parametrize("cell", sorted(rnnlab.cells.CELLS))
def test_many_to_one_and_many_to_many_shapes(cell):
    x = torch.randn(4, 9, 3)
    assert rnnlab.SequenceModel(3, 8, 2, cell=cell)(x).shape == (4, 2)
    assert rnnlab.SequenceModel(3, 8, 2, cell=cell, output="sequence")(x).shape == (4, 9, 2)


def test_many_to_one_reads_each_sequences_own_last_step():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 8, 1, cell="gru", num_layers=2).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    y = model(x, lengths=torch.tensor([7, 4]))
    torch.testing.assert_close(y[1], model(x[1:, :4])[0])
    torch.testing.assert_close(y[0], model(x[:1])[0])


def test_bidirectional_many_to_one_uses_both_final_states():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 5, 1, cell="lstm", bidirectional=True).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    _, (h_n, _) = model.encoder(x)
    want = model.head(torch.cat((h_n[0], h_n[1]), -1))
    torch.testing.assert_close(model(x), want)


def test_head_is_a_linear_readout_of_every_step():
    model = rnnlab.SequenceModel(3, 5, 2, cell="rnn", output="sequence", batch_first=False)
    x = torch.randn(6, 2, 3)
    out, _ = model.encoder(x)
    torch.testing.assert_close(model(x), out @ model.head.weight.T + model.head.bias)


def test_layer_options_reach_the_encoder():
    model = rnnlab.SequenceModel(3, 6, 1, cell="lstm", num_layers=2, init="orthogonal", forget_bias=1.0)
    assert model.encoder.num_layers == 2
    assert torch.equal(rnnlab.init.blocks(model.encoder.bias_ih_l1, 4)[1], torch.ones(6))


def test_forward_takes_x_state_lengths_in_the_layers_order():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(3, 5, 2, cell="gru").double()
    x, lengths = torch.randn(2, 6, 3, dtype=torch.float64), torch.tensor([6, 4])
    state = torch.randn(1, 2, 5, dtype=torch.float64)
    y, _ = model.forward_with_state(x, state, lengths)
    torch.testing.assert_close(model(x, state, lengths), y)  # positional, as Recurrent(input, hx, lengths)
    assert not torch.allclose(model(x, state, lengths), model(x, None, lengths))  # the state is used


@pytest.mark.parametrize(
    ("options", "settings"),
    [
        ({}, {"cell": "lstm", "init": "default", "execution": "auto"}),
        (
            {"cell": "rnn", "nonlinearity": "relu", "num_layers": 2, "dropout": 0.25, "bias": False},
            {"cell": "rnn", "nonlinearity": "relu", "num_layers": 2, "dropout": 0.25, "bias": False},
        ),
        ({"cell": "rnn"}, {"nonlinearity": "tanh"}),  # the cell's default, written out
        ({"cell": "indrnn", "recurrent_max": 2.0}, {"nonlinearity": "relu", "recurrent_max": 2.0}),
        (
            {"init": {"input": "xavier_uniform", "recurrent": "orthogonal"}, "spectral_radius": 0.9},
            {"init": "default", "input_init": "xavier_uniform", "recurrent_init": "orthogonal"},
        ),
        (
            {"chrono": 50, "execution": "unrolled", "bidirectional": True},
            {"chrono": 50.0, "bidirectional": True},
        ),
    ],
)
def test_settings_record_the_construction_options(options, settings):
    model = rnnlab.SequenceModel(3, 6, 1, **options)
    recorded = model.settings()
    assert recorded["hidden_size"] == 6 and settings.items() <= recorded.items()
    assert model.unrecorded_settings() == {}
    if model.encoder.cell.__class__ is rnnlab.LSTMCell:
        assert "nonlinearity" not in recorded and "recurrent_max" not in recorded  # not the LSTM's options


def test_cell_options_are_read_from_the_cell_signature():
    assert rnnlab.models.cell_options(rnnlab.RNNCell) == ("nonlinearity",)
    assert rnnlab.models.cell_options(rnnlab.IndRNNCell) == ("nonlinearity", "recurrent_max")
    assert rnnlab.models.cell_options(rnnlab.LSTMCell) == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "transformer"}, "unknown cell 'transformer'; valid cells: rnn, lstm"),
        ({"output": "all"}, "output must"),
    ],
)
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.SequenceModel(3, 4, 1, **kwargs)
