"""The adding and copy problems: their data by construction, their baselines, endless training data."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from rnnlab.cli import main
from rnnlab.tasks import AddingTask, CopyTask
from rnnlab.tasks.long_range import EPOCH_BATCHES
from rnnlab.training import config as cfg
from rnnlab.training.config import TrainConfig


def test_adding_marks_one_value_in_each_half_and_targets_their_sum():
    task = AddingTask(length=40)
    x, y = task.sample(500, torch.Generator().manual_seed(1))
    assert x.shape == (500, 40, 2) and y.shape == (500, 1)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(markers[:, :20].sum(1), torch.ones(500))
    assert torch.equal(markers[:, 20:].sum(1), torch.ones(500))
    assert torch.allclose((values * markers).sum(1, keepdim=True), y)
    firsts = markers[:, :20].argmax(1)
    assert len(set(firsts.tolist())) == 20  # every position of the first half is used


def test_adding_golden_values_for_a_seed():
    x, y = AddingTask(length=6).sample(2, torch.Generator().manual_seed(0))
    assert x[..., 1].tolist() == GOLDEN_ADDING_MARKERS
    assert y.squeeze(1).tolist() == pytest.approx(GOLDEN_ADDING_TARGETS, abs=1e-6)


def test_adding_baseline_is_one_sixth_analytically_and_empirically():
    task = AddingTask(length=10)
    assert task.baseline() == {"loss": pytest.approx(1 / 6), "mse": pytest.approx(1 / 6)}
    _, y = task.sample(40_000, torch.Generator().manual_seed(2))
    predict_one = F.mse_loss(torch.ones_like(y), y).item()
    # the variance of (s - 1)^2 for s = u1 + u2: E[(s-1)^4] - (1/6)^2 = 1/15 - 1/36; three standard errors
    error = math.sqrt((1 / 15 - 1 / 36) / 40_000)
    assert abs(predict_one - 1 / 6) < 3 * error
    # and predicting the mean is the best a memoryless model can do: any other constant scores worse
    assert predict_one < F.mse_loss(torch.full_like(y, 1.05), y).item()
    assert predict_one < F.mse_loss(torch.full_like(y, 0.95), y).item()


def test_copy_sequences_are_symbols_blanks_a_delimiter_then_the_recall():
    task = CopyTask(delay=7, count=3, alphabet=4)
    x, y = task.sample(50, torch.Generator().manual_seed(0))
    T = 7 + 2 * 3
    assert task.length == T and x.shape == (50, T, 6) and y.shape == (50, T)
    seen = x.argmax(-1)
    assert ((seen[:, :3] >= 1) & (seen[:, :3] <= 4)).all()
    assert (seen[:, 3 : T - 4] == 0).all()  # delay - 1 blanks
    assert (seen[:, T - 4] == 5).all()  # the delimiter
    assert (seen[:, T - 3 :] == 0).all()
    assert (y[:, : T - 3] == 0).all() and torch.equal(y[:, T - 3 :], seen[:, :3])
    assert task.input_size == 6 and task.output_size == 5 and task.output == "sequence"


def test_copy_golden_values_for_a_seed():
    x, y = CopyTask(delay=3, count=2, alphabet=3).sample(1, torch.Generator().manual_seed(0))
    assert x.argmax(-1).tolist() == GOLDEN_COPY_INPUTS and y.tolist() == GOLDEN_COPY_TARGETS


def test_copy_baseline_is_the_cross_entropy_of_a_memoryless_guess():
    task = CopyTask(delay=100)
    assert task.baseline()["loss"] == pytest.approx(10 * math.log(8) / 120)  # the paper's 10 ln 8 / (T + 20)
    assert task.baseline()["accuracy"] == pytest.approx(1 / 8)
    # the memoryless model: a blank with certainty before the recall, uniform over the symbols during it
    x, y = task.sample(64, torch.Generator().manual_seed(3))
    logits = torch.full((64, task.length, 9), -1e9)
    logits[:, : task.length - 10, 0] = 0.0
    logits[:, task.length - 10 :, 1:] = 0.0
    assert task.loss(logits, y).item() == pytest.approx(task.baseline()["loss"], rel=1e-6)


def test_copy_accuracy_counts_only_the_recalled_symbols():
    task = CopyTask(delay=4, count=2, alphabet=3)
    _, y = task.sample(1, torch.Generator().manual_seed(0))
    perfect = F.one_hot(y, 4).float() * 10
    assert task.metrics(perfect, y) == {"accuracy": 1.0}
    blanks = F.one_hot(torch.zeros_like(y), 4).float()  # right on every blank, wrong on every symbol
    assert task.metrics(blanks, y) == {"accuracy": 0.0}
    half = perfect.clone()
    half[0, -1] = F.one_hot(torch.tensor(0), 4).float() * 10
    assert task.metrics(half, y) == {"accuracy": 0.5}
    # as the loop hands it over: the valid steps of a batch flattened into one sequence
    assert task.metrics(perfect.reshape(1, -1, 4), y.reshape(1, -1)) == {"accuracy": 1.0}


@pytest.mark.parametrize("task", [AddingTask(length=8, batch_size=5), CopyTask(delay=3, batch_size=5)])
def test_training_batches_are_fresh_and_follow_the_generator(task):
    epoch = list(task.train_batches(torch.Generator().manual_seed(4)))
    again = list(task.train_batches(torch.Generator().manual_seed(4)))
    other = list(task.train_batches(torch.Generator().manual_seed(5)))
    assert len(epoch) == EPOCH_BATCHES and epoch[0].inputs.shape[0] == 5
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(epoch, again, strict=True))
    assert not torch.equal(epoch[0].inputs, other[0].inputs)
    assert not torch.equal(epoch[0].inputs, epoch[1].inputs)


def test_validation_and_test_sets_are_fixed_distinct_and_sized():
    task = AddingTask(length=8, val_size=300, test_size=100, seed=1)
    val, test = list(task.val_batches()), list(task.test_batches())
    assert sum(b.inputs.shape[0] for b in val) == 300 and sum(b.inputs.shape[0] for b in test) == 100
    assert not torch.equal(val[0].inputs[:100], test[0].inputs)
    same = AddingTask(length=8, val_size=300, test_size=100, seed=1)
    assert torch.equal(next(iter(same.val_batches())).inputs, val[0].inputs)
    reseeded = AddingTask(length=8, val_size=300, test_size=100, seed=2)
    assert not torch.equal(next(iter(reseeded.val_batches())).inputs, val[0].inputs)
    assert list(AddingTask(length=8, test_size=0).test_batches()) == []


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="length must be at least 2"):
        AddingTask(length=1)
    with pytest.raises(ValueError, match="delay >= 1"):
        CopyTask(delay=0)


#: what seed 0 draws (torch's CPU generator): a change here changes every recorded result.
GOLDEN_ADDING_MARKERS = [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]]
GOLDEN_ADDING_TARGETS = [0.8036794066429138, 0.8918107151985168]
GOLDEN_COPY_INPUTS = [[3, 1, 0, 0, 4, 0, 0]]
GOLDEN_COPY_TARGETS = [[0, 0, 0, 0, 0, 3, 1]]


def test_the_adding_recipe_solves_a_short_adding_problem_in_seconds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "adding", "--task.length", "50", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["solved"] is not None and summary["solved"]["value"] < 0.01
    assert summary["test"]["mse"] < summary["baseline"]["mse"] / 10
    config = (out / "config.toml").read_text()
    assert 'cell = "lstm"' in config and "chrono = 50.0" in config and "target = 0.01" in config


def test_the_adding_recipe_follows_the_length_and_yields_to_flags():
    config, used = cfg.compose({"task.name": "adding", "task.length": "300", "optim.lr": "0.001"})
    assert config.model.chrono == 300.0 and config.optim.lr == 0.001 and "optim.lr" not in used
    gru, _ = cfg.compose({"task.name": "adding", "model.cell": "gru"})
    assert gru.model.chrono is None and gru.model.hidden_size == TrainConfig().model.hidden_size
    assert gru.eval.target == 0.01  # the recipe's training settings stay
