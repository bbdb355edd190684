"""The HTML report: one self-contained page over run folders, a table row per run, the verdicts, exhibits."""

from __future__ import annotations

import base64
import binascii
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.diagnostics import plots
from rnnlab.errors import ConfigError, RunFolderError
from rnnlab.report import write_report
from rnnlab.report.figures import Curves, comparison_plot, curves_plot
from rnnlab.text import format_number

PNG = b"\x89PNG\r\n\x1a\n"


def train_adding(out, *flags):
    """A few seconds of `rnnlab train --task adding` on 30-step sequences, into `out`."""
    args = ["train", "--task", "adding", "--task.length=30", "--task.batch_size=16", "--task.val_size=64"]
    args += ["--task.test_size=64", "--steps=20", "--eval.every=10", "--model.hidden_size=8"]
    assert main([*args, *flags, "--out", str(out), "--quiet"]) == 0
    return out


def write_series(path, n=120):
    """A monthly series with a trend and a season of 12, strictly positive."""
    t = np.arange(n)
    y = 100 + 0.5 * t + 5 * np.sin(2 * np.pi * t / 12) + 0.3 * np.random.default_rng(0).standard_normal(n)
    lines = ["month,sales"] + [f"{1990 + i // 12}-{i % 12 + 1:02d}-01,{v:.5f}" for i, v in enumerate(y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_long_csv(path, n_per_class=12):
    """Sequences of 3-9 steps whose class is the sign of their mean."""
    rng = np.random.default_rng(0)
    lines = ["id,step,a,label"]
    for i in range(2 * n_per_class):
        label = "up" if i % 2 else "down"
        for t in range(3 + i % 7):
            lines.append(f"s{i},{t},{(1 if label == 'up' else -1) + 0.3 * rng.standard_normal():.4f},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Page(HTMLParser):
    """What the tests read of the page: its images, the summary table's body rows, its text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.summary_rows = 0
        self.captions = 0
        self.sections: list[str | None] = []
        self.text: list[str] = []
        self._where: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        elif tag == "table" and a.get("id") == "summary":
            self._where.append("summary")
        elif tag == "tbody" and self._where[-1:] == ["summary"]:
            self._where.append("body")
        elif tag == "tr" and self._where[-2:] == ["summary", "body"]:
            self.summary_rows += 1
        elif tag == "figcaption":
            self.captions += 1
        elif tag == "section" and a.get("class") == "run":
            self.sections.append(a.get("id"))

    def handle_endtag(self, tag):
        if (
            tag == "tbody"
            and self._where[-1:] == ["body"]
            or tag == "table"
            and self._where[-1:] == ["summary"]
        ):
            self._where.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An RNN probed every 10 steps, an LSTM without diagnostics, a forecast and a classification run."""
    root = tmp_path_factory.mktemp("runs")
    forecast = ["train", "--task", "forecast", "--task.path", str(write_series(root / "sales.csv"))]
    forecast += ["--task.target=sales", "--task.time=month", "--task.lookback=12", "--task.horizon=3"]
    forecast += ["--model.hidden_size=8", "--steps=20", "--eval.every=10", "--out", str(root / "forecast")]
    classify = ["train", "--task", "classify", "--task.path", str(write_long_csv(root / "seq.csv"))]
    classify += ["--model.hidden_size=8", "--steps=20", "--eval.every=10", "--out", str(root / "classify")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest (as conftest's per-test fixture does)
    try:
        assert main([*forecast, "--quiet"]) == 0 and main([*classify, "--quiet"]) == 0
        diagnosed = ("--model.cell=rnn", "--diagnostics.every=10", "--diagnostics.plots=false")
        return [
            train_adding(root / "rnn", *diagnosed),
            train_adding(root / "lstm"),
            root / "forecast",
            root / "classify",
        ]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    path = write_report(runs, out, title="four runs", labels=["tanh RNN", "LSTM", "sales", "signs"])
    return path, path.read_text(encoding="utf-8")


def test_the_page_is_one_html_file_with_a_table_row_and_a_section_per_run(report):
    path, text = report
    assert path.is_file() and text.startswith("<!DOCTYPE html>")
    page = parse(text)
    assert page.summary_rows == 4
    assert len(page.sections) == 4 and all(f'href="#{anchor}"' in text for anchor in page.sections)
    assert "four runs" in "".join(page.text)


def test_every_figure_is_an_embedded_png_with_alt_text_and_a_caption(report):
    _, text = report
    page = parse(text)
    assert len(page.images) >= 8  # comparison, 4 curves, the RNN's diagnostics, 2 exhibits
    assert page.captions >= len(page.images)
    for image in page.images:
        src, alt = image.get("src") or "", image.get("alt")
        assert src.startswith("data:image/png;base64,") and alt
        try:
            data = base64.b64decode(src.split(",", 1)[1], validate=True)
        except binascii.Error:
            pytest.fail(f"the figure {alt!r} is not base64")
        assert data.startswith(PNG), alt


def test_the_page_needs_nothing_from_outside(report):
    _, text = report
    lowered = text.lower()
    assert "http://" not in lowered and "https://" not in lowered and "<script" not in lowered
    assert "src=" not in lowered.replace('src="data:', "")  # every source inside the file


def test_the_diagnosed_run_shows_its_verdict_and_remedies_and_the_other_says_it_has_none(runs, report):
    _, text = report
    page_text = "".join(parse(text).text)
    last = json.loads((runs[0] / "diagnostics.jsonl").read_text().splitlines()[-1])
    verdict = last["layers"]["encoder.l0"]["verdict"]
    assert verdict["evidence"] and verdict["evidence"] in page_text
    assert f"encoder.l0: {verdict['name']}" in page_text  # in the summary table
    for remedy in verdict["remedies"]:
        assert " ".join(f"--{part}" for part in remedy.split()) in page_text
    assert page_text.count("no diagnostics: train with --diagnostics.every=N") == 3


def test_the_table_gives_each_run_its_scores_beside_the_baseline(runs, report):
    _, text = report
    summary = json.loads((runs[2] / "summary.json").read_text())
    metric = summary["best"]["metric"].removeprefix("val ")
    row = text.split('<table id="summary">')[1].split("</table>")[0].split("<tr>")[4]  # the forecast's
    assert "sales" in row and format_number(summary["baseline"][metric]) in row
    assert format_number(summary["test"][metric]) in row


def test_task_exhibits_show_a_forecast_and_a_confusion_matrix(report):
    _, text = report
    alts = {image.get("alt") for image in parse(text).images}
    assert {"sales: forecast against the truth", "signs: confusion matrix"} <= alts
    assert "the adding task offers none" in text


def test_a_run_built_in_python_says_why_it_has_no_exhibits(tmp_path):
    x = torch.rand(40, 5, 1)
    task = rnnlab.tasks.TensorTask(x, x.mean(dim=1), loss="mse", val=(x[:8], x[:8].mean(dim=1)))
    model = rnnlab.SequenceModel(1, 4, 1, cell="gru")
    rnnlab.train(model, task, rnnlab.TrainConfig(steps=3, out=str(tmp_path / "py")), progress=False)
    text = write_report([tmp_path / "py"], tmp_path / "r.html").read_text()
    assert "no task exhibits: the run cannot be reopened" in text and "built in Python" in text
    assert parse(text).summary_rows == 1


def test_an_existing_file_is_kept_unless_overwritten(runs, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("mine")
    with pytest.raises(RunFolderError, match="exists; give another name, or replace it with --overwrite"):
        write_report(runs[1:2], out)
    assert out.read_text() == "mine"
    write_report(runs[1:2], out, overwrite=True, exhibits=False)
    assert parse(out.read_text()).summary_rows == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left


def test_a_folder_that_is_no_run_is_named_with_what_it_lacks(runs, tmp_path):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    (empty / "summary.json").write_text("{}")
    with pytest.raises(RunFolderError, match=r"not-a-run.*no metrics\.jsonl"):
        write_report([runs[1], empty], tmp_path / "r.html")
    with pytest.raises(RunFolderError, match="nowhere: no such run folder"):
        write_report([tmp_path / "nowhere"], tmp_path / "r.html")
    with pytest.raises(ConfigError, match="no run folders"):
        write_report([], tmp_path / "r.html")
    with pytest.raises(ConfigError, match="one label per run"):
        write_report(runs[:2], tmp_path / "r.html", labels=["one"])
    assert not (tmp_path / "r.html").exists()


def test_the_keep_gate_plot_draws_each_layers_median_over_training():
    def record(step, median):
        quantiles = {
            "q05": median - 0.2,
            "q25": median - 0.1,
            "q50": median,
            "q75": median + 0.05,
            "q95": 0.99,
        }
        keep = {"name": "f", "quantiles": quantiles}
        return {"step": step, "layers": {"l0": {"saturation": {"keep_gate": keep}}, "l1": {"saturation": {}}}}

    fig = plots.keep_gate_plot([record(0, 0.5), record(10, 0.7), record(20, 0.9)])
    (median,) = [line for line in fig.axes[0].lines if line.get_label().startswith("l0 f")]
    np.testing.assert_allclose(median.get_xdata(), [0, 10, 20])
    np.testing.assert_allclose(median.get_ydata(), [0.5, 0.7, 0.9])
    assert not any(line.get_label().startswith("l1") for line in fig.axes[0].lines)  # no keep gate there
    with pytest.raises(ValueError, match="no layer"):
        plots.keep_gate_plot([{"step": 0, "layers": {"l0": {"saturation": {}}}}])


def test_a_loss_that_falls_by_orders_is_drawn_on_a_log_axis_and_an_accuracy_never():
    def curves(metric, values, maximised, losses=(2.0, 0.2, 0.02, 0.002)):
        pairs = enumerate(zip(losses, values, strict=True))
        rows = [{"split": "val", "step": i, "loss": v, metric: m} for i, (v, m) in pairs]
        return Curves("run", rows, {"best": {"metric": f"val {metric}"}}, maximised)

    falling = curves("mse", [2.0, 0.2, 0.02, 0.002], maximised=False)
    rising = curves("accuracy", [0.01, 0.1, 0.5, 0.99], maximised=True)
    panels = {ax.get_title(): ax.get_yscale() for ax in comparison_plot([falling, rising]).axes}
    assert panels == {"validation mse by run": "log", "validation accuracy by run": "linear"}
    assert [ax.get_yscale() for ax in curves_plot(rising).axes] == ["log", "linear"]  # its loss, its accuracy
    assert len(curves_plot(falling).axes) == 1  # an mse that is the loss is drawn once


def test_a_diverged_runs_spike_is_cut_off_the_chart_and_said_so():
    def curves(label, losses):
        rows = [{"split": "val", "step": i, "loss": v, "mse": v} for i, v in enumerate(losses)]
        return Curves(label, rows, {"best": {"metric": "val mse"}}, False)

    learned = curves("lstm", [0.17, 0.1, 0.01, 0.005])
    diverged = curves("rnn", [0.17, 3e30, 0.17, 0.17])
    (ax,) = comparison_plot([learned, diverged]).axes
    bottom, top = ax.get_ylim()
    assert top <= 1e3 * 0.17 and bottom <= 0.005  # the learned curve spans the panel, the spike does not
    assert ax.get_yscale() == "log"
    assert any("off the chart: values up to 3e+30" in t.get_text() for t in ax.texts)
    (ax,) = comparison_plot([learned]).axes
    assert not ax.texts and ax.get_ylim()[1] < 1  # nothing cut: the axis is matplotlib's own
