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
