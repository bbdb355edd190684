"""The run folder: a new run claims and locks its folder, rewrites are atomic, a resume moves redone rows
aside, and what a run cut off at any instant left is tidied or taken over."""

import json
import os
import subprocess
import sys
import time

import pytest

from rnnlab.training import RunDir, RunFolderError, TrainConfig
from rnnlab.training import run as run_module
from rnnlab.training.run import default_folder, resume_folder


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda _: "20250101-120000")
    first, second = default_folder("sine"), default_folder("sine")
    assert first.name == "sine-20250101-120000" and second.name == "sine-20250101-120000-2"
    assert first.is_dir() and second.is_dir()
    RunDir(first)  # claimed but empty: the run may use it


def test_a_file_or_a_used_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match=r"run folder .*file is a file, not a folder"):
        RunDir(tmp_path / "file")
    run = RunDir(tmp_path / "run")
    run.append("metrics.jsonl", {"step": 1})
    run.close()
    with pytest.raises(RunFolderError, match="already exists"):
        RunDir(tmp_path / "run")
    mine = tmp_path / "mine"  # not a run's folder: refused without a lock file left in it
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        RunDir(mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_one_writer_at_a_time_and_the_lock_goes_with_the_writer(tmp_path):
    first = RunDir(tmp_path / "run")
    first.write_text("config.toml", "steps = 5\n")
    pid = os.getpid()
    for resume in (False, True):
        with pytest.raises(RunFolderError, match=rf"run folder .*run is in use by another run \(PID {pid}\)"):
            RunDir(tmp_path / "run", resume=resume)
    first.close()
    RunDir(tmp_path / "run", resume=True).close()  # free again


HOLDER = """
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], ".lock"), "a+")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as a run holds it: an flock on .lock, its PID inside
f.write(str(os.getpid())); f.flush()
open(sys.argv[2], "w").close()
time.sleep(60)
"""


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    folder, ready = tmp_path / "run", tmp_path / "ready"
    folder.mkdir()
    (folder / "config.toml").write_text("steps = 5\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(RunFolderError, match=rf"in use by another run \(PID {holder.pid}\)"):
            RunDir(folder, resume=True)
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own; the kernel drops the lock
        holder.wait()
    RunDir(folder, resume=True).close()


def test_a_folder_whose_run_completed_no_step_is_started_again_in_place(tmp_path):
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / ".lock").write_text("123\n")
    (folder / "config.toml").write_text("steps = 5\n")
    (folder / "checkpoints" / "step-000000.pt").write_bytes(b"0")
    (folder / "checkpoints" / ".step-000000.pt.tmp-99").write_bytes(b"half")
    run = RunDir(folder)
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]
    assert any("completed no step: it is started again in place" in note for note in run.notes)
    run.close()
    (folder / "config.toml").write_text("steps = 5\n")
    (folder / "events.jsonl").write_text('{"event": "nonfinite", "step": 3}\n')  # a step was done
    with pytest.raises(RunFolderError, match="already exists"):
        RunDir(folder)
    (folder / "config.toml").unlink()  # killed before its config: --resume has no run, a start works
    (folder / "events.jsonl").unlink()
    with pytest.raises(
        RunFolderError, match=r"no run in .*config.toml is missing.*start it again with --out"
    ):
        resume_folder(folder)
    RunDir(folder).close()


def test_opening_removes_temporary_files_and_drops_a_torn_last_line(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_text("config.toml", "steps = 5\n")
    for step in (1, 2):
        run.append("metrics.jsonl", {"step": step})
    run.close()
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # cut off by a power loss
    (tmp_path / "run" / "events.jsonl").write_text('{"event": "rollback", "step": 2}')  # whole, no newline
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / ".step-000004.pt.tmp-4242").write_bytes(b"half")
    (tmp_path / "run" / ".summary.json.tmp-4242").write_text("{")
    run = RunDir(tmp_path / "run", resume=True)
    assert run.read("metrics.jsonl") == [{"step": 1}, {"step": 2}]
    assert [note for note in run.notes if "metrics.jsonl: dropped its torn last line" in note]
    run.event("early_stop", 3)
    assert [e["event"] for e in run.read("events.jsonl")] == ["rollback", "early_stop"]
    assert not list((tmp_path / "run" / "checkpoints").iterdir())
    assert not (tmp_path / "run" / ".summary.json.tmp-4242").exists()
    run.close()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics.jsonl, line 2: not a JSON object"):
        RunDir(tmp_path / "run", resume=True).read("metrics.jsonl")


def test_truncate_moves_the_rows_after_a_step_aside(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (1, 2, 3, 4):
        run.append("metrics.jsonl", {"step": step})
    assert run.truncate("metrics.jsonl", 2) == [{"step": 1}, {"step": 2}]
    assert run.read("metrics.jsonl") == [{"step": 1}, {"step": 2}]
    assert run.read("metrics.superseded.jsonl") == [{"step": 3}, {"step": 4}]
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == [".lock"]  # no temporary file


def test_a_changed_config_keeps_the_old_one_beside_it(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(TrainConfig(steps=5))
    run.write_config(TrainConfig(steps=9), step=5)
    assert "steps = 9" in (run.path / "config.toml").read_text()
    assert "steps = 5" in (run.path / "config.step-000005.toml").read_text()


def test_rows_wait_in_memory_until_a_flush_and_reads_see_them(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.log({"step": 1, "split": "train", "loss": 0.5})
    run.event("nonfinite", 1, loss=float("nan"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # not yet in the file
    assert run.read("metrics.jsonl") == [{"step": 1, "split": "train", "loss": 0.5}]  # a read flushes
    assert run.read("events.jsonl") == [{"event": "nonfinite", "step": 1, "loss": None}]
    run.log({"step": 2, "split": "train", "loss": 0.25})
    run.close()  # and so does closing
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_rows_reach_the_file_at_most_flush_s_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "FLUSH_S", 0.0)
    run = RunDir(tmp_path / "run")
    run.log({"step": 1, "split": "train", "loss": 0.5})
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text()) == {
        "step": 1,
        "split": "train",
        "loss": 0.5,
    }
    run.close()


def test_a_row_changed_after_it_was_logged_is_written_as_it_was(tmp_path):
    run = RunDir(tmp_path / "run")
    row = {"step": 1, "split": "train", "loss": 0.5}
    run.log(row)
    row["loss"] = 9.0
    assert run.read("metrics.jsonl")[0]["loss"] == 0.5
    run.close()
