"""Tasks own their settings and recipes; baselines, the test split and eval.target in a run."""

import json

import pytest

from rnnlab.cli import main
from rnnlab.errors import ConfigError
from rnnlab.tasks import AddingTask, task_settings
from rnnlab.training import config as cfg
from rnnlab.training.config import TrainConfig

FAST = ["--quiet", "--model.hidden_size=8", "--eval.every=5", "--task.val_size=20", "--task.test_size=10"]


def test_a_task_setting_is_a_flag_of_its_task():
    config = cfg.override(TrainConfig(), {"task.name": "adding", "task.length": "1000"})
    assert isinstance(config.task, AddingTask.Settings) and config.task.length == 1000
    assert config.task.batch_size == 50  # the adding task's default, not the sine task's


def test_a_setting_the_task_does_not_have_names_the_task_and_its_settings():
    with pytest.raises(
        ConfigError, match=r"unknown setting 'task.length'; the sine task has the settings: seq_"
    ):
        cfg.override(TrainConfig(), {"task.length": "5"})
    with pytest.raises(ConfigError, match=r"'task.lenght'; did you mean 'task.length'"):
        cfg.override(TrainConfig(), {"task.name": "adding", "task.lenght": "5"})
    with pytest.raises(ConfigError, match=r"task.length: expected an integer >= 2, got 1"):
        cfg.override(TrainConfig(), {"task.name": "adding", "task.length": "1"})


def test_naming_another_task_starts_from_its_defaults():
    sine = cfg.override(TrainConfig(), {"task.seq_len": "20"})
    adding = cfg.override(sine, {"task.name": "adding"})
    assert adding.task == AddingTask.Settings()


def test_a_toml_file_holds_the_tasks_settings_and_round_trips(tmp_path):
    path = tmp_path / "c.toml"
    config = cfg.override(TrainConfig(), {"task.name": "copy", "task.delay": "200"})
    path.write_text(cfg.dumps(config))
    assert cfg.load(path) == config
    path.write_text('[task]\nname = "copy"\ndelay = "200"\n')
    with pytest.raises(ConfigError, match=r"task.delay: expected an integer >= 1, got '200' \(text"):
        cfg.load(path)


def test_settings_of_a_task_built_in_python_are_kept_as_recorded(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[task]\nname = "mine"\nbatch_size = 7\nwindow = "long"\nfeatures = ["a", "b"]\n')
    config = cfg.load(path)
    assert (config.task.name, config.task.batch_size, config.task.window) == ("mine", 7, "long")
    assert cfg.to_dict(config)["task"] == {
        "name": "mine",
        "batch_size": 7,
        "window": "long",
        "features": ["a", "b"],
    }


def test_validate_turns_a_bare_task_config_into_the_named_tasks_defaults():
    config = TrainConfig()
    config.task = cfg.TaskConfig(name="adding")
    assert cfg.validate(config).task == AddingTask.Settings()
    config.task = task_settings("sine")
    config.task.name = "adding"
    with pytest.raises(ConfigError, match=r"not the settings of the adding task"):
        cfg.validate(config)


RECIPE = {
    "model.cell": "lstm",
    "model.chrono": 100.0,
    "model.hidden_size": 64,
    "optim.lr": 0.01,
    "steps": 500,
}


def test_the_recipe_fills_what_is_not_given_and_yields_to_another_cell():
    assert cfg.with_recipe(RECIPE, {"optim.lr": "0.1"}) == {
        k: v for k, v in RECIPE.items() if k != "optim.lr"
    }
    assert cfg.with_recipe(RECIPE, {"model.cell": "lstm"}) == {
        k: v for k, v in RECIPE.items() if k != "model.cell"
    }
    # another cell: the recipe's model settings were measured with its own cell, so none of them is kept
    assert cfg.with_recipe(RECIPE, {"model.cell": "gru"}) == {"optim.lr": 0.01, "steps": 500}


def test_compose_applies_the_named_tasks_recipe(monkeypatch):
    monkeypatch.setattr(AddingTask, "recipe_for", classmethod(lambda cls, settings: dict(RECIPE)))
    config, used = cfg.compose({"task.name": "adding", "steps": "7"})
    assert used == {k: v for k, v in RECIPE.items() if k != "steps"}
    assert (config.steps, config.model.chrono, config.optim.lr, config.model.hidden_size) == (
        7,
        100.0,
        0.01,
        64,
    )
    plain, none = cfg.compose({"steps": "7"})  # the sine task has no recipe
    assert none == {} and plain.optim.lr == TrainConfig().optim.lr


def test_the_help_of_a_task_lists_its_settings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "copy", "--help"])
    out = capsys.readouterr().out
    assert "of the copy task" in out and "--task.delay" in out and "--task.seq_len" not in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--task.seq_len" in capsys.readouterr().out  # the default task's


def test_a_run_records_the_baseline_the_test_split_and_stops_at_its_target(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "adding", "--task.length=6", "--steps=400", "--out", str(out), *FAST]
    # adding at T = 6 with a target that any learning reaches: the run stops early, solved
    args += ["--model.cell=gru", "--optim.lr=0.01", "--eval.metric=mse", "--eval.target=0.12"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == {"loss": pytest.approx(1 / 6), "mse": pytest.approx(1 / 6)}
    solved = summary["solved"]
    assert summary["stopped"] == "target" and summary["steps"] == solved["step"] < 400
    assert solved["value"] <= 0.12 and solved["target"] == 0.12 and solved["step"] % 5 == 0
    assert set(summary["test"]) == {"loss", "mse"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert all(r["baseline_mse"] == pytest.approx(1 / 6) for r in val)
    assert val[-1]["mse"] <= 0.12 and all(r["mse"] > 0.12 for r in val[:-1])
    assert [r["split"] for r in rows].count("test") == 1
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "solved"] == [solved["step"]]
    assert f"solved at step {solved['step']}" in printed and "(baseline 0.1667)" in printed
    assert 'name = "adding"' in (out / "config.toml").read_text()
