"""The run folder records what was trained: config.toml's [task] and [model] and summary.json."""

import json
import tomllib

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.cli import main
from rnnlab.tasks import SineTask, TensorTask
from rnnlab.training import TrainConfig, build_model, train
from rnnlab.training import config as cfg


def tensors(n=40, steps=5):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, steps, 2, generator=g), torch.rand(n, 1, generator=g)
    return TensorTask(x[:30], y[:30], batch_size=10, val=(x[30:], y[30:]))


def short(folder, steps=3):
    return TrainConfig(steps=steps, out=str(folder))


def test_a_model_and_task_built_in_python_are_what_config_toml_says(tmp_path):
    task = tensors()
    model = rnnlab.SequenceModel(2, 7, 1, cell="gru", num_layers=2, init="orthogonal", forget_bias=1.0)
    history = train(model, task, short(tmp_path / "run"), progress=False)
    saved = tomllib.loads((history.run_dir / "config.toml").read_text())
    assert saved["task"] == {
        "name": "tensors",
        "batch_size": 10,
        "seq_len": 5,
        "train_size": 30,
        "val_size": 10,
        "output": "last",
        "stream": False,
    }
    assert saved["model"] == {
        "cell": "gru",
        "hidden_size": 7,
        "num_layers": 2,
        "bias": True,
        "dropout": 0.0,
        "bidirectional": False,
        "init": "orthogonal",
        "forget_bias": 1.0,
        "execution": "auto",
    }
    rebuilt = build_model(cfg.load(history.run_dir / "config.toml").model, task)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert rebuilt.settings() == model.settings()
    summary = json.loads((history.run_dir / "summary.json").read_text())
    assert summary["model"] == {
        "class": "rnnlab.models.SequenceModel",
        "parameters": sum(p.numel() for p in model.parameters()),
        "settings": model.settings(),
    }
    assert summary["task"]["class"] == "rnnlab.tasks.base.TensorTask" and summary["task"]["seq_len"] == 5


def test_a_sine_task_built_in_python_is_recorded_by_its_own_settings(tmp_path):
    task = SineTask(seq_len=6, train_size=40, val_size=8, batch_size=8, seed=4)
    model = rnnlab.SequenceModel(1, 5, 1, cell="indrnn", recurrent_max=2.0)
    history = train(model, task, short(tmp_path / "run"), progress=False)
    saved = cfg.load(history.run_dir / "config.toml")
    assert (saved.task.seq_len, saved.task.train_size, saved.task.batch_size, saved.task.seed) == (
        6,
        40,
        8,
        4,
    )
    assert (saved.model.cell, saved.model.nonlinearity, saved.model.recurrent_max) == ("indrnn", "relu", 2.0)
    # the command line rebuilds exactly this run from its folder, so it can continue it
    assert main(["train", "--resume", str(history.run_dir), "--steps", "5", "--quiet"]) == 0


class Net(nn.Module):
    """A model that is not a SequenceModel: a torch GRU and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru, self.head = nn.GRU(2, 4, batch_first=True), nn.Linear(4, 1)

    def forward_with_state(self, x, state=None, lengths=None):
        out, state = self.gru(x, state)
        return self.head(out[:, -1]), state


class SineNet(Net):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 4, batch_first=True)


def test_a_model_that_is_not_a_sequence_model_gets_no_model_section(tmp_path):
    task, folder = tensors(), tmp_path / "run"
    train(Net(), task, short(folder), progress=False)
    text = (folder / "config.toml").read_text()
    assert text.startswith("# [model] is left out: the model is a test_train_record.Net, not an rnnlab.")
    assert "model" not in tomllib.loads(text)
    assert cfg.load(folder / "config.toml").task.name == "tensors"  # the loader takes the file as it is
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["model"] == {"class": "test_train_record.Net", "parameters": 101}
    # resumed in Python, as config.toml's comment and the CLI's error say
    assert train(Net(), task, TrainConfig(steps=5), resume=folder, progress=False).summary["steps"] == 5


def my_init(block):
    nn.init.orthogonal_(block)


@pytest.mark.parametrize(
    ("options", "unrecorded"),
    [
        ({"init": my_init}, "init: a Python callable (my_init)"),
        ({"init": {"input": "xavier_uniform", "recurrent": my_init}}, "recurrent_init: a Python callable"),
        ({"cell": type("MyCell", (rnnlab.GRUCell,), {})}, "cell: the Cell class"),
    ],
)
def test_settings_toml_cannot_hold_are_named_not_written(tmp_path, options, unrecorded):
    model = rnnlab.SequenceModel(2, 4, 1, **options)
    train(model, tensors(), short(tmp_path / "run"), progress=False)
    text = (tmp_path / "run" / "config.toml").read_text()
    comment = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "[model] is left out" in comment and unrecorded in comment
    assert "model" not in tomllib.loads(text)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert unrecorded.split(": ", 1)[1] in summary["model"]["unrecorded_settings"][unrecorded.split(":")[0]]


@pytest.mark.parametrize("model", ["tensors", "net"])
def test_the_cli_cannot_resume_a_run_built_in_python(tmp_path, capsys, model):
    folder = tmp_path / "run"
    if model == "tensors":
        train(rnnlab.SequenceModel(2, 4, 1), tensors(), short(folder), progress=False)
    else:
        task = SineTask(seq_len=5, train_size=20, val_size=0, batch_size=10)
        train(SineNet(), task, short(folder), progress=False)
    assert main(["train", "--resume", str(folder), "--steps", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "built in Python" in err
    assert f"rnnlab.train(model, task, resume='{folder}')" in err


def test_restore_compares_the_task_settings(tmp_path):
    folder = tmp_path / "run"
    train(rnnlab.SequenceModel(2, 4, 1), tensors(steps=5), short(folder), progress=False)
    with pytest.raises(rnnlab.ConfigError, match=r"task.seq_len: the run in .* was trained with 5, got 6"):
        train(
            rnnlab.SequenceModel(2, 4, 1),
            tensors(steps=6),
            TrainConfig(steps=5),
            resume=folder,
            progress=False,
        )
