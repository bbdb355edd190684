"""Checkpoints: exact resume, atomic writes, weights-only loading, clear errors, the last K and the best."""

import json
import os
import pickle

import pytest
import torch
from killing import kill_when

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import train
from rnnlab.training.checkpoint import CheckpointError, Checkpoints, load, save
from rnnlab.training.config import ConfigError, TrainConfig, override


def run(tmp_path, steps, resume=False, **overrides):
    """Train the same tiny model for `steps`, fresh or resumed from the run folder."""
    task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8, output="sequence")
    torch.manual_seed(0)
    model = SequenceModel(1, 8, 1, output="sequence", num_layers=2, dropout=0.3)  # dropout uses the RNG
    settings = {
        **{
            "steps": steps,
            "out": str(tmp_path),
            "optim.name": "adam",
            "optim.lr": 0.01,
            "clip.mode": "adaptive",
        },
        **{"schedule.name": "step", "schedule.step_size": 7, "schedule.gamma": 0.5},
        **{"eval.every": 5, "checkpoint.every": 5},
        **overrides,
    }
    config = override(TrainConfig(), settings)
    history = train(model, task, config, resume=tmp_path if resume else None, progress=False)
    return model, history


@pytest.mark.parametrize(
    "bptt",
    [
        {},
        {"bptt.mode": "truncated", "bptt.k1": 4, "bptt.k2": 6},  # resumes in the middle of a batch
    ],
)
def test_n_steps_then_resume_then_n_steps_is_bit_identical_to_2n_steps(tmp_path, bptt):
    straight, _ = run(tmp_path / "straight", 14, **bptt)
    run(tmp_path / "resumed", 7, **bptt)
    resumed, history = run(tmp_path / "resumed", 14, resume=True, **bptt)
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert [r["step"] for r in history.train] == list(range(1, 15))  # metrics continue, not duplicated


def test_stateful_stream_resume_is_bit_identical(tmp_path):
    def stream_run(folder, steps, resume=False):
        task = SineTask(seq_len=6, train_size=24, val_size=8, batch_size=4, stream=True)
        torch.manual_seed(0)
        model = SequenceModel(1, 8, 1, output="sequence")
        bptt = {"bptt.mode": "truncated", "bptt.k1": 4, "bptt.k2": 5, "bptt.stateful": True}
        config = override(TrainConfig(), {"steps": steps, "out": str(folder), **bptt})
        train(model, task, config, resume=folder if resume else None, progress=False)
        return model

    straight = stream_run(tmp_path / "a", 11)
    stream_run(tmp_path / "b", 5)
    resumed = stream_run(tmp_path / "b", 11, resume=True)  # the carried state comes from the checkpoint
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters(), strict=True))


def test_resume_needs_more_steps_and_an_existing_run(tmp_path):
    run(tmp_path / "r", 5)
    with pytest.raises(ValueError, match="at step 5 already"):
        run(tmp_path / "r", 5, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        run(tmp_path / "nothing", 5, resume=True)


def test_resuming_with_another_model_or_optimiser_fails_before_touching_the_run(tmp_path):
    run(tmp_path, 5)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"optim.name: .*step-000005.pt holds the state of 'adam', got"):
        run(tmp_path, 10, resume=True, **{"optim.name": "sgd"})
    task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8, output="sequence")
    wider = SequenceModel(1, 16, 1, output="sequence", num_layers=2, dropout=0.3)
    config = override(TrainConfig(), {"steps": 10, "out": str(tmp_path), "optim.lr": 0.01})
    with pytest.raises(ConfigError, match=r"model.hidden_size: the run in .* was trained with 8, got 16"):
        train(wider, task, config, resume=tmp_path, progress=False)
    for kept in ({"seed": 1}, {"bptt.mode": "truncated", "bptt.k1": 5}):
        with pytest.raises(ConfigError, match=rf"{next(iter(kept))}: the run in .* was trained with"):
            run(tmp_path, 10, resume=True, **kept)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_the_last_k_and_the_best_are_kept(tmp_path):
    run(tmp_path, 20, **{"checkpoint.keep": 2})
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.pt", "step-000015.pt", "step-000020.pt"]
    best = load(tmp_path / "checkpoints" / "best.pt")
    assert best["step"] in (5, 10, 15, 20) and best["best"]["step"] == best["step"]


