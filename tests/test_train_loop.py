"""The training loop end to end: it learns, writes its run folder, schedules, stops early, checks input."""

import json
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import rnnlab
from rnnlab import SequenceModel
from rnnlab.tasks import SineTask, TensorTask
from rnnlab.training import (
    ConfigError,
    DataError,
    EvalConfig,
    OptimConfig,
    RunFolderError,
    ScheduleConfig,
    TrainConfig,
    train,
)
from rnnlab.training import config as cfg
from rnnlab.training.build import build_optimizer, build_scheduler, lr_factor, resolve_device


def tiny(tmp_path, steps=60, task=None, **config):
    task = task or SineTask(seq_len=8, train_size=128, val_size=32, batch_size=16)
    torch.manual_seed(0)
    model = SequenceModel(task.input_size, 12, task.output_size, output=task.output)
    config = TrainConfig(steps=steps, out=str(tmp_path / "run"), optim=OptimConfig("adam", lr=0.02), **config)
    return model, task, config


def test_a_short_run_lowers_the_loss_well_below_its_start(tmp_path):
    history = train(*tiny(tmp_path, steps=120, eval=EvalConfig(every=40)), progress=False)
    start = sum(r["loss"] for r in history.train[:5]) / 5
    assert start > 0.2  # predicting a sine from scratch
    assert history.val[-1]["loss"] < 0.1 * start
    assert history.summary["best"]["value"] == min(r["loss"] for r in history.val)


