"""Ctrl-C and SIGTERM: the run ends its step, saves and says how to go on; a second signal stops it at once
but never inside a checkpoint write; two processes never write one run folder."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from rnnlab import SequenceModel
from rnnlab.cli import main
from rnnlab.errors import Interrupted
from rnnlab.tasks import SineTask
from rnnlab.training import train
from rnnlab.training.checkpoint import load
from rnnlab.training.config import TrainConfig, override

TINY = ["--quiet", "--model.hidden_size=8", "--task.train_size=64", "--task.val_size=16"]


def run(folder, steps, resume=False, signal_at=None, signum=signal.SIGINT):
    """A tiny run that receives `signum` during the backward pass of step `signal_at`."""
    task = SineTask(seq_len=8, train_size=48, val_size=16, batch_size=8)
    torch.manual_seed(0)
    model = SequenceModel(1, 8, 1, dropout=0.3, num_layers=2)
    calls = [0]

    def send(grad):
        calls[0] += 1
        if calls[0] == signal_at:
            signal.raise_signal(signum)  # a real signal, to this process: as Ctrl-C or `kill` would
        return grad

    model.encoder.weight_hh_l0.register_hook(send)
    config = override(
        TrainConfig(), {"steps": steps, "out": str(folder), "eval.every": 4, "checkpoint.every": 4}
    )
    return model, train(model, task, config, resume=folder if resume else None, progress=False)


@pytest.fixture(autouse=True)
def python_signal_handlers():
    """Python's own handlers, whatever this test process inherited (a background job ignores SIGINT)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_an_ignored_signal_stays_ignored():
    from rnnlab.training.signals import Interrupts

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts = Interrupts().install()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # handled
    interrupts.restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_ends_the_step_saves_and_the_run_resumes_exactly(tmp_path):
    straight, _ = run(tmp_path / "straight", 9)
    with pytest.raises(Interrupted) as e:
        run(tmp_path / "run", 9, signal_at=3)
    assert isinstance(e.value, KeyboardInterrupt) and e.value.status == 130 and e.value.step == 3
    assert str(e.value) == f"interrupted at step 3; resume with: rnnlab train --resume {tmp_path / 'run'}"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
    assert load(tmp_path / "run" / "checkpoints" / "step-000003.pt")["step"] == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["stopped"] == "interrupted"
    event = json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[-1])
    assert (event["event"], event["step"], event["signal"]) == ("interrupted", 3, "SIGINT")
    resumed, history = run(tmp_path / "run", 9, resume=True)
    assert [r["step"] for r in history.train] == list(range(1, 10))
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters(), strict=True))


def test_sigterm_through_the_command_line_exits_143_with_the_resume_command(tmp_path, capsys, monkeypatch):
    from rnnlab.training import loop

    steps, schedule = [0], loop.step_schedule

    def step_then_term(scheduler):  # SIGTERM arrives at step 2
        schedule(scheduler)
        steps[0] += 1
        if steps[0] == 2:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(loop, "step_schedule", step_then_term)
    out = tmp_path / "run"
    assert main(["train", "--steps", "50", "--out", str(out), *TINY]) == 143
    assert capsys.readouterr().err == f"interrupted at step 2; resume with: rnnlab train --resume {out}\n"
    assert json.loads((out / "summary.json").read_text())["stopped"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# The command line, with a checkpoint write that waits, inside fsync, for the test to say go once a file
# `armed` exists: so that the second signal is sure to arrive in the middle of the write.
CLI = """
import os, sys, time
from pathlib import Path
from rnnlab.cli import main

folder, real_fsync, held = Path(sys.argv[1]), os.fsync, []

def fsync(fd):
    if (folder / "armed").exists() and not held:
        held.append(fd)
        (folder / "writing").touch()
        while not (folder / "go").exists():
            time.sleep(0.01)
    real_fsync(fd)

os.fsync = fsync
sys.exit(main(sys.argv[2:]))
"""


def wait_for(predicate, proc, what, limit=120):
    deadline = time.monotonic() + limit
    while not predicate():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {what} after {limit} s"
        time.sleep(0.02)


def test_two_processes_one_folder_and_two_signals_from_outside(tmp_path, capsys):
    sync, out = tmp_path / "sync", tmp_path / "run"
    sync.mkdir()
    args = [
        "train",
        "--steps",
        "100000",
        "--out",
        str(out),
        *TINY,
        "--eval.every=0",
        "--checkpoint.every=100000",
    ]
    command = [sys.executable, "-c", CLI, str(sync), *args]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path) as proc:
        try:
            metrics = out / "metrics.jsonl"
            wait_for(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, proc, "a first step")
            # a second writer, fresh or resuming, is refused in one line naming the holder
            for second in (args, ["train", "--resume", str(out), "--quiet"]):
                assert main(second) == 1
                err = capsys.readouterr().err
                assert err == (
                    f"rnnlab train: error: run folder {out} is in use by another run (PID {proc.pid}); "
                    "one run writes a folder at a time: wait for it to end, or stop it\n"
                )
            (sync / "armed").touch()
            proc.send_signal(signal.SIGTERM)  # the first: finish the step, write a checkpoint ...
            wait_for((sync / "writing").exists, proc, "the checkpoint write")
            proc.send_signal(signal.SIGINT)  # ... the second arrives in the middle of that write: it waits
            time.sleep(0.2)  # for it to be delivered (to the run's handler, which only notes it)
            (sync / "go").touch()
            _, err = proc.communicate(timeout=120)
        except BaseException:  # never leave it running
            proc.kill()
            raise
    assert proc.returncode == 130, err
    step = max(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("step-*.pt"))
    assert err.splitlines() == [
        f"stopped at once by a second SIGINT after step {step}; resume from its last checkpoint with: "
        f"rnnlab train --resume {out}"
    ]
    assert step >= 1 and load(out / "checkpoints" / f"step-{step:06d}.pt")["step"] == step  # written whole
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name] and not (out / "summary.json").exists()
    # the ending was not written: a resume to the same step writes it
    assert main(["train", "--resume", str(out), "--steps", str(step), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == step and (out / "loss.png").is_file()
