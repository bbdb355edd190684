"""The README's main job runs end to end: verdicts printed, the remedy healthy, a run folder written."""

from __future__ import annotations

import json

import pytest

from rnnlab.demo import main


def test_demo_diagnoses_remedies_and_trains(tmp_path, capsys):
    out = tmp_path / "run"
    main(["--steps", "20", "--seq-len", "60", "--out", str(out)])
    text = capsys.readouterr().out
    rnn_part, rest = text.split("-- LSTM, torch's init")
    assert "vanishing" in rnn_part  # the tanh RNN's gradient dies out over 60 steps
    assert "healthy" in rest.split("-- LSTM, chrono=60")[1].split("2. Any model")[0]  # the remedy works
    for name in ("metrics.jsonl", "summary.json", "config.toml", "diagnostics.jsonl", "loss.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20


def test_demo_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "5", "--seq-len", "20", "--out", str(out)])
    assert "already exists" in str(exit_info.value.code)
    assert (out / "metrics.jsonl").read_text() == "{}\n"
