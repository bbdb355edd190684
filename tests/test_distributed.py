"""Distributed training on the CPU (gloo, two processes started by torchrun): the same update as one process
on the whole batch, stateful truncated BPTT and resume exact, a failing rank stops the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rnnlab.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

ADDING = ["--task", "adding", "--task.length", "10", "--model.cell", "lstm", "--model.hidden_size", "8"]
ADDING += ["--eval.every", "10", "--checkpoint.every", "10", "--quiet"]


def torchrun(*args, nproc=2, timeout=180, env=None):
    """`torchrun --standalone --nproc_per_node=N ARGS` (args after the launcher's: `-m rnnlab train ...` or
    a script); the finished process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=environment
    )


def weights(run, step):
    return torch.load(run / "checkpoints" / f"step-{step:06d}.pt", weights_only=True)


def assert_same_weights(a, b, atol=1e-5):
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], atol=atol, rtol=0, msg=name)


def test_two_processes_make_the_update_one_process_makes_on_the_whole_batch(tmp_path, capsys):
    done = torchrun("-m", "rnnlab", "train", *ADDING, "--steps", "20", "--out", tmp_path / "two")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("step 20:") == 1  # rank 0 alone reports
    assert main(["train", *ADDING, "--steps", "20", "--out", str(tmp_path / "one")]) == 0
    assert_same_weights(weights(tmp_path / "two", 20), weights(tmp_path / "one", 20))
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    rows = [line for line in lines if '"train"' in line]
    assert len(rows) == 20  # one process wrote the folder: one row a step, not two


def write_text_file(path):
    words = "the quick brown fox jumps over the lazy dog while seven wizards box a jolly quaking sphinx "
    path.write_text((words * 60 + "\n") * 4)
    return path


def charlm(text, out, steps):
    """`rnnlab train` of a small stateful character model (the charlm recipe: stateful truncated BPTT)."""
    flags = ["--task", "charlm", "--task.path", text, "--task.seq_len", "16", "--task.batch_size", "4"]
    flags += ["--model.hidden_size", "16", "--steps", steps, "--eval.every", "4", "--checkpoint.every", "4"]
    flags += ["--schedule.total_steps", "12"]  # the same cosine whether the run stops at 8 or 12
    return ["train", *map(str, flags), "--out", str(out), "--quiet"]


def test_stateful_truncated_bptt_and_its_resume_are_exact_over_two_processes(tmp_path):
    text = write_text_file(tmp_path / "text.txt")
    straight = torchrun("-m", "rnnlab", *charlm(text, tmp_path / "straight", 12))
    assert straight.returncode == 0, straight.stderr
    assert main(charlm(text, tmp_path / "single", 12)) == 0  # the same flags, one process
    assert_same_weights(weights(tmp_path / "straight", 12), weights(tmp_path / "single", 12))
    # the checkpoint holds the whole batch's carried state, every rank's rows in order: one process's
    carried, alone = weights(tmp_path / "straight", 12)["carry"], weights(tmp_path / "single", 12)["carry"]
    for a, b in zip(carried["state"], alone["state"], strict=True):
        assert a.shape[1] == 4
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    first = torchrun("-m", "rnnlab", *charlm(text, tmp_path / "resumed", 8))
    assert first.returncode == 0, first.stderr
    again = torchrun("-m", "rnnlab", "train", "--resume", tmp_path / "resumed", "--steps", "12", "--quiet")
    assert again.returncode == 0, again.stderr
    assert_same_weights(weights(tmp_path / "resumed", 12), weights(tmp_path / "straight", 12), atol=1e-6)


FAILING = textwrap.dedent(
    """
    import os, torch, rnnlab
    from rnnlab.tasks import TensorTask

    class Failing(TensorTask):
        def train_batches(self, generator):
            for i, batch in enumerate(super().train_batches(generator)):
                if i == 3 and os.environ["RANK"] == "1":
                    raise RuntimeError("rank 1 fails on purpose")
                yield batch

    x = torch.rand(64, 10, 1)
    task = Failing(x, x.mean(dim=1), loss="mse", batch_size=8)
    model = rnnlab.SequenceModel(1, 8, 1)
    config = rnnlab.TrainConfig(steps=200, out=os.environ["OUT"])
    config.distributed.timeout_s = 60
    rnnlab.train(model, task, config, progress=False)
    """
)


def test_a_rank_that_fails_stops_every_rank_with_a_clear_error(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    t0 = time.perf_counter()
    done = torchrun(script, env={"OUT": str(tmp_path / "run")}, timeout=120)
    assert done.returncode != 0
    assert time.perf_counter() - t0 < 100  # never a hang: well within the 60 s collective timeout and more
    assert "rank 1 fails on purpose" in done.stderr
    assert "rank 0 of 2: another process of this run stopped while" in done.stderr  # rank 0 says why


def test_a_batch_that_does_not_divide_among_the_processes_is_refused_in_one_line_each(tmp_path):
    command = [sys.executable, "-m", "rnnlab", "train", *ADDING, "--task.batch_size", "7", "--nproc", "2"]
    command += ["--out", str(tmp_path / "r")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2  # a usage error on the ranks, passed on by the launcher
    lines = done.stderr.strip().splitlines()
    said = "rnnlab train: error: task.batch_size: the global batch of 7 rows does not divide among 2"
    assert [line.startswith(said) for line in lines] == [True, False]  # rank 0's (all ranks'), the launcher
    assert lines[-1].startswith("rnnlab train: 2 of 2 processes failed") and "Traceback" not in done.stderr


def test_nproc_starts_torchrun_itself(tmp_path, capfd):
    status = main(["train", *ADDING, "--steps", "10", "--nproc", "2", "--out", str(tmp_path / "r")])
    assert status == 0
    assert capfd.readouterr().out.count("step 10:") == 1
    assert weights(tmp_path / "r", 10)["step"] == 10
    assert "nproc =" not in (tmp_path / "r" / "config.toml").read_text()  # the launcher's flag, not the run's
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 10
