"""One self-contained HTML page about run folders: what `rnnlab report RUN... --out FILE.html` writes.

    write_report(["runs/rnn", "runs/lstm"], "report.html", labels=["tanh RNN", "LSTM"])

The page opens with a comparison of the runs (their validation curves overlaid beside each task's
memoryless baseline, and a table with one row per run), then gives each run a section: its training
curves, the gradient through time its probes recorded (heatmap, last profile, spectra, saturation, the
keep gate over training) with the last verdict, its evidence and the remedies as command-line flags, what
the trained model does on its task (exhibits.py), and its config.toml. Figures are PNGs inside the file
(base64 `data:` URIs); the style is inline; there is no script and no external URL, so the file can be
mailed, archived or opened offline and shows the same everywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rnnlab.diagnostics import plots
from rnnlab.errors import ConfigError, RunFolderError
from rnnlab.report import exhibits as task_exhibits
from rnnlab.report.figures import Curves, comparison_plot, curves_plot
from rnnlab.text import format_number
from rnnlab.training.config import ModelConfig
from rnnlab.training.run import make_room, write_atomically

#: resolution of the embedded figures: sharp on a screen, a few tens of kB each.
DPI = 90
#: what a run folder must hold to be reported on.
REQUIRED = ("summary.json", "metrics.jsonl")
#: events.jsonl's events that mean trouble in training, and how the table names them.
TROUBLE = {
    "nonfinite": "non-finite",
    "rollback": "rollback",
    "grad_norm_spike": "norm spike",
    "grad_norm_growth": "norm growth",
}
#: settings summary.json records for every model, shown in the table only where they differ from these.
SHOWN_ALWAYS = ("cell", "hidden_size")
NOT_SHOWN = ("execution",)

CAPTIONS = {
    "comparison": "Solid: the validation metric; faint: the same on training batches; dashed: the score of "
    "a model with no memory. A run that stays on its dashed line has learned nothing the task needs memory "
    "for.",
    "curves": "Faint: every training step; dots: validation; star: the test split, scored once at the end; "
    "dashed: the memoryless baseline to beat.",
    "heatmap": "log10 ‖∂L/∂h_t‖ at each probe (rows, training goes down) over the time steps. Bright to the "
    "left: the gradient reaches the first steps; dark to the left: it vanishes before it gets there.",
    "profile": "The gradient reaching each time step at the last probe, log scale. Flat: every step is "
    "learned from; falling to the left by orders of magnitude: the early steps are out of reach.",
    "spectra": "Spectral radius of each recurrent gate block. Well below the dotted 1: a plain recurrence "
    "forgets; above it: it may explode.",
    "saturation": "Share of units in the flat tails of tanh and σ at the last probe. Tall bars: little "
    "gradient passes those units; closed keep gates: the cell forgets every step.",
    "keep gate": "The keep gate's values at each probe: median and bands. Near 1: the cell carries its state "
    "(and the gradient) far; near the dotted line: it forgets every step.",
}


@dataclass
class RunFolder:
    """What the report reads of one run folder."""

    folder: Path
    anchor: str
    curves: Curves
    history: list[dict[str, Any]]  # diagnostics.jsonl
    events: list[dict[str, Any]]
    config: str  # config.toml's text

    @property
    def label(self) -> str:
        return self.curves.label

    @property
    def summary(self) -> Mapping[str, Any]:
        return self.curves.summary


def write_report(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    title: str = "rnnlab report",
    overwrite: bool = False,
    labels: Sequence[str] | None = None,
    exhibits: bool = True,
) -> Path:
    """Write the HTML report of the run folders `runs` to `out` (see the module docstring); returns its path.

    Args:
        runs: run folders, each with summary.json and metrics.jsonl (diagnostics.jsonl, events.jsonl and
            checkpoints are shown where present).
        out: the HTML file; its folder is created. Written atomically: a reader never sees half of it.
        title: the page's heading.
        overwrite: replace an existing `out` (refused otherwise).
        labels: the name shown for each run (default: its folder's name).
        exhibits: reopen each run from its best checkpoint to show what it does on its task.

    Raises:
        ConfigError: no runs, labels that do not match them, `out` exists (without `overwrite`) or is a
            folder. RunFolderError: a run folder missing, or without summary.json or metrics.jsonl.
    """
    out = Path(out)
    if not runs:
        raise ConfigError("no run folders given: name at least one to report on")
    if labels is not None and len(labels) != len(runs):
        raise ConfigError(f"{len(labels)} labels for {len(runs)} run folders: give one label per run")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder: give the report's file name, e.g. {out / 'report.html'}")
    make_room(out, overwrite)
    names = list(labels) if labels is not None else [Path(r).name or str(r) for r in runs]
    folders = [read_run(Path(r), label, i) for i, (r, label) in enumerate(zip(runs, names, strict=True))]
    page = render(folders, title, exhibits)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, page)
    return out


def read_run(folder: Path, label: str, index: int) -> RunFolder:
    """The records of the run in `folder`; a RunFolderError naming the folder and what it lacks."""
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(f"{folder} is not a finished run folder: it has no {' and no '.join(missing)}")
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except json.JSONDecodeError as e:
        raise RunFolderError(f"{folder / 'summary.json'} is not JSON ({e})") from None
    config = folder / "config.toml"
    text = config.read_text() if config.is_file() else ""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "run"
    return RunFolder(
        folder=folder,
        anchor=f"run-{index + 1}-{slug}",
        curves=Curves(label, _read_lines(folder / "metrics.jsonl"), summary, _maximised(text)),
        history=_read_lines(folder / "diagnostics.jsonl"),
        events=_read_lines(folder / "events.jsonl"),
        config=text,
    )


def _maximised(config: str) -> bool:
    """Whether the run's config.toml says its validation metric is one to raise ([eval] mode = "max")."""
    try:
        return tomllib.loads(config).get("eval", {}).get("mode") == "max"
    except tomllib.TOMLDecodeError:
        return False


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The objects of a .jsonl file ([] when it is absent); a torn last line (a run killed while writing
    it) is left out, as resuming the run would drop it."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise RunFolderError(f"{path}: line {i + 1} is not JSON") from None
    return rows


# ------------------------------------------------------------------------------------------------ page


def render(runs: Sequence[RunFolder], title: str, exhibits: bool = True) -> str:
    """The whole page as HTML text."""
    when = time.strftime("%Y-%m-%d %H:%M")
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<link rel="icon" href="data:,">\n<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n'
    )
    count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    parts = [
        head,
        '<body>\n<main>\n<header id="top">',
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{count}, written {when} by rnnlab</p>\n</header>',
        '<section class="comparison">\n<h2>Comparison</h2>',
        _figure(comparison_plot([r.curves for r in runs]), "validation curves of every run", "comparison"),
        summary_table(runs),
        "</section>",
        *(run_section(r, exhibits) for r in runs),
        "</main>\n</body>\n</html>\n",
    ]
    return "\n".join(parts)


