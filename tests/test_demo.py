"""The README's main job, `rnnlab demo`, on a small configuration (the adding problem over 100 steps, at
most 600 training steps per model): the story it tells holds, and it writes what it says it writes."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from rnnlab.cli import main
from rnnlab.demo import variants

LENGTH, STEPS = 100, 600


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["demo", "--out", str(out), "--length", str(LENGTH), "--steps", str(STEPS), "--quiet"])
    runs = {}
    for run in json.loads((out / "compare.json").read_text())["runs"]:
        folder = out / run["folder"]
        probes = [json.loads(line) for line in (folder / "diagnostics.jsonl").read_text().splitlines()]
        runs[run["variant"]] = {
            "summary": json.loads((folder / "summary.json").read_text()),
            "first": verdicts(probes[0]),
            "last": verdicts(probes[-1]),
        }
    return status, printed.getvalue(), out, runs


def verdicts(probe):
    """The verdict names of a probe's layers."""
    return [layer["verdict"]["name"] for layer in probe["layers"].values()]


def test_it_trains_the_six_models_and_writes_the_report(demo):
    status, printed, out, runs = demo
    assert status == 0
    assert list(runs) == [v.label for v in variants(LENGTH)]
    for name in ("compare.txt", "compare.json", "curves.png", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert f"the report: {out / 'report.html'}" in printed
    table = printed.split("At the first step")[0]
    assert all(label in table for label in runs)
    assert "baseline" in table and "0.1667" in table  # the memoryless model's MSE, 1/6, beside every row
    page = (out / "report.html").read_text()
    assert all(label in page for label in runs)


def test_the_lstm_learns_the_long_dependency_the_tanh_rnn_cannot(demo):
    _, _, _, runs = demo
    rnn, lstm = runs["tanh RNN, torch init"], runs["LSTM, chrono init"]
    baseline = rnn["summary"]["baseline"]["mse"]
    assert rnn["first"] == ["vanishing"]  # torch's init: the gradient through time dies within ~20 steps
    assert lstm["first"] == ["healthy"]  # chrono: forget gates that remember ~100 steps
    assert rnn["summary"]["test"]["mse"] > 0.8 * baseline  # no better than remembering nothing
    assert lstm["summary"]["test"]["mse"] < 0.1 * baseline
    assert lstm["summary"]["solved"] is not None and rnn["summary"]["solved"] is None


def test_spectral_radius_1_5_explodes_and_clipping_keeps_it_training(demo):
    _, printed, _, runs = demo
    plain, clipped = runs["tanh RNN, ρ=1.5, SGD"], runs["tanh RNN, ρ=1.5, SGD + clipping"]
    # the same weights at the first step: both probes see the explosion
    assert plain["first"] == ["exploding"] and clipped["first"] == ["exploding"]
    # unclipped, SGD's first updates blow the loss up: the guard skips non-finite steps and rolls back
    assert plain["summary"]["skipped_steps"] > 0 and plain["summary"]["rollbacks"] > 0
    assert "non-finite step" in printed.split("By the end of training:")[1]
    # clipped, every step is finite, it ends unsaturated, and it ends better than the unclipped run
    assert clipped["summary"]["skipped_steps"] == 0 and clipped["summary"]["rollbacks"] == 0
    assert "saturated" not in clipped["last"]
    assert clipped["summary"]["test"]["mse"] < plain["summary"]["test"]["mse"]


def test_it_refuses_to_overwrite_an_existing_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(out), "--steps", "5", "--length", "10", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("args", [["--length", "1"], ["--steps", "0"], ["--bogus"]])
def test_bad_settings_are_usage_errors(args, capsys):
    assert main(["demo", *args]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
