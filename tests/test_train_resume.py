"""A resume applies the settings it changes on top of the restored state, records them, and finishes a run
whose ending was never written."""

import json

import pytest
import torch
from killing import kill_when

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import train
from rnnlab.training.checkpoint import load
from rnnlab.training.config import ConfigError, TrainConfig, override
from rnnlab.training.config import load as load_config


def run(folder, steps, resume=None, hook=None, **overrides):
    """The same tiny model and task for `steps`, fresh or resumed (from the folder, or a checkpoint)."""
    task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8, output="sequence")
    torch.manual_seed(0)
    model = SequenceModel(1, 8, 1, output="sequence", num_layers=2, dropout=0.3)  # dropout draws numbers
    if hook:
        model.encoder.weight_hh_l0.register_hook(hook)
    settings = {"steps": steps, "out": str(folder), "optim.lr": 0.01, "clip.mode": "adaptive"}
    config = override(TrainConfig(), {**settings, "eval.every": 5, "checkpoint.every": 5, **overrides})
    return model, train(model, task, config, resume=resume, progress=False)


def events(folder, name="events.jsonl"):
    path = folder / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_resume_with_a_new_lr_equals_a_run_that_changed_it_at_that_step(tmp_path):
    # the reference: one run whose step schedule halves the lr after step 7
    straight, _ = run(
        tmp_path / "a", 14, **{"schedule.name": "step", "schedule.step_size": 7, "schedule.gamma": 0.5}
    )
    run(tmp_path / "b", 7)
    resumed, history = run(tmp_path / "b", 14, resume=tmp_path / "b", **{"optim.lr": 0.005})
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name
    lrs = {r["step"]: r["lr"] for r in history.train}
    assert lrs[7] == 0.01 and all(lrs[step] == 0.005 for step in range(8, 15))
    change = [e for e in events(tmp_path / "b") if e["event"] == "resume_changes"]
    assert change == [
        {
            "event": "resume_changes",
            "step": 7,
            "changes": {"steps": {"from": 7, "to": 14}, "optim.lr": {"from": 0.01, "to": 0.005}},
        }
    ]
    assert load_config(tmp_path / "b" / "config.toml").optim.lr == 0.005  # what it records is what it did
    assert load_config(tmp_path / "b" / "config.step-000007.toml").optim.lr == 0.01


def test_a_resume_applies_every_changeable_setting(tmp_path):
    run(tmp_path, 5, **{"eval.metric": "loss"})
    changes = {
        "optim.weight_decay": 0.1,
        "optim.betas": [0.8, 0.9],
        "clip.mode": "norm",
        "clip.max_norm": 1e-3,
        "schedule.name": "cosine",
        "checkpoint.every": 1,
        "checkpoint.keep": 2,
        "eval.metric": "mae",
        "guard.max_consecutive": 7,
    }
    _, history = run(tmp_path, 8, resume=tmp_path, **changes)
    group = load(tmp_path / "checkpoints" / "step-000008.pt")["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.1 and tuple(group["betas"]) == (0.8, 0.9)
    after = [r for r in history.train if r["step"] > 5]
    assert all(r["clipped"] and r["grad_norm_clipped"] == pytest.approx(1e-3, rel=1e-3) for r in after)
    cosine = [0.01 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / 8)).item()) for s in (5, 6, 7)]
    assert [r["lr"] for r in after] == pytest.approx(cosine)  # the cosine over 8 steps, at steps 6, 7, 8
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt"))
    assert names == ["step-000007.pt", "step-000008.pt"]  # every step, the last 2 kept
    best = history.summary["best"]
    assert best["metric"] == "val mae" and best["value"] == min(
        r["mae"] for r in history.val if r["step"] > 5
    )