def summary_table(runs: Sequence[RunFolder]) -> str:
    """One row per run: what it trained, its scores (the final and best validation score, the test score)
    beside the baseline, its verdict, trouble in training, wall time and speed."""
    head = (
        "run",
        "task",
        "model",
        "metric",
        "val",
        "baseline",
        "best (step)",
        "test",
        "solved at",
        "verdict",
        "events",
        "time",
        "steps/s",
    )
    numeric = {"val", "baseline", "best (step)", "test", "solved at", "time", "steps/s"}
    header = "".join(f"<th{' class=num' if h in numeric else ''}>{_e(h)}</th>" for h in head)
    classes = {**dict.fromkeys(numeric, "num"), "run": "label"}
    rows = []
    for run in runs:
        s, metric = run.summary, run.curves.metric
        best = s.get("best") or {}
        best_text = _n(best.get("value"))
        if best.get("step") is not None and best.get("value") is not None:
            best_text += f' <span class="dim">({best["step"]})</span>'
        solved = (s.get("solved") or {}).get("step")
        cells = [
            f'<a href="#{run.anchor}">{_e(run.label)}</a>',
            _e(run.curves.task),
            _e(model_text(s)),
            _e(metric),
            _e(_n(((s.get("final") or {}).get("val") or {}).get(metric))),
            _e(_n(run.curves.baseline(metric))),
            best_text,
            _e(_n((s.get("test") or {}).get(metric))),
            _e("–" if solved is None else str(solved)),
            verdict_cell(run.history),
            _e(events_text(run.events)),
            _e(duration(wall_time(run))),
            _e(_n(s.get("steps_per_s"), 3)),
        ]
        tds = "".join(
            f"<td{f' class={classes[h]}' if h in classes else ''}>{c}</td>"
            for h, c in zip(head, cells, strict=True)
        )
        rows.append(f"<tr>{tds}</tr>")
    body = "\n".join(rows)
    return (
        '<div class="scroll"><table id="summary">\n'
        f"<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>"
    )


