"""`rnnlab train`: a short end-to-end run, resume, and errors printed without a traceback."""

import json
import subprocess
import sys

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import ConfigError, DivergedError

TINY = ["--quiet", "--model.hidden_size=8", "--task.train_size=64", "--task.val_size=16", "--eval.every=10"]


def test_train_writes_a_run_folder_and_resumes_to_more_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "sine", "--steps", "10", "--seed", "3", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "step 10: train loss" in printed and str(out) in printed
    assert json.loads((out / "summary.json").read_text())["steps"] == 10
    assert (out / "loss.png").is_file() and (out / "checkpoints" / "step-000010.pt").is_file()
    assert "seed = 3" in (out / "config.toml").read_text()

    assert main(["train", "--resume", str(out), "--steps", "15", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 15 and [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 16))
    assert "steps = 15" in (out / "config.toml").read_text()
    assert "steps = 10" in (out / "config.step-000010.toml").read_text()  # the old config is kept


def test_a_config_file_with_flags_on_top(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('steps = 4\n[optim]\nname = "sgd"\nlr = 0.05\n[clip]\nmode = "norm"\nmax_norm = 0.5\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--optim.lr=0.01", "--out", str(out), *TINY]) == 0
    saved = (out / "config.toml").read_text()
    assert 'name = "sgd"' in saved and "lr = 0.01" in saved and "max_norm = 0.5" in saved


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optim.lr=-1"], "rnnlab train: error: optim.lr: expected a number > 0.0 and <= 1e6, got -1"),
        (["--optim.lrr=1"], "unknown setting 'optim.lrr'; did you mean 'optim.lr'?"),
        (
            ["--clip.mode", "sometimes"],
            "clip.mode: expected one of: none, value, norm, adaptive, got 'sometimes'",
        ),
        (["--task", "nope"], "task.name: unknown task 'nope'; available: sine"),
        (["--eval.metric=accuracy"], "eval.metric: 'accuracy' is not reported by this task"),
        pytest.param(
            ["--device=cuda:7"],
            "device: 'cuda:7' asked for",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
        ),
        (["--config", "missing.toml"], "config file not found: missing.toml"),
        (["--resume", "nowhere"], "--resume: no run in nowhere"),
        (["stray"], "unexpected argument 'stray'"),
        (["--optim.lrr", "0.1"], "unknown setting 'optim.lrr'; did you mean 'optim.lr'?"),
        (
            ["--optim.lr=inf"],
            "optim.lr: expected a number > 0.0 and <= 1e6, got inf (a number must be finite)",
        ),
        (["--optim.lr=1e38"], "optim.lr: expected a number > 0.0 and <= 1e6, got 1e+38"),
        (["--optim.betas=[1.0, 0.999]"], "optim.betas: expected a number >= 0.0 and < 1.0, got 1.0"),
        (["--model.forget_bias=nan"], "model.forget_bias: expected a number >= -100.0 and <= 100.0, got nan"),
        (["--optim.weight_decay=inf"], "optim.weight_decay: expected a number >= 0.0 and <= 1e6, got inf"),
    ],
)
def test_bad_input_is_one_line_without_a_traceback(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    usage = args[0] != "--resume"  # a usage error exits with 2, a run folder that is not there with 1
    assert main(["train", "--steps", "2", *args, *TINY]) == (2 if usage else 1)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_a_toml_string_for_a_number_and_out_at_a_file_are_one_line(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('steps = "5"\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "steps: expected an integer >= 1, got '5' (text: write the value without quotes)" in err
    (tmp_path / "file").write_text("mine")
    assert main(["train", "--steps", "2", "--out", str(tmp_path / "file"), *TINY]) == 1  # not usage: 1
    assert f"run folder {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine" and not (tmp_path / "run").exists()


def test_a_model_too_large_for_memory_is_refused_with_its_size(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--steps", "2", "--out", str(out), *TINY, "--model.hidden_size=10000000000"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "model.hidden_size: a lstm model of 1 layer(s) of 10000000000 units has about 4e+20 parameters" in err
    )
    assert "1.6e+21 bytes" in err and "bytes of memory" in err and not out.exists()


def test_an_existing_run_folder_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--out", str(out), *TINY]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["train", "--steps", "2", "--out", str(out), *TINY]) == 1
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_resuming_with_another_model_is_one_line_and_leaves_the_run_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--out", str(out), *TINY]) == 0
    config = (out / "config.toml").read_text()
    assert main(["train", "--resume", str(out), "--steps", "4", "--model.hidden_size=16", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.hidden_size: the run in" in err and "was trained with 8, got 16" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert (out / "config.toml").read_text() == config and not list(out.glob("config.step-*"))


def test_resuming_with_other_data_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--out", str(out), *TINY]) == 0
    metrics = (out / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(out), "--steps", "4", "--task.seq_len=20", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "task.seq_len: the run" in err and "with 10, got 20" in err and "Traceback" not in err
    assert (out / "metrics.jsonl").read_text() == metrics


def test_a_corrupt_checkpoint_on_resume_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--out", str(out), *TINY]) == 0
    (out / "checkpoints" / "step-000002.pt").write_bytes(b"garbage")
    assert main(["train", "--resume", str(out), "--steps", "4", "--quiet"]) == 1
    assert "step-000002.pt: truncated or corrupt" in capsys.readouterr().err


def test_the_console_script_exits_non_zero_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlab", "train", "--bptt.mode=sideways", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "bptt.mode: expected one of: full, truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_config_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in [
        "--steps",
        "--seed",
        "--out",
        "--resume",
        "--quiet",
        "--optim.lr",
        "--bptt.k2",
        "--clip.multiple",
    ]:
        assert flag in out


def fail_with(error):
    def build_model(*args, **kwargs):
        raise error

    return build_model


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigError("model.cell: made-up problem"), 2),
        (PermissionError(13, "Permission denied", "runs/x"), 1),
        (DivergedError("training diverged: made up"), 1),
    ],
)
def test_the_users_errors_are_one_line(tmp_path, capsys, monkeypatch, error, status):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rnnlab.training.loop.build_model", fail_with(error))
    assert main(["train", "--steps", "2", *TINY]) == status
    err = capsys.readouterr().err
    assert err == f"rnnlab train: error: {error}\n"


def test_any_other_error_is_a_bug_and_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rnnlab.training.loop.build_model", fail_with(ValueError("expected a 2-D tensor")))
    assert main(["train", "--steps", "2", *TINY]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "ValueError: expected a 2-D tensor" in lines
    assert lines[-1] == (
        "rnnlab train: this is a bug in rnnlab, not in your input; please report it with the traceback above"
    )


def test_rnnlab_traceback_shows_the_traceback_of_a_users_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLAB_TRACEBACK", "1")
    assert main(["train", "--steps", "2", "--optim.lr=-1", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("rnnlab train: error: optim.lr:")
