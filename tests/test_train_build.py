"""build_model: every [model] option reaches the SequenceModel, and a model's settings rebuild it."""

import pytest
import torch

import rnnlab
from rnnlab.cells import CELLS
from rnnlab.tasks import TensorTask
from rnnlab.training import ConfigError, ModelConfig, build_model
from rnnlab.training import config as cfg
from rnnlab.training.build import build_optimizer, model_parameters, step_schedule

TASK = TensorTask(torch.rand(8, 4, 3), torch.rand(8, 2))


def shapes(model):
    return {k: v.shape for k, v in model.state_dict().items()}


def options(cell):
    """Every option a ModelConfig can set that `cell` takes, away from its default."""
    cls = CELLS[cell]
    opts = {"num_layers": 2, "bias": False, "dropout": 0.1, "bidirectional": True, "execution": "unrolled"}
    if cls.keep_gate is not None:  # chrono sets the keep gate's bias
        opts |= {"bias": True, "chrono": 20, "init": {"input": "xavier_uniform", "recurrent": "orthogonal"}}
    elif "weight_hh" in cls(1, 2).constraints():  # kept orthogonal: its spectral radius is always 1
        opts |= {"init": "normal(0.1)"}
    else:  # IndRNN's recurrent weight is a vector: no orthogonal matrix
        opts |= {"spectral_radius": 0.8, "init": "normal(0.1)"}
    takes = rnnlab.models.cell_options(cls)
    opts |= {
        k: v
        for k, v in {"nonlinearity": "relu", "recurrent_max": 3.0, "orthogonal_map": "cayley"}.items()
        if k in takes
    }
    return opts


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_models_settings_rebuild_the_same_model(cell):
    model = rnnlab.SequenceModel(3, 5, 2, cell=cell, **options(cell))
    config = cfg.from_dict({"model": {k: v for k, v in model.settings().items() if v is not None}}).model
    rebuilt = build_model(config, TASK)
    assert rebuilt.settings() == model.settings() and shapes(rebuilt) == shapes(model)
    assert rebuilt.encoder.execution == "unrolled" and rebuilt.encoder.num_layers == 2


def test_every_model_option_reaches_the_layer():
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            cell="rnn",
            hidden_size=4,
            bias=False,
            nonlinearity="relu",
            input_init="xavier_uniform",
            recurrent_init="identity",
            execution="unrolled",
        ),
        TASK,
    )
    enc = model.encoder
    assert not enc.bias and "bias_ih_l0" not in dict(enc.named_parameters())
    assert enc.cell.nonlinearity == "relu" and enc.execution == "unrolled"
    assert torch.equal(enc.weight_hh_l0, torch.eye(4))  # the recurrent initialiser on W_hh alone
    assert not torch.equal(enc.weight_ih_l0[:, :3], torch.eye(4)[:, :3])
    indrnn = build_model(ModelConfig(cell="indrnn", hidden_size=4, recurrent_max=0.5), TASK).encoder.cell
    assert indrnn.recurrent_max == 0.5 and indrnn.nonlinearity == "relu"  # none: the cell's own default


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            ModelConfig(cell="lstm", nonlinearity="relu"),
            r"model.nonlinearity: the lstm cell has no nonlinearity option \(cells with one: rnn, indrnn\)",
        ),
        (
            ModelConfig(cell="gru", recurrent_max=2.0),
            r"model.recurrent_max: the gru cell has no recurrent_max option \(cells with one: indrnn\)",
        ),
        (ModelConfig(recurrent_init="orthogonall"), r"model.recurrent_init: unknown init 'orthogonall'"),
        (ModelConfig(cell="rnn", forget_bias=1.0), r"model: forget_bias needs a gated cell"),
    ],
)
def test_an_option_the_cell_does_not_have_names_the_field_and_the_cell(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model(config, TASK)


def test_step_schedule_steps_a_lambda_schedule_and_leaves_plateau_to_the_metric():
    model = rnnlab.SequenceModel(1, 2, 1)
    optimizer = build_optimizer(model, rnnlab.OptimConfig("sgd", lr=1.0))
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    step_schedule(decay)
    assert optimizer.param_groups[0]["lr"] == 0.5
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
    step_schedule(plateau)
    assert plateau.last_epoch == 0


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_models_size_is_known_before_it_is_built(cell, bidirectional):
    config = ModelConfig(
        cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional, bias=cell != "gru"
    )
    built = build_model(config, TASK)
    assert model_parameters(config, TASK.input_size, TASK.output_size) == sum(
        p.numel() for p in built.parameters()
    )


def test_a_model_too_large_for_memory_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setattr("rnnlab.training.build.memory_bytes", lambda: 900_000)
    config = ModelConfig(cell="gru", hidden_size=200)  # 600 * (3 + 200 + 2) + 201 * 2 parameters
    with pytest.raises(
        ConfigError,
        match=r"model.hidden_size: a gru model of 1 layer\(s\) of 200 units has about "
        r"1.23e\+05 parameters, 4.94e\+05 bytes, twice that with their gradients; this machine "
        r"has 9e\+05 bytes",
    ):
        build_model(config, TASK)
    build_model(ModelConfig(cell="gru", hidden_size=100), TASK)  # a quarter of that: fits


class TokenTask(TensorTask):
    """A TensorTask that declares token inputs of 30 ids: all that build_model reads of a token task."""

    vocab_size = 30


def test_a_token_task_gets_an_embedding_and_its_settings_rebuild_it():
    task = TokenTask(torch.rand(8, 4, 3), torch.rand(8, 2))
    config = ModelConfig(
        cell="gru", hidden_size=5, embedding_dim=7, embedding_dropout=0.2, bidirectional=True
    )
    model = build_model(config, task)
    assert model.embedding.weight.shape == (30, 7) and model.encoder.input_size == 7
    assert model.embedding_dropout == 0.2 and model.vocab_size == 30
    rebuilt = build_model(cfg.from_dict({"model": model.settings()}).model, task)
    assert rebuilt.settings() == model.settings() and shapes(rebuilt) == shapes(model)
    assert model_parameters(config, task.input_size, task.output_size, task.vocab_size) == sum(
        p.numel() for p in model.parameters()
    )
    assert build_model(config, TASK).embedding is None  # features: the embedding settings are not used
