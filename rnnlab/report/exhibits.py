"""Task exhibits: what a trained model does on its task, shown from the run's best checkpoint.

    classification   a confusion matrix on the test split (validation without one): a task that
                     reports "accuracy" (classify, text, images)
    forecast         the test windows' forecasts against the truth on the original scale, with the
                     split-conformal interval of the validation errors: a task with `forecast` and
                     `to_values` (forecast)
    sample           text sampled at a fixed seed: a task with a character `vocab` and per-step outputs
                     (charlm)
    attention        the attention maps of a few test pairs, and their translations: a task with
                     `translate` whose model attends (seq2seq)

`exhibits(folder)` reopens the run (`open_run`) and draws every exhibit whose task offers what it needs
(duck typing, in `KINDS`); a run that cannot be reopened (its task or model built in Python, no
checkpoint, its data gone) gives the one-line reason instead. Each exhibit reads a few batches at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from rnnlab.errors import UserError
from rnnlab.numerics import flush_denormals
from rnnlab.report.figures import new_figure
from rnnlab.training.saved import SavedRun, open_run

#: batches a confusion matrix reads at most: enough for its counts, cheap on any data set.
MAX_BATCHES = 20
#: classes up to this many get their counts written in the matrix's cells.
ANNOTATED_CLASSES = 12
#: the coverage of the forecast's interval, as `rnnlab forecast` draws it.
LEVEL = 0.9
#: test windows drawn at most (each `horizon` steps long, side by side).
MAX_WINDOWS = 12
#: the sampled text: its length, temperature and seed (the same text for the same run).
SAMPLE_LENGTH, SAMPLE_TEMPERATURE, SAMPLE_SEED = 400, 0.8, 0


@dataclass
class Exhibit:
    """One exhibit: a figure or a text, its title, and what to look for in it."""

    title: str
    caption: str
    figure: Figure | None = None
    text: str | None = None


def exhibits(folder: str | Path, metrics: Iterable[str]) -> list[Exhibit] | str:
    """The exhibits of the run in `folder` whose validation rows report `metrics`, or the one-line reason
    none can be drawn."""
    try:
        run = open_run(folder, "best")
    except (UserError, OSError) as e:
        return f"no task exhibits: the run cannot be reopened ({e})"
    reported = set(metrics)
    shown = [draw(run) for applies, draw in KINDS if applies(run, reported)]
    return shown or f"no task exhibits: the {run.config.task.name} task offers none"


# ------------------------------------------------------------------------------------- classification


def is_classification(run: SavedRun, metrics: set[str]) -> bool:
    return "accuracy" in metrics and run.task.output == "last"


def confusion_matrix(run: SavedRun) -> Exhibit:
    """Counts of (true, predicted) class over the first MAX_BATCHES test batches (validation without a
    test split), drawn with each true class's row normalised to 1."""
    task, split = run.task, "test"
    model: Any = run.model
    batches = list(islice(task.test_batches(), MAX_BATCHES))
    if not batches:
        split, batches = "validation", list(islice(task.val_batches(), MAX_BATCHES))
    classes = [str(c) for c in getattr(task, "classes", None) or range(task.output_size)]
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    with torch.no_grad(), flush_denormals():
        for batch in batches:
            y, _ = model.forward_with_state(batch.inputs, None, batch.lengths)  # (B, C)
            pairs = batch.targets.reshape(-1) * k + y.argmax(-1).reshape(-1)
            counts += torch.bincount(pairs, minlength=k * k).reshape(k, k).numpy()
    total = int(counts.sum())
    accuracy = np.trace(counts) / max(total, 1)
    fig, (ax,) = new_figure(height=min(6.0, 2.5 + 0.3 * k), width=min(7.0, 3.5 + 0.3 * k))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(k)
    ax.set_xticks(ticks, classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right")
    ax.set_yticks(ticks, classes)
    if k <= ANNOTATED_CLASSES:
        for (i, j), n in np.ndenumerate(counts):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=f"confusion on {total} {split} sequences (accuracy {accuracy:.1%})",
    )
    fig.colorbar(image, ax=ax, label="share of the true class")
    return Exhibit(
        "confusion matrix",
        f"Rows: the true class, columns: the prediction, on the {split} split. A dark diagonal: right "
        "answers; dark cells off it: the classes the model mixes up.",
        figure=fig,
    )


# ------------------------------------------------------------------------------------------- forecast


def is_forecast(run: SavedRun, metrics: set[str]) -> bool:
    return all(callable(getattr(run.task, name, None)) for name in ("forecast", "to_values", "val_batches"))


