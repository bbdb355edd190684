"""`rnnlab evaluate`, `predict`, `diagnose`, `report` and `compare` end to end on tiny runs, and the
conventions every command keeps: the exit statuses, one-line errors, `--debug`, `--help`, and outputs that
are never replaced without `--overwrite`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import shutil
import statistics
from html.parser import HTMLParser

import pytest
import torch
from test_tasks_classify import write_long_csv
from test_tasks_forecast import write_series

from rnnlab.cli import main
from rnnlab.text import format_number
from rnnlab.training.saved import open_run

COMMANDS = (
    "train",
    "evaluate",
    "predict",
    "diagnose",
    "compare",
    "forecast",
    "generate",
    "data",
    "report",
    "demo",
    "export",
    "translate",
)
TINY = ["--steps", "20", "--model.hidden_size", "8", "--quiet"]
ADDING = ["--task", "adding", "--task.length", "10"]
PNG = b"\x89PNG\r\n\x1a\n"
DIAGNOSE_FILES = {"report.txt", "report.json", "grad_flow_profile.png", "saturation.png"}


@pytest.fixture(scope="module", autouse=True)
def quiet_environment(tmp_path_factory):
    """An empty data cache of the module's own, no RNNLAB_TRACEBACK from the caller's shell, and one torch
    thread while the module's runs train (conftest's per-test fixture does not cover module fixtures)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNLAB_DATA", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("RNNLAB_TRACEBACK", raising=False)
        yield
    torch.set_num_threads(threads)


def cli(capsys, *argv):
    """`main(argv)`: its status, stdout and stderr."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line(err: str) -> str:
    """The single line of a user's error, checked to be one line without a traceback."""
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err.strip()


def summary(run) -> dict:
    return json.loads((run / "summary.json").read_text())


