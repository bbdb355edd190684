"""Backtest a forecaster and forecast past the end of the series: what `rnnlab forecast` does.

    result = rnnlab.backtest.forecast_series(settings, out="forecast/", steps=None)

1. Backtest: train the forecasting recipe on the training part (early stopping on the validation MASE,
   the best weights kept) in `out/backtest/`, and score it on the test part beside the naive, seasonal
   naive and ETS forecasts of exactly the same windows (`backtest.csv`).
2. Intervals: the model's absolute errors on the validation windows give, per step ahead, the half-width
   that `level` of them stay within (split conformal prediction).
3. Forecast: train the same model afresh on the whole series for as many steps as the backtest's best
   (`out/final/`), and forecast the `horizon` steps after the last row: `forecast.csv` (time, forecast,
   lower, upper) and `forecast.png` (the history, the forecast, the interval).

Nothing in `out` is overwritten: it must not exist (or be empty).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.errors import RunFolderError
from rnnlab.tasks import forecasting as fc
from rnnlab.tasks.forecast import ForecastTask
from rnnlab.training import config as cfg
from rnnlab.training.build import build_model, seed_everything
from rnnlab.training.loop import train


@dataclass
class Forecast:
    """What `forecast_series` wrote: the backtest's scores by forecaster, and the forecast itself."""

    out: Path
    backtest: dict[str, dict[str, float]]
    times: np.ndarray
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    files: list[Path] = field(default_factory=list)


def forecast_series(
    given: dict[str, Any],
    out: str | Path,
    level: float = 0.9,
    progress: bool = False,
    say: Any = print,
    quiet: bool = False,
) -> Forecast:
    """Backtest, intervals and the forecast (see the module docstring) for the settings `given` (flat
    config overrides, `{"task.path": "sales.csv", "task.target": "sales", "task.horizon": "12"}`; the
    forecast task's recipe fills the rest)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunFolderError(f"{out} exists and is not empty: give a new folder (nothing is overwritten)")
    config, _ = cfg.compose({"task.name": "forecast", **given, "out": str(out / "backtest")})
    config.eval.restore_best = True
    seed_everything(config.seed, config.deterministic)
    task = ForecastTask.from_config(config.task)
    assert isinstance(task, ForecastTask)
    say(f"backtest: training on {task.train_end} of {len(task.data)} steps of {task.data.name}")
    model = build_model(config.model, task)
    history = train(model, task, config, progress=progress, quiet=quiet)
    scores = {"rnnlab": history.summary["test"], **history.summary["test_baselines"]}

    lower, upper = _interval(model, task, level)
    best = history.summary["best"]["step"] or config.steps
    final = cfg.override(config, {"task.fit_on": "all", "steps": str(best), "out": str(out / "final")})
    final.eval.patience, final.eval.restore_best, final.eval.every = 0, False, 0
    say(f"final: training on all {len(task.data)} steps for {best} steps (the backtest's best)")
    seed_everything(final.seed, final.deterministic)
    whole = ForecastTask.from_config(final.task)
    assert isinstance(whole, ForecastTask)
    final_model = build_model(final.model, whole)
    train(final_model, whole, final, progress=progress, quiet=quiet)
    final_model.eval()
    with torch.no_grad():
        values = whole.to_values(whole.forecast(final_model, whole.future_inputs()))[0]
    result = Forecast(out, scores, whole.future_times(), values, values + lower, values + upper)
    result.files = [_write_forecast(result), _write_backtest(result), _plot(result, whole, level)]
    return result


def _interval(model: Any, task: ForecastTask, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per step ahead, the split-conformal interval (`forecasting.interval`) of the backtest model's errors
    on the validation windows, on the original scale."""
    batch = next(iter(task.val_batches()))
    model.eval()
    with torch.no_grad():
        outputs = task.predict(model, batch)
    level_scaled = batch.targets[:, -1:].double().numpy()
    errors = task.to_values(batch.targets[:, :-1], level_scaled) - task.to_values(outputs, level_scaled)
    return fc.interval(errors, level)


def _write_forecast(f: Forecast) -> Path:
    path = f.out / "forecast.csv"
    with path.open("w", newline="") as file:
        w = csv.writer(file)
        w.writerow(["time", "forecast", "lower", "upper"])
        for row in zip(_time_text(f.times), f.values, f.lower, f.upper, strict=True):
            w.writerow([row[0], *(f"{v:.6g}" for v in row[1:])])
    return path


def _time_text(times: np.ndarray) -> list[str]:
    """Timestamps as dates when they all fall at midnight, else to the second; step numbers as numbers."""
    if times.dtype.kind != "M":
        return [str(t) for t in times]
    days = times.astype("datetime64[D]")
    shown = days if (days == times).all() else times.astype("datetime64[s]")
    return [str(t) for t in shown]


def _write_backtest(f: Forecast) -> Path:
    """backtest.csv: each forecaster's test MAE, RMSE, sMAPE and MASE, rnnlab first."""
    path = f.out / "backtest.csv"
    names = ("mae", "rmse", "smape", "mase")
    with path.open("w", newline="") as file:
        w = csv.writer(file)
        w.writerow(["forecaster", *names])
        for forecaster, scores in f.backtest.items():
            w.writerow([forecaster, *(f"{scores[n]:.6g}" for n in names)])
    return path


def _plot(f: Forecast, task: ForecastTask, level: float) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    times, history = task.data.times, task.data.values[:, 0]
    shown = slice(max(0, len(history) - 8 * task.horizon - task.lookback), None)
    ax.plot(times[shown], history[shown], color="0.3", label="history")
    ax.plot(f.times, f.values, color="C0", label="forecast")
    ax.fill_between(f.times, f.lower, f.upper, color="C0", alpha=0.25, label=f"{level:.0%} interval")
    ax.set_xlabel("time")
    ax.set_ylabel(task.data.target)
    ax.set_title(f"{task.data.name}: {task.horizon} steps ahead")
    ax.legend()
    fig.autofmt_xdate()
    path = f.out / "forecast.png"
    fig.savefig(path, dpi=100)
    return path


def table(scores: dict[str, dict[str, float]]) -> str:
    """The backtest as text: one line per forecaster, MAE, RMSE, sMAPE (%) and MASE."""
    lines = [f"{'forecaster':16s} {'MAE':>10s} {'RMSE':>10s} {'sMAPE':>8s} {'MASE':>7s}"]
    for name, s in scores.items():
        lines.append(f"{name:16s} {s['mae']:10.4g} {s['rmse']:10.4g} {s['smape']:8.3g} {s['mase']:7.3f}")
    return "\n".join(lines)


__all__ = ["Forecast", "forecast_series", "table"]