def run_section(run: RunFolder, exhibits: bool) -> str:
    """A run's section: facts, curves, gradient through time, exhibits, configuration."""
    s = run.summary
    facts = [
        f"folder <code>{_e(str(run.folder))}</code>",
        f"task {_e(task_text(s))}",
        f"model {_e(model_text(s))}",
    ]
    if (s.get("model") or {}).get("parameters") is not None:
        facts.append(f"{s['model']['parameters']:,} parameters")
    if s.get("steps") is not None:
        stopped = f" (stopped: {s['stopped']})" if s.get("stopped") else ""
        facts.append(f"{s['steps']} steps{_e(stopped)}")
    parts = [
        f'<section class="run" id="{run.anchor}">',
        f'<h2>{_e(run.label)} <a class="up" href="#top" title="back to the top">↑</a></h2>',
        f'<p class="meta">{" · ".join(facts)}</p>',
        "<h3>Training</h3>",
        _figure(curves_plot(run.curves), f"{run.label}: training curves", "curves"),
        "<h3>Gradient through time</h3>",
        diagnostics_part(run.history, run.label),
    ]
    if run.events:
        parts.append(events_list(run.events))
    if exhibits:
        parts += ["<h3>On its task</h3>", exhibits_part(run)]
    if run.config:
        parts += ["<details><summary>configuration (config.toml)</summary>", f"<pre>{_e(run.config)}</pre>"]
        parts.append("</details>")
    parts.append("</section>")
    return "\n".join(parts)


def diagnostics_part(history: Sequence[Mapping[str, Any]], label: str) -> str:
    """The verdict and the figures of a run's probes; one line when it has none."""
    if not history:
        return '<p class="missing">no diagnostics: train with --diagnostics.every=N</p>'
    last = history[-1]
    if not last.get("layers"):
        return '<p class="missing">the diagnostics hold no recurrent layer</p>'
    figures = [
        _figure(
            plots.profile_heatmap(history), f"{label}: log10 ‖∂L/∂h_t‖ over time and training", "heatmap"
        ),
        _figure(plots.profile_plot(last), f"{label}: gradient through time at the last probe", "profile"),
        _figure(plots.spectral_radius_plot(history), f"{label}: spectral radius over training", "spectra"),
        _figure(plots.saturation_bars(last), f"{label}: saturation at the last probe", "saturation"),
    ]
    if any(((layer.get("saturation") or {}).get("keep_gate")) for layer in last["layers"].values()):
        figures.append(
            _figure(plots.keep_gate_plot(history), f"{label}: keep gate over training", "keep gate")
        )
    return "\n".join([verdict_part(history), '<div class="figures">', *figures, "</div>"])