def test_a_rollback_to_a_checkpoint_from_before_the_resume_keeps_the_new_settings(tmp_path):
    run(tmp_path, 5)
    calls = [0]

    def nan_first_three(grad):  # the first three steps of the resumed run: roll back to step-000005.pt
        calls[0] += 1
        return grad * float("nan") if calls[0] <= 3 else grad

    _, history = run(tmp_path, 9, resume=tmp_path, hook=nan_first_three, **{"optim.weight_decay": 0.25})
    assert history.summary["rollbacks"] == 1
    group = load(tmp_path / "checkpoints" / "step-000009.pt")["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.25


def test_what_a_resume_keeps_is_refused_naming_the_field(tmp_path):
    run(tmp_path, 5)
    config = (tmp_path / "config.toml").read_text()
    with pytest.raises(ConfigError, match=r"model.num_layers: the run in .* was trained with 2, got 1"):
        task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8, output="sequence")
        model = SequenceModel(1, 8, 1, output="sequence", num_layers=1, dropout=0.3)
        train(model, task, override(TrainConfig(), {"steps": 9}), resume=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"seed: the run in .* was trained with 0, got 3"):
        run(tmp_path, 9, resume=tmp_path, seed=3)
    assert (tmp_path / "config.toml").read_text() == config and not list(tmp_path.glob("config.step-*"))


def test_events_are_cut_back_to_the_checkpoint_a_resume_starts_from(tmp_path):
    calls = [0]

    def nan_at_7(grad):
        calls[0] += 1
        return grad * float("nan") if calls[0] == 7 else grad

    run(tmp_path, 10, hook=nan_at_7)
    assert [(e["event"], e["step"]) for e in events(tmp_path)] == [("nonfinite", 7)]
    run(tmp_path, 10, resume=tmp_path / "checkpoints" / "step-000005.pt")  # steps 6 to 10 again, no NaN
    assert events(tmp_path) == []
    assert [(e["event"], e["step"]) for e in events(tmp_path, "events.superseded.jsonl")] == [
        ("nonfinite", 7)
    ]


def test_a_run_cut_off_before_its_summary_finishes_it_on_a_resume_to_the_same_step(tmp_path):
    run(tmp_path, 5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("summary.json", "loss.png"):  # killed after the last checkpoint, before these
        (tmp_path / name).unlink()
    _, history = run(tmp_path, 5, resume=tmp_path)
    again = json.loads((tmp_path / "summary.json").read_text())
    assert again["steps"] == 5 and again["final"] == summary["final"] and again["best"] == summary["best"]
    assert (tmp_path / "loss.png").is_file()
    assert [r["step"] for r in history.train] == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigError, match="at step 5 already; ask for more steps"):  # now it is finished
        run(tmp_path, 5, resume=tmp_path)


KILLED_RUN = """
import sys, torch
from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import train
from rnnlab.training.config import TrainConfig, override
task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8)
torch.manual_seed(0)
settings = {"steps": 100000, "out": sys.argv[1], "checkpoint.every": 5, "eval.every": 5}
config = override(TrainConfig(), settings)
train(SequenceModel(1, 8, 1), task, config, progress=False)
"""


def test_a_run_killed_outright_resumes_with_every_row_once(tmp_path):
    """SIGKILL: no clean-up at all. The rows still in memory are all after the last checkpoint, which the
    resume redoes, so metrics.jsonl ends with every step's row exactly once."""
    folder = tmp_path / "run"
    kill_when(KILLED_RUN, [str(folder)], folder / "checkpoints" / "step-000015.pt", "step 15")
    last = max(int(p.stem[5:]) for p in (folder / "checkpoints").glob("step-*.pt"))
    task = SineTask(seq_len=10, train_size=48, val_size=16, batch_size=8)
    torch.manual_seed(0)
    config = override(TrainConfig(), {"steps": last + 7, "checkpoint.every": 5, "eval.every": 5})
    history = train(SequenceModel(1, 8, 1), task, config, resume=folder, progress=False)
    assert [r["step"] for r in history.train] == list(range(1, last + 8))
    val_steps = [r["step"] for r in history.val]
    assert val_steps == sorted(set(val_steps)) and val_steps[-1] == last + 7