def read_csv(path):
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def listing(folder):
    """Every file under `folder` with its bytes: to check that a refused command left it alone."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- runs shared by the module ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def adding_run(root):
    """20 steps of an LSTM on the 10-step adding problem (best checkpoint = last one, at step 20)."""
    out = root / "adding"
    assert main(["train", *ADDING, *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def classify_run(root):
    """A classifier of 24 sequences of 3-9 steps in a long CSV (id, step, a, b, label), classes down, up."""
    data = write_long_csv(root / "seq.csv")
    out = root / "classify"
    args = ["train", "--task", "classify", "--task.path", str(data), "--eval.every", "10"]
    assert main([*args, *TINY, "--out", str(out)]) == 0
    return out, data


@pytest.fixture(scope="module")
def forecast_run(root):
    """A forecaster of 3 months from 12 of a monthly series that ends in 1999-12."""
    data, y = write_series(root / "sales.csv", n=120)
    out = root / "forecast"
    args = ["train", "--task", "forecast", "--task.path", str(data), "--task.target=sales"]
    args += ["--task.time=month", "--task.lookback=12", "--task.horizon=3"]
    assert main([*args, *TINY, "--out", str(out)]) == 0
    return out, data, y


@pytest.fixture(scope="module")
def comparison(root):
    """`rnnlab compare` of a tanh RNN and a GRU over 2 seeds: its folder and what it printed."""
    out = root / "cmp"
    args = ["compare", *ADDING, *TINY, "--model.cell=rnn,gru", "--seeds", "2", "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(args)
    assert status == 0
    return out, printed.getvalue()


# --- evaluate ---------------------------------------------------------------------------------------------


def test_evaluate_prints_each_metric_beside_its_baseline(adding_run, capsys):
    status, out, err = cli(capsys, "evaluate", adding_run)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{adding_run} at step 20 (best.pt) on the test split:"
    baseline = summary(adding_run)["baseline"]
    assert len(lines) == 3  # loss and mse
    for name, line in zip(("loss", "mse"), lines[1:], strict=True):
        m = re.fullmatch(rf"  {name}\s+(\S+)  \(baseline (\S+)\)", line)
        assert m, line
        assert math.isfinite(float(m.group(1))) and m.group(2) == format_number(baseline[name])


def test_evaluate_json_is_one_object_with_the_runs_test_scores(adding_run, capsys):
    status, out, _ = cli(capsys, "evaluate", adding_run, "--json", "--checkpoint", "last")
    assert status == 0 and len(out.splitlines()) == 1
    record = json.loads(out)
    s = summary(adding_run)
    assert record["data"] == "test split" and record["step"] == 20 and record["run"] == str(adding_run)
    assert set(record["metrics"]) == set(s["test"]) == {"loss", "mse"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in record["metrics"].values())
    # summary.json scores the test split with the last weights (no eval.restore_best): the same numbers
    assert record["metrics"] == pytest.approx(s["test"], rel=1e-5)
    assert record["baseline"] == pytest.approx({k: s["baseline"][k] for k in record["metrics"]})


def test_evaluate_split_val_scores_the_validation_split(adding_run, capsys):
    status, out, _ = cli(capsys, "evaluate", adding_run, "--split", "val", "--json")
    assert status == 0
    record = json.loads(out)
    final_val = summary(adding_run)["final"]["val"]
    assert record["data"] == "val split" and record["checkpoint"] == "best.pt"
    assert record["metrics"] == pytest.approx({k: final_val[k] for k in ("loss", "mse")}, rel=1e-5)


def test_evaluate_input_scores_a_csv_of_the_users_on_a_classify_run(classify_run, capsys, tmp_path):
    run, data = classify_run
    test_ids = set(open_run(run).task.test.ids)
    header, rows = read_csv(data)
    mine = tmp_path / "held_out.csv"  # the run's test sequences, in a file of the user's
    with mine.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(r for r in rows if r["id"] in test_ids)
    status, out, _ = cli(capsys, "evaluate", run, "--input", mine, "--json", "--checkpoint", "last")
    assert status == 0
    record = json.loads(out)
    assert record["data"] == str(mine) and set(record["metrics"]) == {"loss", "accuracy"}
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and math.isfinite(record["metrics"]["loss"])
    assert record["metrics"] == pytest.approx(summary(run)["test"], rel=1e-5)  # the test split, as a file

    status, out, _ = cli(capsys, "evaluate", run, "--input", data)
    assert status == 0 and out.splitlines()[0].endswith(f"on {data}:")
    assert re.search(r"^  accuracy\s+\S+  \(baseline \S+\)$", out, re.M)


def test_evaluate_a_missing_run_folder_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    status, out, err = cli(capsys, "evaluate", missing)
    assert status == 1 and out == ""
    assert str(missing) in one_line(err) and err.startswith("rnnlab evaluate: error:")


def test_evaluate_input_on_a_task_that_generates_its_data_is_a_usage_error(adding_run, classify_run, capsys):
    _, data = classify_run
    status, _, err = cli(capsys, "evaluate", adding_run, "--input", data)
    assert status == 2
    assert "the adding task generates its data and reads no input files" in one_line(err)


# --- predict ----------------------------------------------------------------------------------------------


def test_predict_writes_a_csv_row_per_sequence_with_a_class_and_its_probability(
    classify_run, capsys, tmp_path
):
    run, data = classify_run
    out = tmp_path / "sub" / "p.csv"
    status, printed, _ = cli(capsys, "predict", run, "--input", data, "--out", out)
    header, rows = read_csv(out)
    _, given = read_csv(data)
    ids = list(dict.fromkeys(r["id"] for r in given))
    assert status == 0 and printed.strip() == f"{len(ids)} predictions: {out}"
    assert {"predicted", "probability"} <= set(header) and len(rows) == len(ids) == 24
    assert [r["id"] for r in rows] == ids  # in file order
    assert all(r["predicted"] in ("down", "up") for r in rows)
    assert all(0.5 <= float(r["probability"]) <= 1.0 for r in rows)  # the larger of two probabilities
    # the predictions are the model's: their accuracy on the file's labels is what evaluate says
    labels = {r["id"]: r["label"] for r in given}
    accuracy = statistics.fmean(r["predicted"] == labels[r["id"]] for r in rows)
    _, said, _ = cli(capsys, "evaluate", run, "--input", data, "--json")
    assert json.loads(said)["metrics"]["accuracy"] == pytest.approx(accuracy)


def test_predict_writes_json_lines_the_same_as_the_csv(classify_run, capsys, tmp_path):
    run, data = classify_run
    assert cli(capsys, "predict", run, "--input", data, "--out", tmp_path / "p.csv")[0] == 0
    status, _, _ = cli(capsys, "predict", run, "--input", data, "--out", tmp_path / "p.jsonl")
    assert status == 0
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    _, rows = read_csv(tmp_path / "p.csv")
    assert len(records) == len(rows) == 24
    for record, row in zip(records, rows, strict=True):
        assert record["id"] == row["id"] and record["predicted"] == row["predicted"]
        assert isinstance(record["probability"], float) and 0.5 <= record["probability"] <= 1.0
        assert record["probability"] == pytest.approx(float(row["probability"]))


def test_predict_refuses_an_existing_out_unless_overwrite(classify_run, capsys, tmp_path):
    run, data = classify_run
    out = tmp_path / "p.csv"
    out.write_text("mine\n")
    status, _, err = cli(capsys, "predict", run, "--input", data, "--out", out)
    assert status == 1 and "--overwrite" in one_line(err) and str(out) in err
    assert out.read_text() == "mine\n"
    status, _, _ = cli(capsys, "predict", run, "--input", data, "--out", out, "--overwrite")
    assert status == 0
    header, rows = read_csv(out)
    assert "predicted" in header and len(rows) == 24


def test_predict_out_of_another_format_is_a_usage_error(classify_run, capsys, tmp_path):
    run, data = classify_run
    status, _, err = cli(capsys, "predict", run, "--input", data, "--out", tmp_path / "x.txt")
    assert status == 2 and ".csv or .jsonl" in one_line(err)
    assert not (tmp_path / "x.txt").exists()


def test_predict_on_a_forecast_run_forecasts_the_horizon_after_the_files_end(forecast_run, capsys, tmp_path):
    run, data, y = forecast_run
    out = tmp_path / "f.csv"
    status, _, _ = cli(capsys, "predict", run, "--input", data, "--out", out)
    assert status == 0
    header, rows = read_csv(out)
    assert data.read_text().splitlines()[-1].startswith("1999-12-01,")
    assert header == ["time", "step", "forecast"] and len(rows) == 3  # the horizon
    assert [r["time"] for r in rows] == ["2000-01-01", "2000-02-01", "2000-03-01"]
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    forecasts = [float(r["forecast"]) for r in rows]
    assert all(math.isfinite(f) and abs(f - y[-1]) < 0.25 * y[-1] for f in forecasts)  # on the original scale


# --- diagnose ---------------------------------------------------------------------------------------------


def test_diagnose_a_run_writes_its_report_and_figures_into_the_run(adding_run, capsys, tmp_path):
    run = tmp_path / "adding"
    shutil.copytree(adding_run, run)  # a run of the test's own: diagnose writes into it
    status, out, _ = cli(capsys, "diagnose", run, "--quiet")
    folder = run / "diagnose"
    assert status == 0 and out.startswith(f"{run} at step 20 (best.pt), one validation batch:")
    assert out.strip().endswith(f"figures and report: {folder}")
    assert {p.name for p in folder.iterdir()} == DIAGNOSE_FILES
    assert all(
        (folder / name).read_bytes().startswith(PNG) for name in ("grad_flow_profile.png", "saturation.png")
    )
    record = json.loads((folder / "report.json").read_text())
    assert list(record["layers"]) == ["encoder.l0"]
    verdict = record["layers"]["encoder.l0"]["verdict"]["name"]
    assert verdict in (folder / "report.txt").read_text() and verdict in out

    before = listing(folder)
    status, _, err = cli(capsys, "diagnose", run, "--quiet")
    assert status == 1 and "--overwrite" in one_line(err) and listing(folder) == before
    # --overwrite replaces the folder an earlier diagnose wrote (fixed in rnnlab/cli/runs.py, see
    # make_diagnose_room: make_room alone refused it, as it holds no config.toml/summary.json/metrics.jsonl)
    (folder / "report.txt").write_text("old\n")
    status, _, err = cli(capsys, "diagnose", run, "--quiet", "--overwrite")
    assert status == 0, err
    assert {p.name for p in folder.iterdir()} == DIAGNOSE_FILES and (
        folder / "report.txt"
    ).read_text() != "old\n"


def test_diagnose_a_fresh_tanh_rnn_says_vanishing_and_gives_its_remedies_as_flags(tmp_path, capsys):
    out = tmp_path / "D"
    status, printed, _ = cli(
        capsys, "diagnose", "--task", "adding", "--task.length", "60", "--model.cell", "rnn", "--out", out
    )
    assert status == 0
    record = json.loads((out / "report.json").read_text())
    verdict = record["layers"]["encoder.l0"]["verdict"]
    assert verdict["name"] == "vanishing" and "model.cell=lstm" in verdict["remedies"]
    lines = printed.splitlines()
    assert lines[0] == "the adding task's model as it starts (rnn), one validation batch:"
    assert re.search(r"^encoder\.l0\s+vanishing\s", printed, re.M)
    start = lines.index("remedies, one alternative a line (rnnlab train ... FLAGS):")
    remedies = [line.removeprefix("  encoder.l0: ") for line in lines[start + 1 :] if line.startswith("  ")]
    assert remedies == [" ".join(f"--{flag}" for flag in r.split()) for r in verdict["remedies"]]
    assert "--model.cell=lstm" in remedies and all(r.startswith("--") for r in remedies)
    assert {p.name for p in out.iterdir()} == DIAGNOSE_FILES
    assert (out / "report.txt").read_text().strip() in printed


def test_diagnose_json_prints_the_report_it_writes(tmp_path, capsys):
    out = tmp_path / "D"
    status, printed, _ = cli(capsys, "diagnose", *ADDING, "--model.cell=rnn", "--out", out, "--json")
    assert status == 0 and len(printed.splitlines()) == 1
    assert json.loads(printed) == json.loads((out / "report.json").read_text())


def test_diagnose_refuses_an_existing_out_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "D"
    args = ["diagnose", *ADDING, "--model.cell=rnn", "--out", out]
    assert cli(capsys, *args)[0] == 0
    before = listing(out)
    status, _, err = cli(capsys, *args)
    assert status == 1 and "--overwrite" in one_line(err) and listing(out) == before
    assert cli(capsys, *args, "--overwrite")[0] == 0
    assert {p.name for p in out.iterdir()} == DIAGNOSE_FILES
    # a folder holding anything else is not diagnose's to delete, --overwrite or not
    (out / "notes.txt").write_text("mine\n")
    before = listing(out)
    status, _, err = cli(capsys, *args, "--overwrite")
    assert status == 1 and "left as it is" in one_line(err) and listing(out) == before


def test_diagnose_needs_a_run_or_a_config_and_not_both(adding_run, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(capsys, "diagnose")
    assert status == 2 and "diagnose what?" in one_line(err)
    for flag in ("--model.cell=rnn", "--task.length=5", "--seed=3"):
        status, _, err = cli(capsys, "diagnose", adding_run, flag, "--out", tmp_path / "D")
        assert status == 2 and "drop --config and the config flags" in one_line(err)
    assert not (tmp_path / "D").exists() and not (adding_run / "diagnose").exists()
    assert list(tmp_path.iterdir()) == []


# --- report -----------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The page's images, its links to elsewhere and its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.fetched: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if re.match(r"(https?:)?//", a.get(key) or ""):
                self.fetched.append(a[key])


def test_report_writes_one_self_contained_page_naming_the_runs(adding_run, classify_run, capsys, tmp_path):
    run, _ = classify_run
    out = tmp_path / "r.html"
    status, printed, _ = cli(capsys, "report", adding_run, run, "--out", out)
    assert status == 0 and printed.strip() == f"report of 2 run(s): {out}"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "adding" in text and "classify" in text
    page = Page()
    page.feed(text)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.fetched == [] and page.scripts == 0


def test_report_of_a_comparison_stands_for_its_runs(comparison, capsys, tmp_path):
    folder, _ = comparison
    out = tmp_path / "r.html"
    status, printed, _ = cli(capsys, "report", folder, "--out", out, "--no-exhibits")
    assert status == 0 and printed.strip() == f"report of 4 run(s): {out}"
    text = out.read_text(encoding="utf-8")
    for label in ("cell=rnn, seed 0", "cell=rnn, seed 1", "cell=gru, seed 0", "cell=gru, seed 1"):
        assert label in text


def test_report_refuses_an_existing_out_unless_overwrite(adding_run, capsys, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("mine\n")
    status, _, err = cli(capsys, "report", adding_run, "--out", out, "--no-exhibits")
    assert status == 1 and "--overwrite" in one_line(err) and out.read_text() == "mine\n"
    assert cli(capsys, "report", adding_run, "--out", out, "--no-exhibits", "--overwrite")[0] == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("what", ["empty folder", "missing", "a file"])
def test_report_of_a_folder_that_is_not_a_run_is_one_line(adding_run, capsys, tmp_path, what):
    given = {
        "empty folder": tmp_path / "empty",
        "missing": tmp_path / "nowhere",
        "a file": adding_run / "config.toml",
    }[what]
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.html"
    status, out_text, err = cli(capsys, "report", adding_run, given, "--out", out)
    assert status == 1 and out_text == "" and str(given) in one_line(err)
    assert not out.exists()


# --- compare ----------------------------------------------------------------------------------------------


def test_compare_writes_its_table_listing_curves_and_report(comparison):
    folder, _ = comparison
    assert {"compare.txt", "compare.json", "curves.png", "report.html"} <= {p.name for p in folder.iterdir()}
    assert (folder / "curves.png").read_bytes().startswith(PNG)
    assert (folder / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    listed = json.loads((folder / "compare.json").read_text())
    assert listed["metric"] == "mse" and listed["mode"] == "min"
    runs = listed["runs"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [
        ("cell=gru", 0),
        ("cell=gru", 1),
        ("cell=rnn", 0),
        ("cell=rnn", 1),
    ]
    for r in runs:
        run = folder / r["folder"]
        assert (run / "summary.json").is_file() and r["error"] is None
        assert f'cell = "{r["overrides"]["model.cell"]}"' in (run / "config.toml").read_text()
        assert f"seed = {r['seed']}" in (run / "config.toml").read_text()
        assert r["test"] == pytest.approx(summary(run)["test"]["mse"]) and math.isfinite(r["test"])


def test_compare_prints_the_variants_ranked_beside_the_baseline(comparison):
    folder, printed = comparison
    runs = json.loads((folder / "compare.json").read_text())["runs"]
    assert (folder / "compare.txt").read_text() in printed
    rows = [line.split() for line in printed.splitlines() if re.match(r"\s*\d+\s+cell=", line)]
    assert [row[1] for row in rows] in (["cell=rnn", "cell=gru"], ["cell=gru", "cell=rnn"])  # one a variant
    header = printed.splitlines()[0].split()
    assert header[:4] == ["rank", "variant", "test", "mse"] and "baseline" in header
    means = {
        v: statistics.fmean(r["test"] for r in runs if r["variant"] == v) for v in ("cell=rnn", "cell=gru")
    }
    assert [row[1] for row in rows] == sorted(means, key=means.get)  # smaller mse first
    baseline = format_number(runs[0]["baseline"])
    for rank, row in enumerate(rows, 1):
        assert row[0] == str(rank) and row[2] == format_number(means[row[1]]) and row[4] == baseline
        assert re.fullmatch(r"[0-2]/2", row[5])
    assert f"report: {folder / 'report.html'}" in printed


def test_compare_needs_at_least_one_seed(capsys, tmp_path):
    out = tmp_path / "C"
    status, _, err = cli(capsys, "compare", *ADDING, *TINY, "--seeds", "0", "--out", out)
    assert status == 2 and "--seeds: at least 1, got 0" in one_line(err)
    assert not out.exists()


def test_compare_refuses_an_existing_out(comparison, capsys):
    folder, _ = comparison
    before = listing(folder)
    status, _, err = cli(capsys, "compare", *ADDING, *TINY, "--model.cell=rnn,gru", "--out", folder)
    assert status == 1 and "--overwrite" in one_line(err) and str(folder) in err
    assert listing(folder) == before


# --- conventions ------------------------------------------------------------------------------------------


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    listed = set(re.findall(r"^    (\w+)\s", out, re.M))
    assert set(COMMANDS) <= listed


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_exits_zero(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: rnnlab {command}")


def test_no_command_prints_the_help_and_exits_two(capsys):
    status, out, err = cli(capsys)
    assert status == 2 and out == "" and err.startswith("usage: rnnlab")


def test_a_bad_choice_is_one_line_listing_the_valid_ones(adding_run, capsys):
    status, out, err = cli(capsys, "evaluate", adding_run, "--split", "nope")
    assert status == 2 and out == ""
    line = one_line(err)
    assert line.startswith("rnnlab evaluate: error: argument --split: invalid choice: 'nope'")
    assert "(choose from 'test', 'val')" in line


def test_an_unknown_command_is_one_line_listing_the_commands(capsys):
    status, _, err = cli(capsys, "trian", "--steps", "3")
    assert status == 2
    line = one_line(err)
    assert line.startswith("rnnlab: error: ")  # not "rnnlab trian:", as if it were a command
    assert "invalid choice: 'trian'" in line and all(f"'{c}'" in line for c in COMMANDS)


@pytest.mark.parametrize("where", [0, 1, 2])
def test_debug_anywhere_shows_the_traceback_of_a_users_error(capsys, tmp_path, where):
    argv = ["evaluate", str(tmp_path / "nowhere")]
    status, _, err = cli(capsys, *argv)
    assert status == 1 and "Traceback" not in err  # without --debug: one line
    argv.insert(where, "--debug")
    status, _, err = cli(capsys, *argv)
    lines = err.splitlines()
    assert status == 1 and lines[0] == "Traceback (most recent call last):" and "RunFolderError" in err
    assert lines[-1] == f"rnnlab evaluate: error: no run in {tmp_path / 'nowhere'} (it does not exist)"


def test_quiet_prints_no_commentary_but_the_run_folder_records_it(capsys, tmp_path):
    flags = ["--task", "adding", "--task.length", "60", "--model.cell", "rnn", "--model.hidden_size", "8"]
    flags += ["--steps", "4", "--diagnostics.every", "2"]
    status, out, err = cli(capsys, "train", *flags, "--out", tmp_path / "loud")
    assert status == 0 and "vanishing" in err  # the first probe's verdict, said above the bar
    status, out, err = cli(capsys, "train", *flags, "--out", tmp_path / "quiet", "--quiet")
    assert status == 0 and err == ""
    assert out.startswith("step 4:")  # the result is still printed, on stdout
    probes = (tmp_path / "quiet" / "diagnostics.jsonl").read_text().splitlines()
    assert "vanishing" in probes[0]