def forecast_windows(run: SavedRun) -> Exhibit:
    """The test part of the series with the forecasts of every horizon-th test window (they tile it), on
    the original scale, each within the split-conformal interval of the validation windows' errors (as
    `rnnlab forecast` computes it)."""
    from rnnlab.tasks import forecasting as fc

    task: Any = run.task
    horizon, lookback = task.horizon, task.lookback
    with torch.no_grad(), flush_denormals():
        val = next(iter(task.val_batches()))
        level = val.targets[:, -1:].double().numpy()
        errors = task.to_values(val.targets[:, :-1], level) - task.to_values(
            task.forecast(run.model, val.inputs), level
        )
        lower, upper = fc.interval(errors, LEVEL)
        test = next(iter(task.test_batches()))
        level = test.targets[:, -1:].double().numpy()
        forecast = task.to_values(task.forecast(run.model, test.inputs), level)  # (W, horizon)
    values, times = task.data.values[:, 0], task.data.times
    starts = fc.window_starts(len(values), lookback, horizon, task.val_end, len(values))
    chosen = np.arange(0, len(starts), horizon)[-MAX_WINDOWS:]
    first = int(starts[chosen[0]]) - lookback
    fig, (ax,) = new_figure(height=3.4, width=8.0)
    ax.plot(times[first:], values[first:], color="0.25", lw=1.2, label="truth")
    for n, w in enumerate(chosen):
        steps = times[starts[w] : starts[w] + horizon]
        label = "forecast" if n == 0 else None
        ax.plot(steps, forecast[w], color="C0", lw=1.5, label=label)
        interval = f"{LEVEL:.0%} interval" if n == 0 else None
        ax.fill_between(
            steps, forecast[w] + lower, forecast[w] + upper, color="C0", alpha=0.2, label=interval
        )
    ax.set(
        xlabel="time",
        ylabel=str(task.data.target),
        title=f"{task.data.name}: test windows, {horizon} steps ahead each",
    )
    ax.legend(fontsize="small")
    if times.dtype.kind == "M":
        fig.autofmt_xdate()
    return Exhibit(
        "forecast against the truth",
        f"Each blue line forecasts {horizon} steps from the truth before it; the band is where {LEVEL:.0%} "
        "of the validation errors fell. Truth inside the bands: honest intervals; a curve that lags the "
        "truth by a step: the model learned the naive forecast.",
        figure=fig,
    )


# --------------------------------------------------------------------------------------------- sample


def is_character_model(run: SavedRun, metrics: set[str]) -> bool:
    task = run.task
    return (
        task.output == "sequence"
        and callable(getattr(getattr(task, "vocab", None), "decode", None))
        and callable(getattr(task, "inputs", None))
        and callable(getattr(run.model, "forward_with_state", None))
    )


def sampled_text(run: SavedRun) -> Exhibit:
    from rnnlab.sampling import generate

    with flush_denormals():
        text = generate(
            run.model, run.task, "\n", SAMPLE_LENGTH, temperature=SAMPLE_TEMPERATURE, seed=SAMPLE_SEED
        )
    return Exhibit(
        "sampled text",
        f"{SAMPLE_LENGTH} characters sampled at temperature {SAMPLE_TEMPERATURE} (seed {SAMPLE_SEED}) "
        "after a newline. Words and line shapes of the corpus: it learned them; letter soup: not yet.",
        text=text,
    )


# ------------------------------------------------------------------------------------------ attention

#: test pairs whose attention maps are drawn.
ATTENTION_PAIRS = 4


def is_translation(run: SavedRun, metrics: set[str]) -> bool:
    return callable(getattr(run.task, "translate", None))


def attention_maps(run: SavedRun) -> Exhibit:
    """Each of the first ATTENTION_PAIRS test pairs: what the model wrote, and (if it attends) which source
    tokens it looked at for each token it wrote."""
    task: Any = run.task
    model: Any = run.model
    pairs = list(task.test.pairs[:ATTENTION_PAIRS])
    written = task.translate(model, [p.source for p in pairs])
    lines = [f"{p.source}  ->  {w}   (truth: {p.target})" for p, w in zip(pairs, written, strict=True)]
    if getattr(model, "attention", "none") == "none":
        return Exhibit(
            "translations",
            "A few test sources and what the model wrote (no attention: the decoder sees the source only "
            "through the encoder's final state).",
            text="\n".join(lines),
        )
    fig, axes = new_figure(-(-len(pairs) // 2), height=2.6, columns=2)
    for ax, pair in zip(axes, pairs, strict=False):
        src_tokens = task._tokens(pair.source)
        src = task.src_vocab.encode(src_tokens)[None]
        model.eval()
        with torch.no_grad():
            ids = model.greedy(src, torch.tensor([src.shape[1]]))
        out_tokens = task.tgt_vocab.decode(ids[0]) + ["<eos>"]
        weights = model.last_attention[0, : len(out_tokens), : len(src_tokens)].cpu().numpy()
        ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(src_tokens)), src_tokens, fontsize=7, rotation=90)
        ax.set_yticks(range(len(out_tokens)), out_tokens, fontsize=7)
        ax.set(xlabel="source token", ylabel="token written", title=pair.source)
    for ax in axes[len(pairs) :]:
        ax.set_axis_off()
    return Exhibit(
        "attention maps",
        "For each token the model wrote (rows), the weight it gave each source token (columns). A diagonal "
        "band: it reads the source in order; a word spread over several columns depends on several of them "
        "(French 'soixante-cinq' reads the 6 and the 5).",
        figure=fig,
        text="\n".join(lines),
    )


#: (does the run's task offer it, draw it), in the order shown.
KINDS: list[tuple[Callable[[SavedRun, set[str]], bool], Callable[[SavedRun], Exhibit]]] = [
    (is_classification, confusion_matrix),
    (is_forecast, forecast_windows),
    (is_character_model, sampled_text),
    (is_translation, attention_maps),
]
