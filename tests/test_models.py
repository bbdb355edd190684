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


def test_token_ids_are_embedded_then_encoded():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(4, 6, 3, cell="gru", vocab_size=10, bidirectional=True).double()
    ids, lengths = torch.tensor([[3, 9, 1, 2], [5, 7, 0, 0]]), torch.tensor([4, 2])
    lookup = torch.nn.Embedding(10, 4, padding_idx=0).double()
    lookup.load_state_dict(model.embedding.state_dict())
    _, h_n = model.encoder(lookup(ids), lengths=lengths)
    want = model.head(torch.cat((h_n[0], h_n[1]), -1))
    torch.testing.assert_close(model(ids, lengths=lengths), want)
    torch.testing.assert_close(model(ids[1:, :2])[0], want[1])  # padding past the length changes nothing


def test_the_padding_id_embeds_to_zero_and_gets_no_gradient():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(4, 6, 2, cell="lstm", vocab_size=10, output="sequence")
    assert torch.equal(model.embedding.weight[0], torch.zeros(4))
    model(torch.tensor([[3, 0, 2, 0]])).sum().backward()  # 0 read as a token here: no lengths
    grad = model.embedding.weight.grad
    assert torch.equal(grad[0], torch.zeros(4)) and bool(grad[3].abs().sum() > 0)
    assert torch.equal(grad[1], torch.zeros(4))  # an id not in the batch


def test_embedding_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = rnnlab.SequenceModel(8, 6, 2, cell="gru", vocab_size=10, embedding_dropout=0.5)
    ids = torch.randint(1, 10, (4, 5))
    assert not torch.equal(model(ids), model(ids))  # two draws of the mask
    model.eval()
    torch.testing.assert_close(model(ids), model(ids))
    dropless = rnnlab.SequenceModel(8, 6, 2, cell="gru", vocab_size=10)
    dropless.load_state_dict(model.state_dict())
    torch.testing.assert_close(dropless(ids), model(ids))


def test_a_token_model_records_its_embedding_and_a_feature_model_none():
    model = rnnlab.SequenceModel(16, 6, 2, vocab_size=50, embedding_dropout=0.25)
    assert model.settings()["embedding_dim"] == 16 and model.settings()["embedding_dropout"] == 0.25
    assert "embedding_dim" not in rnnlab.SequenceModel(3, 6, 2).settings()


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (torch.tensor([[1, 10]]), r"token id 10 is outside \[0, 10\) \(the vocab_size\)"),
        (torch.tensor([[-1, 2]]), r"token id -1 is outside"),
        (torch.zeros(1, 2, 10), r"reads int64 token ids \(batch, time\), got torch.float32 of shape"),
    ],
)
def test_a_token_model_refuses_what_is_not_its_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.SequenceModel(4, 6, 2, vocab_size=10)(ids)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 1}, "vocab_size must be at least 2"),
        ({"embedding_dropout": 0.5}, "embedding_dropout needs vocab_size"),
        ({"vocab_size": 5, "embedding_dropout": 1.0}, r"embedding_dropout must be in \[0, 1\)"),
    ],
)
def test_bad_embedding_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rnnlab.SequenceModel(3, 4, 1, **kwargs)
