"""Diagnostics in training: a short run writes diagnostics.jsonl, TensorBoard and figures; trains alike."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import ClipConfig, EvalConfig, OptimConfig, TrainConfig, train
from rnnlab.training.config import DiagnosticsConfig


def run(folder, every, steps=10):
    task = SineTask(seq_len=8, train_size=64, val_size=16, batch_size=16)
    torch.manual_seed(0)
    model = SequenceModel(task.input_size, 12, task.output_size, output=task.output, execution="unrolled")
    config = TrainConfig(
        steps=steps,
        out=str(folder),
        optim=OptimConfig("adam", lr=0.02),
        eval=EvalConfig(every=0),
        diagnostics=DiagnosticsConfig(every=every),
    )
    return train(model, task, config, progress=False)


def test_a_short_run_writes_diagnostics(tmp_path):
    history = run(tmp_path / "run", every=5)
    rows = [json.loads(line) for line in (history.run_dir / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 5, 10]
    train_norms = {r["step"]: r["grad_norm"] for r in history.train}
    for row in rows:
        assert row["grad_norm"] == pytest.approx(train_norms[row["step"]], rel=1e-5)  # the pre-clip norm
        layer = row["layers"]["encoder.l0"]
        assert len(layer["profile_h"]) == 8 and len(layer["profile_c"]) == 8  # one per time step
        assert layer["jacobian"]["gamma"] > 0 and layer["jacobian"]["horizon"] is not None
        assert set(layer["spectra"]) == {"i", "f", "g", "o"}
        assert 0.0 <= layer["saturation"]["tanh"] <= 1.0
        assert layer["verdict"]["name"] in {"healthy", "vanishing", "exploding", "saturated", "forgetting"}
        assert layer["verdict"]["severity"] in {"alarm", "note", "ok"}
    figures = sorted(p.name for p in (history.run_dir / "diagnostics").iterdir())
    assert figures == [
        "grad_flow_heatmap.png",
        "grad_flow_profile.png",
        "saturation.png",
        "spectral_radius.png",
    ]
    events = EventAccumulator(str(history.run_dir / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("diagnostics/encoder.l0/gamma")] == [1, 5, 10]
    assert [e.step for e in events.Scalars("diagnostics/encoder.l0/alarm")] == [1, 5, 10]
    assert [e.step for e in events.Images("diagnostics/grad_flow")] == [1, 5, 10]


def test_probing_every_step_trains_exactly_alike(tmp_path):
    plain = run(tmp_path / "plain", every=0, steps=6)
    probed = run(tmp_path / "probed", every=1, steps=6)
    assert not (plain.run_dir / "diagnostics.jsonl").exists()
    assert len((probed.run_dir / "diagnostics.jsonl").read_text().splitlines()) == 6
    keys = ("loss", "grad_norm", "grad_norm_clipped")
    assert [[r[k] for k in keys] for r in plain.train] == [[r[k] for k in keys] for r in probed.train]


def test_verdicts_are_said_live_when_they_or_their_severity_change(tmp_path, capsys):
    history = run(tmp_path / "run", every=1, steps=4)
    said = [line for line in capsys.readouterr().err.splitlines() if "encoder.l0 " in line]
    said = [line for line in said if " encoder.l0 note: " not in line or "vanishing" in line]  # not remarks
    verdicts = [r["layers"]["encoder.l0"]["verdict"] for r in history_rows(history)]
    kinds = [(v["name"], v["severity"]) for v in verdicts]
    changes = [v for i, v in enumerate(verdicts) if i == 0 or kinds[i] != kinds[i - 1]]
    assert len(said) == len(changes) >= 1  # the first probe's verdict, then each change, nothing more
    first = changes[0]
    prefix = "" if first["severity"] == "ok" else f"{first['severity']}: "
    assert said[0].startswith(f"step 1: encoder.l0 {prefix}{first['name']}")


def sine_run(folder, cell, seq_len, steps, every, **model_options):
    task = SineTask(seq_len=seq_len, train_size=512, val_size=32, batch_size=32)
    torch.manual_seed(0)
    model = SequenceModel(
        task.input_size, 32, task.output_size, output=task.output, cell=cell, **model_options
    )
    config = TrainConfig(
        steps=steps,
        out=str(folder),
        optim=OptimConfig("adam", lr=3e-3),
        clip=ClipConfig("norm", max_norm=1.0),
        eval=EvalConfig(every=0),
        diagnostics=DiagnosticsConfig(every=every, plots=False),
    )
    return train(model, task, config, progress=False)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_run_that_learns_well_raises_no_alarm(tmp_path, capsys, cell):
    # the sine task over 50 steps with torch's initialisation: true short horizons early on, no alarm
    history = sine_run(tmp_path / "run", cell, 50, 160, 20)
    assert history.train[-1]["loss"] < 0.05 * history.train[0]["loss"]  # it learns well
    verdicts = [r["layers"]["encoder.l0"]["verdict"] for r in history_rows(history)]
    assert len(verdicts) == 9 and all(v["severity"] in ("note", "ok") for v in verdicts)
    said = [line for line in capsys.readouterr().err.splitlines() if "encoder.l0" in line]
    assert said and not [line for line in said if " alarm: " in line]


def test_an_alarm_is_a_note_while_the_loss_falls(tmp_path):
    # a tanh RNN of spectral radius 0.5 over 100 steps: its horizon is far under the sequence (an alarm on
    # its own), but the run is learning, so training says it as a note, with the loss that made it one
    history = sine_run(tmp_path / "run", "rnn", 100, 20, 10, spectral_radius=0.5)
    first, verdict, _ = (r["layers"]["encoder.l0"]["verdict"] for r in history_rows(history))
    assert first["severity"] == "alarm"  # step 1: no loss has fallen yet
    assert verdict["name"] == "vanishing" and verdict["severity"] == "note"
    assert "the loss still falls: " in verdict["evidence"] or "the loss fell from" in verdict["evidence"]


def test_without_a_falling_loss_the_alarm_stays(tmp_path):
    from rnnlab.training.diagnostics import LossTrend

    trend = LossTrend()
    for loss in [1.0] * 30:
        trend.add(loss)
    assert trend.falling() is None
    for loss in [0.5] * 30:
        trend.add(loss)
    assert trend.falling() is not None and trend.falling().startswith("the loss still falls: 1 → 0.5")
    for loss in [0.05] * 200:
        trend.add(loss)
    assert trend.falling() == "the loss fell from 1 to 0.05"  # flat now, but learned most of it


def history_rows(history):
    return [json.loads(line) for line in (history.run_dir / "diagnostics.jsonl").read_text().splitlines()]


def test_the_adapter_lives_with_the_loop_and_probes_every_nth_step(tmp_path):
    from rnnlab.training.diagnostics import TrainingDiagnostics
    from rnnlab.training.run import RunDir

    probe = TrainingDiagnostics(SequenceModel(1, 4, 1), DiagnosticsConfig(every=3), RunDir(tmp_path / "run"))
    assert [step for step in range(1, 10) if probe.due(step)] == [1, 3, 6, 9]
