"""The run folder: a new run claims its folder, rewrites are atomic, a resume moves redone rows aside."""

import pytest

from rnnlab.training import RunDir, RunFolderError, TrainConfig
from rnnlab.training.run import default_folder


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda _: "20250101-120000")
    first, second = default_folder("sine"), default_folder("sine")
    assert first.name == "sine-20250101-120000" and second.name == "sine-20250101-120000-2"
    assert first.is_dir() and second.is_dir()
    RunDir(first)  # claimed but empty: the run may use it


def test_a_file_or_a_used_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="already exists"):
        RunDir(tmp_path / "file")
    RunDir(tmp_path / "run").append("metrics.jsonl", {"step": 1})
    with pytest.raises(RunFolderError, match="already exists"):
        RunDir(tmp_path / "run")


def test_truncate_moves_the_rows_after_a_step_aside(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (1, 2, 3, 4):
        run.append("metrics.jsonl", {"step": step})
    assert run.truncate("metrics.jsonl", 2) == [{"step": 1}, {"step": 2}]
    assert run.read("metrics.jsonl") == [{"step": 1}, {"step": 2}]
    assert run.read("metrics.superseded.jsonl") == [{"step": 3}, {"step": 4}]
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_changed_config_keeps_the_old_one_beside_it(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(TrainConfig(steps=5))
    run.write_config(TrainConfig(steps=9), step=5)
    assert "steps = 9" in (run.path / "config.toml").read_text()
    assert "steps = 5" in (run.path / "config.step-000005.toml").read_text()