def verdict_part(history: Sequence[Mapping[str, Any]]) -> str:
    """The last probe's verdict per layer with its evidence, the remedies as flags, hints and notes;
    then how the verdicts changed over training."""
    last = history[-1]
    rows, advice = [], []
    for name, layer in last["layers"].items():
        v = layer.get("verdict") or {}
        severity = str(v.get("severity", "ok"))
        flags = [f for f in v.get("flags", []) if f != v.get("name")]
        also = f' <span class="dim">(also: {_e(", ".join(flags))})</span>' if flags else ""
        rows.append(
            f"<tr><td><code>{_e(name)}</code></td><td>{_badge(severity)} <b>{_e(v.get('name', '?'))}</b>"
            f"{also}</td><td>{_e(v.get('evidence', ''))}</td></tr>"
        )
        if v.get("remedies"):
            flags_html = " <i>or</i> ".join(f"<code>{_e(remedy_flags(r))}</code>" for r in v["remedies"])
            advice.append(f"<li><code>{_e(name)}</code>: try {flags_html}</li>")
        advice += [f"<li><code>{_e(name)}</code>: {_e(h)}</li>" for h in v.get("hints", [])]
        advice += [f'<li class="dim"><code>{_e(name)}</code>: note: {_e(n)}</li>' for n in v.get("notes", [])]
    advice += [f'<li class="dim">note: {_e(n)}</li>' for n in last.get("notes", [])]
    step = f" at step {last['step']}" if "step" in last else ""
    parts = [
        f'<div class="verdict"><p><b>Verdict{_e(step)}</b></p>',
        '<table class="verdicts"><thead><tr><th>layer</th><th>verdict</th><th>evidence</th></tr></thead>',
        f"<tbody>{''.join(rows)}</tbody></table>",
    ]
    if advice:
        parts.append(f"<ul>{''.join(advice)}</ul>")
    changes = verdict_changes(history)
    if len(history) > 1:
        parts.append(f'<p class="dim">over training: {_e(changes)}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def verdict_changes(history: Sequence[Mapping[str, Any]]) -> str:
    """Each layer's verdict at the first probe and wherever it or its severity changed:
    "encoder.l0: vanishing (note) at step 10, healthy (ok) at step 40"."""
    said: dict[str, list[str]] = {}
    previous: dict[str, tuple[str, str]] = {}
    for record in history:
        for name, layer in (record.get("layers") or {}).items():
            v = layer.get("verdict") or {}
            now = (str(v.get("name", "?")), str(v.get("severity", "?")))
            if previous.get(name) != now:
                said.setdefault(name, []).append(f"{now[0]} ({now[1]}) at step {record.get('step', '?')}")
                previous[name] = now
    return "; ".join(f"{name}: {', '.join(items)}" for name, items in said.items())


def exhibits_part(run: RunFolder) -> str:
    """The task exhibits of a run, or the line saying why there are none."""
    metrics = ((run.summary.get("final") or {}).get("val") or {}).keys() | (
        run.summary.get("test") or {}
    ).keys()
    shown = task_exhibits.exhibits(run.folder, metrics)
    if isinstance(shown, str):
        return f'<p class="missing">{_e(shown)}</p>'
    parts = []
    for exhibit in shown:
        if exhibit.figure is not None:
            parts.append(_figure(exhibit.figure, f"{run.label}: {exhibit.title}", caption=exhibit.caption))
        if exhibit.text is not None:
            parts.append(
                f"<figure><pre class=sample>{_e(exhibit.text)}</pre>"
                f"<figcaption>{_e(exhibit.caption)}</figcaption></figure>"
            )
    return "\n".join(parts)


def events_list(events: Sequence[Mapping[str, Any]], most: int = 20) -> str:
    """What events.jsonl recorded, one line each (the first `most`)."""
    items = []
    for e in events[:most]:
        details = ", ".join(f"{k} {_value(v)}" for k, v in e.items() if k not in ("event", "step"))
        step, event = _e(str(e.get("step", "?"))), _e(str(e.get("event", "?")))
        items.append(f"<li>step {step}: <b>{event}</b> {_e(details)}</li>")
    more = f"<li>… and {len(events) - most} more in events.jsonl</li>" if len(events) > most else ""
    head = f'<details class="events"><summary>events ({len(events)})</summary>'
    return f"{head}<ul>{''.join(items)}{more}</ul></details>"


# ----------------------------------------------------------------------------------------------- cells


def model_text(summary: Mapping[str, Any]) -> str:
    """The model in a few words, "lstm H=32, chrono=30": the cell, its width, and every setting that
    differs from `[model]`'s default."""
    model = summary.get("model") or {}
    settings = model.get("settings")
    if not settings:
        return str(model.get("class", "?")).rsplit(".", 1)[-1]
    defaults = {f.name: f.default for f in fields(ModelConfig)}
    text = f"{settings.get('cell', '?')} H={settings.get('hidden_size', '?')}"
    others = [
        f"{k}={_value(v)}"
        for k, v in settings.items()
        if k not in SHOWN_ALWAYS and k not in NOT_SHOWN and defaults.get(k, object()) != v
    ]
    return ", ".join([text, *others])


def task_text(summary: Mapping[str, Any]) -> str:
    """The task and its settings, less the shapes derived from them: "adding (length=30, batch_size=50)"."""
    task = dict(summary.get("task") or {})
    name = task.pop("name", "?")
    for key in ("class", "input_size", "output_size", "output", "stream"):
        task.pop(key, None)
    shown = ", ".join(f"{k}={_value(v)}" for k, v in task.items() if v not in ("", None))
    return f"{name} ({shown})" if shown else str(name)


def verdict_cell(history: Sequence[Mapping[str, Any]]) -> str:
    """The last probe's verdict of every layer, with its severity; "–" without diagnostics."""
    if not history:
        return "–"
    items = []
    for name, layer in (history[-1].get("layers") or {}).items():
        v = layer.get("verdict") or {}
        items.append(f"{_badge(str(v.get('severity', 'ok')))} {_e(name)}: {_e(v.get('name', '?'))}")
    return "<br>".join(items) or "–"


def events_text(events: Sequence[Mapping[str, Any]]) -> str:
    """The events that mean trouble, counted: "2 non-finite, 1 rollback"; "none" without them."""
    counts = Counter(TROUBLE[e["event"]] for e in events if e.get("event") in TROUBLE)
    return ", ".join(f"{n} {what}" for what, n in counts.items()) or "none"


def wall_time(run: RunFolder) -> float | None:
    """summary.json's wall time, else the last time_s in metrics.jsonl."""
    if run.summary.get("wall_time_s") is not None:
        return float(run.summary["wall_time_s"])
    times = [r["time_s"] for r in run.curves.rows if isinstance(r.get("time_s"), int | float)]
    return float(times[-1]) if times else None


def duration(seconds: float | None) -> str:
    """A wall time for people: "42 s", "3 min 12 s", "2 h 05 min"; "–" when unknown."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{format_number(seconds, 2)} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def remedy_flags(remedy: str) -> str:
    """A verdict's remedy (space-separated key=value overrides) as command-line flags:
    "model.cell=lstm model.chrono=30" -> "--model.cell=lstm --model.chrono=30"."""
    return " ".join(f"--{part}" for part in remedy.split())


# --------------------------------------------------------------------------------------------- helpers


def _figure(fig: Figure, alt: str, kind: str = "", caption: str = "") -> str:
    """A figure as an embedded PNG with its alt text and caption (CAPTIONS[kind] unless given)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(x) for x in fig.get_size_inches() * DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = caption or CAPTIONS.get(kind, "")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}" width="{width}" height="{height}">'
        f"<figcaption>{_e(text)}</figcaption></figure>"
    )


