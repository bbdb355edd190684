"""The non-finite guard: skip, record, roll back with a lower learning rate, give up when told to."""

import json

import pytest
import torch

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import DivergedError, GuardConfig, OptimConfig, TrainConfig, train
from rnnlab.training.checkpoint import CheckpointError, Checkpoints
from rnnlab.training.config import CheckpointConfig


def setup(bad_steps, tmp_path, **config):
    """A tiny model whose recurrent weight gets a NaN gradient at the given (1-based) steps."""
    task = SineTask(seq_len=6, train_size=32, val_size=16, batch_size=8)
    torch.manual_seed(0)
    model = SequenceModel(1, 8, 1)
    step = [0]

    def inject(grad):
        step[0] += 1
        return grad * float("nan") if step[0] in bad_steps else grad

    model.encoder.weight_hh_l0.register_hook(inject)
    config = TrainConfig(out=str(tmp_path / "run"), optim=OptimConfig("sgd", lr=0.05), **config)
    return model, task, config


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_nan_gradient_is_skipped_and_recorded(tmp_path):
    model, task, config = setup({3}, tmp_path, steps=5)
    weights, calls = {}, [0]

    def snapshot(grad):  # runs during each backward, i.e. before that step's update
        calls[0] += 1
        weights[calls[0]] = [p.detach().clone() for p in model.parameters()]
        return grad

    model.encoder.weight_ih_l0.register_hook(snapshot)
    history = train(model, task, config, progress=False)
    events = read(tmp_path / "run" / "events.jsonl")
    assert len(events) == 1
    event = events[0]
    assert (event["event"], event["step"], event["epoch"], event["batch"]) == ("nonfinite", 3, 0, 2)
    assert event["parameters"] == ["encoder.weight_hh_l0"] and event["in_a_row"] == 1
    row = history.train[2]
    assert row["step"] == 3 and row["skipped"] and row["grad_norm"] is None  # NaN is written as null
    assert not history.train[3]["skipped"]
    assert history.summary["skipped_steps"] == 1 and history.summary["rollbacks"] == 0
    assert history.summary["steps"] == 5
    # the skipped step changed no weight; the steps around it did
    assert all(torch.equal(a, b) for a, b in zip(weights[3], weights[4], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights[2], weights[3], strict=True))


def test_repeated_nans_roll_back_lower_the_lr_and_training_finishes(tmp_path):
    guard = GuardConfig(max_consecutive=3, lr_factor=0.1)
    model, task, config = setup(
        {5, 6, 7}, tmp_path, steps=12, guard=guard, checkpoint=CheckpointConfig(every=4)
    )
    history = train(model, task, config, progress=False)
    events = read(tmp_path / "run" / "events.jsonl")
    assert [e["event"] for e in events] == ["nonfinite", "nonfinite", "nonfinite", "rollback"]
    rollback = events[-1]
    assert (
        rollback["step"] == 7
        and rollback["checkpoint"] == "step-000004.pt"
        and rollback["checkpoint_step"] == 4
    )
    assert rollback["lr"] == pytest.approx(0.005)
    lrs = {r["step"]: r["lr"] for r in history.train}
    assert lrs[4] == pytest.approx(0.05) and lrs[8] == pytest.approx(0.005)
    assert history.summary["steps"] == 12 and history.summary["rollbacks"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_rollback_restores_the_checkpoint_weights(tmp_path):
    guard, every = GuardConfig(max_consecutive=2), CheckpointConfig(every=100)
    model, task, config = setup({3, 4}, tmp_path, steps=4, guard=guard, checkpoint=every)
    train(model, task, config, progress=False)
    step0 = torch.load(tmp_path / "run" / "checkpoints" / "step-000000.pt", weights_only=True)["model"]
    # steps 1, 2 updated the weights; 3, 4 were NaN and rolled back to checkpoint 0, the only one
    assert all(torch.equal(p, step0[n]) for n, p in model.state_dict().items())


def test_training_gives_up_after_the_allowed_rollbacks(tmp_path):
    guard = GuardConfig(max_consecutive=2, max_rollbacks=2)
    model, task, config = setup(set(range(1, 100)), tmp_path, steps=50, guard=guard)
    with pytest.raises(DivergedError, match=r"after 2 rollbacks \(guard.max_rollbacks\)"):
        train(model, task, config, progress=False)
    events = [e["event"] for e in read(tmp_path / "run" / "events.jsonl")]
    assert events.count("rollback") == 2


def test_a_checkpoint_never_holds_non_finite_weights(tmp_path):
    model = SequenceModel(1, 4, 1)
    with torch.no_grad():
        model.head.weight[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite weights in head.weight"):
        Checkpoints(tmp_path).save(1, {"model": model.state_dict()})
    assert list(tmp_path.iterdir()) == []