def test_checkpoint_holds_plain_data_and_loads_weights_only(tmp_path):
    run(tmp_path, 5)
    payload = torch.load(tmp_path / "checkpoints" / "step-000005.pt", weights_only=True)
    assert set(payload) >= {"model", "optimizer", "scheduler", "rng", "step", "config", "position", "carry"}
    assert payload["step"] == 5 and payload["config"]["optim"]["lr"] == 0.01
    assert isinstance(payload["rng"]["torch"], torch.Tensor)


class Unsafe:
    pass


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_only_loading_refuses_pickled_code_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "extra": Unsafe()}, path)
    with pytest.raises(
        CheckpointError,
        match=r"refusing to load .*evil\.pt: it holds pickled code \(test_train_checkpoint.Unsafe\)",
    ):
        load(path)
    torch.save({"format": 1, "extra": Evil()}, path)  # a module torch blocks outright
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt: it holds pickled code \(posix"):
        load(path)
    with open(path, "wb") as f:  # a plain pickle, not torch's zip archive
        pickle.dump({"format": 1, "extra": Evil()}, f)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt: it holds pickled code") as e:
        load(path)
    assert "weights_only=False" not in str(e.value) and "weights_only` set" not in str(e.value)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"evil\.pt: truncated or corrupt") as e:
        load(path)
    assert "weights_only=False" not in str(e.value) and "weights_only` set" not in str(e.value)


def test_truncated_or_corrupt_checkpoints_name_the_file_and_older_ones_stay_usable(tmp_path):
    ckpts = Checkpoints(tmp_path, keep=5)
    ckpts.save(1, {"model": {"w": torch.ones(3)}, "step": 1})
    second = ckpts.save(2, {"model": {"w": torch.full((1000,), 2.0)}, "step": 2})
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*step-000002\.pt: truncated or corr"):
        load(second)
    second.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"step-000002\.pt"):
        load(second)
    assert torch.equal(load(tmp_path / "step-000001.pt")["model"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load(tmp_path / "step-000009.pt")


def test_resuming_from_a_corrupt_latest_checkpoint_names_it_and_the_ones_that_load(tmp_path):
    run(tmp_path, 10)
    latest = tmp_path / "checkpoints" / "step-000010.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    older = tmp_path / "checkpoints" / "step-000005.pt"
    with pytest.raises(CheckpointError, match=r"step-000010\.pt: truncated or corrupt") as e:
        run(tmp_path, 12, resume=True)
    said = "these checkpoints load: step-000005.pt, step-000000.pt, so resume from the newest with --resume"
    assert f"{said} {older}" in str(e.value)
    _, history = run(older, 12, resume=True)  # as it says: from step 5, the rows after it redone
    assert [r["step"] for r in history.train] == list(range(1, 13))


WRITER = """
import os, sys, time, torch
from rnnlab.training import checkpoint

os.fsync = lambda fd: (open(sys.argv[2], "w").close(), time.sleep(60))  # hang mid-save, data written
checkpoint.save(sys.argv[1], {"model": {"w": torch.zeros(1_000_000)}, "step": 2})
"""


def test_a_writer_killed_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path, flag = tmp_path / "ckpt.pt", tmp_path / "writing"
    save(path, {"model": {"w": torch.ones(4)}, "step": 1})
    kill_when(WRITER, [str(path), str(flag)], flag, "fsync")  # inside save(), its temporary file written
    assert any(p.name.startswith(".ckpt.pt.tmp") for p in tmp_path.iterdir())  # the half-done file
    payload = load(path)
    assert payload["step"] == 1 and torch.equal(payload["model"]["w"], torch.ones(4))


def test_every_row_up_to_a_checkpoint_is_in_its_file_when_the_checkpoint_is_written(tmp_path, monkeypatch):
    """Rows wait in memory (run.py's `append`): a run killed just after a checkpoint must still have them
    all, or its resume would leave a gap in metrics.jsonl."""
    from rnnlab.training import checkpoint

    seen = {}
    write = checkpoint.save

    def save_and_look(path, payload, really=True):
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines() if payload["step"] else []
        rows = [json.loads(line) for line in lines]
        seen[payload["step"]] = sorted({row["step"] for row in rows if row["split"] == "train"})
        return write(path, payload, really)

    monkeypatch.setattr(checkpoint, "save", save_and_look)
    run(tmp_path, 10)
    assert seen[5] == [1, 2, 3, 4, 5] and seen[10] == list(range(1, 11))