def test_the_run_folder_holds_everything(tmp_path):
    model, task, config = tiny(tmp_path, steps=20, eval=EvalConfig(every=10))
    history = train(model, task, config, progress=False)
    folder = tmp_path / "run"
    assert history.run_dir == folder
    trained = {f"task.{k}": v for k, v in task.settings().items()}  # [task] and [model]: what was trained
    trained |= {f"model.{k}": v for k, v in model.settings().items()}
    assert cfg.load(folder / "config.toml") == cfg.override(config, trained)  # the resolved config
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train_rows] == list(range(1, 21)) and [r["step"] for r in val_rows] == [10, 20]
    for r in train_rows:
        assert {"step", "loss", "grad_norm", "grad_norm_clipped", "clipped", "lr", "mae"} <= set(r)
    assert set(val_rows[0]) == {"step", "split", "loss", "mae"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["final"]["val"]["step"] == 20 and summary["steps_per_s"] > 0
    assert summary["best"]["metric"] == "val loss" and summary["wall_time_s"] > 0
    assert summary["task"]["seq_len"] == 8 and summary["model"]["settings"]["hidden_size"] == 12
    assert (folder / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "best.pt",
        "step-000000.pt",
        "step-000020.pt",
    ]
    events = list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and b"grad_norm_clipped" in events[0].read_bytes()


def test_an_existing_run_folder_is_never_overwritten(tmp_path):
    train(*tiny(tmp_path, steps=3), progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(RunFolderError, match=r"run folder .*run already exists.*--resume"):
        train(*tiny(tmp_path, steps=3), progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_early_stopping_on_the_validation_metric(tmp_path):
    # no change smaller than min_delta = 10 counts as an improvement: stop after `patience` evaluations
    stop = EvalConfig(every=2, metric="mae", patience=2, min_delta=10.0)
    history = train(*tiny(tmp_path, steps=50, eval=stop), progress=False)
    assert history.summary["stopped"] == "early_stopping" and history.summary["steps"] == 6
    assert [r["step"] for r in history.val] == [2, 4, 6]
    events = (tmp_path / "run" / "events.jsonl").read_text()
    assert '"early_stop"' in events and "mae" in events


def test_a_target_of_either_direction_stops_the_run_solved(tmp_path):
    # mode max with a target any value reaches: solved at the first evaluation; mode min with one none
    # reaches: never solved, the run goes to its last step
    reached = EvalConfig(every=2, metric="mae", mode="max", target=0.0)
    history = train(*tiny(tmp_path, steps=50, eval=reached), progress=False)
    assert history.summary["stopped"] == "target" and history.summary["steps"] == 2
    assert history.summary["solved"]["step"] == 2 and history.summary["solved"]["metric"] == "val mae"
    never = EvalConfig(every=2, metric="mae", mode="min", target=-1.0)
    history = train(*tiny(tmp_path / "b", steps=6, eval=never), progress=False)
    assert history.summary["stopped"] == "steps" and history.summary["solved"] is None


def test_an_unknown_validation_metric_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"eval.metric: 'accuracy' is not reported.*loss, mae"):
        train(*tiny(tmp_path, steps=2, eval=EvalConfig(metric="accuracy")), progress=False)


def test_schedules_warm_up_decay_and_follow_plateaus():
    cosine = lr_factor(ScheduleConfig("cosine", warmup_steps=4, min_lr_ratio=0.1), steps=14)
    assert [cosine(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine(4) == 1.0 and cosine(9) == pytest.approx(0.55) and cosine(14) == pytest.approx(0.1)
    assert cosine(100) == pytest.approx(0.1)
    step = lr_factor(ScheduleConfig("step", step_size=3, gamma=0.5), steps=10)
    assert [step(s) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    model = SequenceModel(1, 4, 1)
    optimizer = build_optimizer(model, OptimConfig("sgd", lr=1.0))
    plateau = build_scheduler(optimizer, ScheduleConfig("plateau", factor=0.5, patience=0), 10, "min")
    for loss in [1.0, 2.0]:
        plateau.step(loss)
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_the_loop_logs_the_scheduled_learning_rate(tmp_path):
    schedule = ScheduleConfig("cosine", warmup_steps=2)
    history = train(*tiny(tmp_path, steps=6, schedule=schedule), progress=False)
    lrs = [r["lr"] for r in history.train]
    assert lrs[:2] == pytest.approx([0.01, 0.02]) and lrs[-1] < lrs[2]
    assert lrs[-1] == pytest.approx(0.02 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))


@pytest.mark.parametrize(
    ("optim", "cls"),
    [
        (OptimConfig("sgd", lr=0.1), torch.optim.SGD),
        (OptimConfig("sgd", lr=0.1, momentum=0.9, nesterov=True), torch.optim.SGD),
        (OptimConfig("adam", lr=0.01, weight_decay=1e-4), torch.optim.Adam),
        (OptimConfig("adamw", lr=0.01, weight_decay=0.1), torch.optim.AdamW),
        (OptimConfig("rmsprop", lr=0.01, alpha=0.9, momentum=0.5), torch.optim.RMSprop),
    ],
)
def test_optimisers_by_name_with_their_hyper_parameters(optim, cls):
    optimizer = build_optimizer(SequenceModel(1, 4, 1), optim)
    group = optimizer.param_groups[0]
    assert type(optimizer) is cls and group["lr"] == optim.lr and group["weight_decay"] == optim.weight_decay
    if optim.name == "sgd":
        assert group["nesterov"] == optim.nesterov and group["momentum"] == optim.momentum


def test_the_same_seed_gives_the_same_run(tmp_path):
    a, task, config = tiny(tmp_path / "a", steps=5)
    b, _, config_b = tiny(tmp_path / "b", steps=5)
    train(a, task, config, progress=False)
    train(b, task, config_b, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_device_auto_and_bad_devices():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device: expected auto, cpu, cuda or cuda:N, got 'gpu0'"):
        resolve_device("gpu0")


def test_mismatched_model_and_task_fail_before_anything_is_written(tmp_path):
    model, task, config = tiny(tmp_path)
    with pytest.raises(ValueError, match="output='last', the model output='sequence'"):
        train(SequenceModel(1, 4, 1, output="sequence"), task, config, progress=False)
    with pytest.raises(ConfigError, match="bptt.stateful: needs a stream task"):
        train(model, task, cfg.override(config, {"bptt.stateful": True}), progress=False)
    with pytest.raises(ConfigError, match="the task's inputs are features, the model's vocab_size is 9"):
        train(SequenceModel(4, 4, 1, vocab_size=9), task, config, progress=False)
    task.vocab_size = 9  # now its inputs are token ids
    with pytest.raises(ConfigError, match="a vocabulary of 9, the model's vocab_size is None"):
        train(model, task, config, progress=False)
    assert not (tmp_path / "run").exists()


def test_nan_in_the_data_is_an_error_naming_where(tmp_path):
    x, y = torch.rand(32, 5, 1), torch.rand(32, 1)
    bad = x.clone()
    bad[7, 2, 0] = float("nan")
    with pytest.raises(DataError, match=r"inputs contain NaN or Inf \(the first at \[7, 2, 0\]: nan\)"):
        TensorTask(bad, y, batch_size=32)  # before any run starts
    task = TensorTask(x, y, batch_size=32)
    task.inputs[7, 2, 0] = float("nan")  # data that turns bad later is named by its batch
    with pytest.raises(DataError, match="training batch 0 of epoch 0: inputs contain NaN or Inf"):
        train(*tiny(tmp_path, task=task), progress=False)


def test_non_finite_weights_found_at_an_evaluation_roll_back(tmp_path):
    # an update with a finite gradient that overflows the weights: the loss and gradient of its step were
    # finite, so only the evaluation after it sees the damage
    model, task, config = tiny(tmp_path, steps=8, eval=EvalConfig(every=4))
    config.checkpoint.every = 2
    done = [0]

    def overflow(optimizer, args, kwargs):
        done[0] += 1
        if done[0] == 4:
            with torch.no_grad():
                model.head.weight.fill_(float("inf"))

    handle = register_optimizer_step_post_hook(overflow)
    try:
        history = train(model, task, config, progress=False)
    finally:
        handle.remove()
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events] == [("nonfinite", 4), ("rollback", 4)]
    assert events[0]["where"] == "evaluation" and events[0]["parameters"] == ["head.weight"]
    assert events[1]["checkpoint"] == "step-000002.pt" and events[1]["lr"] == pytest.approx(0.01)
    assert history.summary["steps"] == 8 and history.summary["rollbacks"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [r["step"] for r in history.val] == [4, 8] and all(math.isfinite(r["loss"]) for r in history.val)


def test_the_keras_style_example_from_the_readme(tmp_path):
    # Keras: SimpleRNN(50) + Dense(1) on 1000 sequences of 10 steps, Adam, MSE (steps shortened here)
    x = torch.rand(1000, 10, 1)
    y = x.mean(dim=1)  # target: each sequence's mean
    task = rnnlab.tasks.TensorTask(x[:800], y[:800], loss="mse", val=(x[800:], y[800:]))
    model = rnnlab.SequenceModel(1, 50, 1, cell="rnn", init="orthogonal")
    config = rnnlab.TrainConfig(
        steps=100, optim=rnnlab.OptimConfig("adam", lr=1e-3), clip=rnnlab.ClipConfig("norm")
    )
    config.out = str(tmp_path / "keras")
    history = rnnlab.train(model, task, config, progress=False)
    assert history.val[-1]["loss"] < 0.1 * history.train[0]["loss"]
    scores = rnnlab.evaluate(model, task)  # evaluating is one more line
    assert scores["loss"] == pytest.approx(history.val[-1]["loss"], rel=1e-5)
    assert model.training  # evaluate restores the mode it found


def test_deterministic_mode_allows_only_deterministic_algorithms():
    from rnnlab.training import seed_everything

    try:
        seed_everything(5, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        first = torch.rand(3)
        seed_everything(5)
        assert torch.equal(torch.rand(3), first)
    finally:
        torch.use_deterministic_algorithms(False)