def _badge(severity: str) -> str:
    return f'<span class="badge {_e(severity)}">{_e(severity)}</span>'


def _n(x: Any, digits: int = 4) -> str:
    """A table number; "–" where there is none."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return "–"
    return format_number(x, digits)


def _value(v: Any) -> str:
    return format_number(v, 4) if isinstance(v, float) else str(v)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


STYLE = """
:root { --ink: #1d2330; --dim: #5f6b7a; --line: #dde1e7; --paper: #ffffff; --back: #f4f5f7;
  --accent: #2a5db0; --alarm: #b3261e; --note: #a15c00; --ok: #1e7a3c; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--back); color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 21px; margin: 0 0 8px; }
h3 { font-size: 16px; margin: 26px 0 8px; color: var(--accent); text-transform: uppercase;
  letter-spacing: 0.04em; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin: 22px 0; box-shadow: 0 1px 2px rgba(0, 0, 0, 0.04); }
.meta, .dim { color: var(--dim); }
.meta { margin: 0 0 12px; font-size: 14px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
a.up { font-size: 15px; margin-left: 6px; }
code, pre { font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
code { background: #eef1f5; padding: 1px 5px; border-radius: 4px; }
pre { background: #f7f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
  overflow-x: auto; white-space: pre-wrap; }
pre.sample { max-height: 340px; overflow-y: auto; }
figure { margin: 14px 0 22px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 6px; }
figcaption { color: var(--dim); font-size: 13.5px; margin-top: 6px; max-width: 760px; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 0 22px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 5px 7px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f0f2f5; font-weight: 600; white-space: nowrap; }
tbody tr:hover { background: #fafbfc; }
td.label { white-space: nowrap; }
.badge { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; min-width: 3.6em; text-align: center; padding: 0 6px; border-radius: 9px;
  font-size: 11.5px; font-weight: 600; color: #fff; background: var(--dim); }
.badge.alarm { background: var(--alarm); } .badge.note { background: var(--note); }
.badge.ok { background: var(--ok); }
.verdict { background: #fbfbfd; border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 8px;
  margin-bottom: 12px; }
.verdict ul { padding-left: 20px; }
.missing { color: var(--dim); font-style: italic; }
details { margin: 10px 0; }
summary { cursor: pointer; color: var(--accent); }
"""
