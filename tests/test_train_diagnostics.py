"""Diagnostics in training: a short run writes diagnostics.jsonl, TensorBoard and figures; trains alike."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnlab import SequenceModel
from rnnlab.tasks import SineTask
from rnnlab.training import EvalConfig, OptimConfig, TrainConfig, train
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
    assert [r["step"] for r in rows] == [5, 10]
    train_norms = {r["step"]: r["grad_norm"] for r in history.train}
    for row in rows:
        assert row["grad_norm"] == pytest.approx(train_norms[row["step"]], rel=1e-5)  # the pre-clip norm
        layer = row["layers"]["encoder.l0"]
        assert len(layer["profile_h"]) == 8 and len(layer["profile_c"]) == 8  # one per time step
        assert layer["jacobian"]["gamma"] > 0 and layer["jacobian"]["horizon"] is not None
        assert set(layer["spectra"]) == {"i", "f", "g", "o"}
        assert 0.0 <= layer["saturation"]["tanh"] <= 1.0
        assert layer["verdict"]["name"] in {"healthy", "vanishing", "exploding", "saturated", "forgetting"}
    figures = sorted(p.name for p in (history.run_dir / "diagnostics").iterdir())
    assert figures == [
        "grad_flow_heatmap.png",
        "grad_flow_profile.png",
        "saturation.png",
        "spectral_radius.png",
    ]
    events = EventAccumulator(str(history.run_dir / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("diagnostics/encoder.l0/gamma")] == [5, 10]
    assert [e.step for e in events.Images("diagnostics/grad_flow")] == [5, 10]


def test_probing_every_step_trains_exactly_alike(tmp_path):
    plain = run(tmp_path / "plain", every=0, steps=6)
    probed = run(tmp_path / "probed", every=1, steps=6)
    assert not (plain.run_dir / "diagnostics.jsonl").exists()
    assert len((probed.run_dir / "diagnostics.jsonl").read_text().splitlines()) == 6
    keys = ("loss", "grad_norm", "grad_norm_clipped")
    assert [[r[k] for k in keys] for r in plain.train] == [[r[k] for k in keys] for r in probed.train]


def test_verdicts_are_said_live_when_they_change(tmp_path, capsys):
    history = run(tmp_path / "run", every=1, steps=4)
    said = [line for line in capsys.readouterr().err.splitlines() if "encoder.l0" in line]
    verdicts = [r["layers"]["encoder.l0"]["verdict"] for r in history_rows(history)]
    changes = [v for i, v in enumerate(verdicts) if i == 0 or v["name"] != verdicts[i - 1]["name"]]
    assert len(said) == len(changes) >= 1  # the first probe's verdict, then each change, nothing more
    assert said[0].startswith(f"step 1: encoder.l0 {changes[0]['name']}")


def history_rows(history):
    return [json.loads(line) for line in (history.run_dir / "diagnostics.jsonl").read_text().splitlines()]


def test_the_adapter_lives_with_the_loop_and_probes_every_nth_step(tmp_path):
    from rnnlab.training.diagnostics import TrainingDiagnostics
    from rnnlab.training.run import RunDir

    probe = TrainingDiagnostics(SequenceModel(1, 4, 1), DiagnosticsConfig(every=3), RunDir(tmp_path / "run"))
    assert [step for step in range(1, 10) if probe.due(step)] == [3, 6, 9]
