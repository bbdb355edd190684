"""Forecasting: `horizon` steps of a series from the `lookback` steps before them, beside the baselines.

    --task forecast                               the airline passengers (sktime's: rnnlab data get sktime)
    --task forecast --task.series co2                  sunspots, co2, elnino (statsmodels), airline, msft
    --task forecast --task.path F.csv --task.target COL [--task.time COL] [--task.features A,B]

The series is cut chronologically (`forecasting.split_points`): training windows have all their targets
before the validation part, validation windows before the test part, and every column is scaled with the
training rows' mean and standard deviation only. The model reads `lookback` steps of every column and
predicts the `horizon` next values of the target at once (the direct strategy: one output per step ahead),
or (`strategy="recursive"`) learns the next step of every column and forecasts by running `horizon` times
on its own predictions (`predict`, which evaluation uses).
Each window is seen relative to its level, the last value it reads of each column: that is subtracted from
the column's inputs, and the target's from the targets, and added back to the forecast. A network then
learns how the series moves from where it is, which carries over to levels it never saw in training (a
trend takes the test part past the training range), and a zero output is the naive forecast. The targets
tensor carries each window's level in its last column for that (`loss` and `metrics` read it). A column
that is always positive is modelled as its log (`transform`), so that a season whose swing grows with the
level (the airline passengers) becomes one of constant size and a price's moves become returns; the
forecast is exp of the output.
Metrics are on the original scale: MAE, RMSE, sMAPE and MASE (scaled by the seasonal naive forecast's
in-sample error on the training part). The baseline beside them is the naive forecast (the last value
repeated) on the same windows; `baselines(split)` adds the seasonal naive forecast and exponential smoothing
(statsmodels' ETS, fitted on the training and validation parts) on exactly the same points, and
`summary.json` records them for the test split.

A CSV of the user's to evaluate on or predict for (`input_batches`) is in the format of the run's series:
its target and feature columns, and its time column when the run had one (a bundled series' file has the
target column and its rows are the steps). It is scaled (and logged) as the training rows were. To evaluate:
every window of the file, `lookback` steps then the `horizon` after them, in one batch; to predict: the
`horizon` steps after the file's last row, rows {"time", "step", "forecast"} on the original scale
(`prediction_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnlab.errors import DataError
from rnnlab.settings import option
from rnnlab.tasks import forecasting as fc
from rnnlab.tasks.base import Batch, Task
from rnnlab.tasks.config import TaskConfig
from rnnlab.tasks.series_files import BUNDLED, Series, load_series, read_series_csv


class ForecastTask(Task):
    """Forecast a series `horizon` steps ahead (see the module docstring).

    Args:
        series: a bundled series (`series_files.BUNDLED`), when no path is given.
        path: your CSV file ("" for the bundled series); target, time, features: its columns (features
            comma-separated: extra inputs besides the target); gaps: "refuse" or "fill" missing values and
            timestamps.
        lookback: steps the model reads; horizon: steps it forecasts.
        period: the seasonal period in steps (0: the series' known one, else detected from the training
            part; the seasonal baselines and MASE use it).
        val_fraction, test_fraction: the chronological shares of the validation and test parts.
        batch_size: training windows per batch.
    """

    name = "forecast"
    output = "last"

    @dataclass
    class Settings(TaskConfig):
        name: str = option("forecast", "task to train on, from rnnlab.tasks.TASKS")
        series: str = option("airline", "a bundled series, when no path is given", choices=tuple(BUNDLED))
        path: str = option("", "your CSV file (empty: the bundled series)")
        target: str = option("", "the CSV column to forecast")
        time: str = option("", "the CSV column of the timestamps (empty: the rows are the steps)")
        features: str = option("", "comma-separated CSV columns read as extra inputs")
        gaps: str = option("refuse", "missing values or timestamps in the CSV", choices=("refuse", "fill"))
        transform: str = option(
            "auto",
            "model the columns as their logs (auto: those always positive; log: and the target must be)",
            choices=("auto", "log", "none"),
        )
        lookback: int = option(24, "steps the model reads before each forecast", min=1)
        horizon: int = option(12, "steps forecast", min=1)
        strategy: str = option(
            "direct",
            "forecast the horizon at once (direct), or one step at a time on the model's own outputs",
            choices=("direct", "recursive"),
        )
        period: int = option(0, "seasonal period in steps (0: known or detected)", min=0)
        val_fraction: float = option(0.15, "the validation part, before the test part", gt=0, lt=1)
        test_fraction: float = option(0.15, "the test part, at the end of the series", gt=0, lt=1)
        batch_size: int = option(32, "training windows per batch", min=1)
        fit_on: str = option(
            "train",
            "learn from the training part (and score the later parts), or from all (the final forecast)",
            choices=("train", "all"),
        )

    def __init__(
        self,
        series: str = "airline",
        path: str = "",
        target: str = "",
        time: str = "",
        features: str = "",
        gaps: str = "refuse",
        transform: str = "auto",
        lookback: int = 24,
        horizon: int = 12,
        strategy: str = "direct",
        period: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 32,
        fit_on: str = "train",
    ) -> None:
        self.series, self.path, self.target, self.time, self.features = series, path, target, time, features
        self.gaps, self.transform, self.lookback, self.horizon, self.period = (
            gaps,
            transform,
            lookback,
            horizon,
            period,
        )
        self.strategy = strategy
        self.val_fraction, self.test_fraction, self.batch_size = val_fraction, test_fraction, batch_size
        self.fit_on = fit_on
        self.data = self._read()
        values = self.data.values
        self.train_end, self.val_end = fc.split_points(
            len(values), val_fraction, test_fraction, lookback, horizon
        )
        self.season = period or self.data.period or fc.detect_period(values[: self.train_end, 0], lookback)
        positive: np.ndarray = np.asarray((values > 0).all(axis=0))  # (F,) bool
        if transform == "log" and not positive[0]:
            raise DataError(
                f"task.transform: log needs a positive target, but {self.data.target} has values <= 0"
            )
        #: the columns modelled as their logs: every always-positive one, unless transform is "none"
        self.logged = positive & (transform != "none")
        self.log = bool(self.logged[0])
        modelled = values.copy()
        modelled[:, self.logged] = np.log(modelled[:, self.logged])
        fitted = len(values) if fit_on == "all" else self.train_end  # the rows the model learns from
        self.scaler = fc.Scaler.fit(modelled, fitted)
        self.scaled = self.scaler.transform(modelled)
        # direct: the horizon's target values; recursive: the next step of every column
        self.input_size = values.shape[1]
        self.output_size = horizon if strategy == "direct" else values.shape[1]
        self._parts = {
            "train": (0, fitted),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, len(values)),
        }

    def _read(self) -> Series:
        if not self.path:
            return load_series(self.series)
        extra = tuple(c.strip() for c in self.features.split(",") if c.strip())
        return read_series_csv(self.path, self.target, self.time or None, extra, self.gaps)  # type: ignore[arg-type]

    def _windows(self, split: str) -> tuple[Tensor, Tensor]:
        """Inputs (W, lookback, F) and targets (W, horizon + 1), relative to each window's level (the last
        target value read), which the targets carry in their last column. Training windows of the recursive
        strategy have targets (W, F + 1) instead: the next step of every column."""
        start, end = self._parts[split]
        if split == "train" and self.strategy == "recursive":
            x, _ = fc.windows(self.scaled, self.lookback, 1, start, end)
            starts = fc.window_starts(len(self.scaled), self.lookback, 1, start, end)
            levels = x[:, -1, :].copy()  # (W, F)
            x -= levels[:, None, :]
            nxt = self.scaled[starts] - levels
            targets = np.concatenate([nxt, levels[:, :1]], axis=1)
            return torch.from_numpy(x).float(), torch.from_numpy(targets).float()
        windows = self._relative(self.scaled, self.data.times, start, end)
        return windows.inputs, windows.targets

    def _relative(self, scaled: np.ndarray, times: np.ndarray, start: int, end: int) -> Batch:
        """Every window of the `scaled` rows with its targets in [start, end), relative to its level (see
        `_windows`), each with the `times` of its targets as its id."""
        x, y = fc.windows(scaled, self.lookback, self.horizon, start, end)
        levels = x[:, -1:, :].copy()  # (W, 1, F): each column relative to its last value read
        x -= levels
        level = levels[:, 0, :1]  # the target's, (W, 1)
        targets = np.concatenate([y - level, level], axis=1)
        starts = fc.window_starts(len(scaled), self.lookback, self.horizon, start, end)
        ids = tuple(tuple(_plain(times[s : s + self.horizon])) for s in starts)
        return Batch(torch.from_numpy(x).float(), torch.from_numpy(targets).float(), ids=ids)

    def input_batches(self, path: Path, labelled: bool = True) -> list[Batch]:
        """A CSV in the format of the run's series (see the module docstring), scaled as the training rows:
        every window of it (`labelled`), or the window of its last `lookback` rows, whose targets are
        zeros but for its level (the last column, as every window's), with the times of the `horizon`
        steps after the file as its id."""
        path = Path(path)
        time = self.time if self.path else ""
        data = read_series_csv(path, self.data.target, time or None, self.data.columns[1:], self.gaps)  # type: ignore[arg-type]
        need = self.lookback + (self.horizon if labelled else 0)
        if len(data) < need:
            what = f"lookback {self.lookback} + horizon {self.horizon}" if labelled else "lookback"
            raise DataError(f"{path}: {len(data)} rows, but one window needs {what} = {need} of them")
        scaled = self._scaled(data, path)
        if labelled:
            return [self._relative(scaled, data.times, 0, len(data))]
        x = self._last_window(scaled)
        targets = torch.zeros(1, self.horizon + 1)
        targets[:, -1] = float(scaled[-1, 0])
        times = self._times_after(data.times, data.frequency or self.data.frequency, path)
        return [Batch(x, targets, ids=(tuple(_plain(times)),))]

    def _scaled(self, data: Series, where: Path) -> np.ndarray:
        """A series' values modelled (logged) and scaled as the training rows were."""
        values = data.values.copy()
        for column in np.flatnonzero(self.logged):
            bad = np.flatnonzero(values[:, column] <= 0)
            if bad.size:
                raise DataError(
                    f"{where}: column {data.columns[column]!r} holds {values[bad[0], column]:g} (its row "
                    f"{bad[0] + 1}), but the run models it as its log, which needs values above 0"
                )
            values[:, column] = np.log(values[:, column])
        return self.scaler.transform(values)

    def prediction_rows(self, outputs: Tensor, batch: Batch) -> list[dict[str, Any]]:
        """The forecasts (W, horizon) of `batch` (`predict(model, batch)`'s) on the original scale, one row
        per window and step ahead: {"time": the step's time, "step": 1..horizon, "forecast": value}."""
        level = batch.targets[:, -1:].double().cpu().numpy()
        values = self.to_values(outputs, level)  # (W, horizon)
        rows = []
        for i, window in enumerate(values.tolist()):
            times = batch.ids[i] if batch.ids is not None else [None] * self.horizon
            rows += [
                {"time": t, "step": k, "forecast": v}
                for k, (t, v) in enumerate(zip(times, window, strict=True), start=1)
            ]
        return rows

    def predict(self, model: Any, batch: Batch) -> Tensor:
        """The forecasts (W, horizon) of an evaluation batch: the model's outputs (direct), or the model
        run `horizon` times, each time on its own last prediction (recursive)."""
        return self.forecast(model, batch.inputs)

    def forecast(self, model: Any, inputs: Tensor) -> Tensor:
        """Forecasts (W, horizon) relative to each window's level, from inputs (W, lookback, F) relative to
        it. Recursive: each step's prediction of every column is appended to the window, which is moved
        on and centred again on its new last row, as in training, and the moves add up to the forecast."""
        if self.strategy == "direct":
            return model(inputs)
        x, offset, steps = inputs, torch.zeros_like(inputs[:, -1, :]), []
        for _ in range(self.horizon):
            move = model(x)  # (W, F): the next step, relative to the window's last row
            offset = offset + move
            steps.append(offset[:, 0])
            x = torch.cat([x[:, 1:], x[:, -1:] + move[:, None]], 1) - move[:, None]
        return torch.stack(steps, 1)

    def future_inputs(self) -> Tensor:
        """The model's input for the `horizon` steps after the series ends: its last `lookback` rows,
        relative to their level, (1, lookback, F)."""
        return self._last_window(self.scaled)

    def _last_window(self, scaled: np.ndarray) -> Tensor:
        """(1, lookback, F): the last `lookback` rows of `scaled`, relative to the last one."""
        x = scaled[-self.lookback :][None].copy()
        x -= x[:, -1:, :]
        return torch.from_numpy(x).float()

    def to_values(self, outputs: Tensor, level: np.ndarray | None = None) -> np.ndarray:
        """Model outputs (W, horizon), relative to each window's `level` (the scaled last target value;
        default: the series' last, for `future_inputs`), as values on the original scale."""
        if level is None:
            level = self.scaled[-1:, :1]
        values = self.scaler.inverse(outputs.detach().double().cpu().numpy() + level, column=0)
        return np.exp(values) if self.log else values

    def future_times(self) -> np.ndarray:
        """The timestamps (or step numbers) of the `horizon` steps after the series' end."""
        return self._times_after(self.data.times, self.data.frequency, self.data.name)

    def _times_after(self, times: np.ndarray, freq: str | None, where: Any) -> np.ndarray:
        """The `horizon` timestamps (or step numbers) after the last of `times`, at the step `freq`."""
        if times.dtype.kind != "M":
            return times[-1] + np.arange(1, self.horizon + 1)
        import pandas as pd

        if freq is None and len(times) < 2:
            raise DataError(f"{where}: a single timestamp and no regular step: no time to forecast at")
        if freq is None:  # irregular dates (trading days): step by the median gap
            step = np.median(np.diff(times[-min(len(times), 50) :]))
            return times[-1] + step * np.arange(1, self.horizon + 1)
        future = pd.date_range(pd.Timestamp(times[-1]), periods=self.horizon + 1, freq=freq)[1:]
        return future.to_numpy().astype(times.dtype)

    def train_batches(self, generator: torch.Generator) -> Iterable[Batch]:
        x, y = self._windows("train")
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(order), self.batch_size):
            rows = order[i : i + self.batch_size]
            yield Batch(x[rows], y[rows])

    def val_batches(self) -> Iterable[Batch]:
        return [
            self._relative(self.scaled, self.data.times, *self._parts["val"])
        ]  # one batch: RMSE and MASE over all the windows exactly

    def test_batches(self) -> Iterable[Batch]:
        return [self._relative(self.scaled, self.data.times, *self._parts["test"])]

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(outputs, targets[:, :-1])

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """MAE, RMSE, sMAPE and MASE on the original scale."""
        level = targets[:, -1:].double().cpu().numpy()
        forecast, actual = self.to_values(outputs, level), self.to_values(targets[:, :-1], level)
        return self._scores(actual, forecast)

    def _scores(self, actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
        train = self.data.values[: self.train_end, 0]
        return {
            "mae": fc.mae(actual, forecast),
            "rmse": fc.rmse(actual, forecast),
            "smape": fc.smape(actual, forecast),
            "mase": fc.mase(actual, forecast, train, self.season),
        }

    def baseline(self) -> dict[str, float]:
        """The naive forecast (the last value repeated) on the validation windows."""
        return self.baselines("val")["naive"]

    def baselines(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Each baseline's scores on exactly the windows of `split`: naive, seasonal naive (with a period)
        and ETS (fitted on the parts before the test part; on the test split only)."""
        start, end = self._parts[split]
        values, args = self.data.values, (self.lookback, self.horizon, start, end)
        _, actual = fc.windows(values, *args)
        out = {"naive": self._scores(actual, fc.naive(values, *args))}
        if self.season and self.season > 1:
            try:
                out["seasonal_naive"] = self._scores(
                    actual, fc.seasonal_naive(values, *args, period=self.season)
                )
            except Exception:  # too little history before the first window for one period
                pass
        if split == "test":
            out["ets"] = self._scores(actual, fc.ets(values, *args, fit_end=self.val_end, period=self.season))
        return out

    @classmethod
    def recipe_for(cls, config: TaskConfig) -> dict[str, Any]:
        """A small GRU (H = 32) with weight decay, early stopping on the validation MASE and the best
        weights restored: the series are short. For a bundled series with a calendar season (a period of
        12 or more: monthly, weekly) the model reads three seasons (`task.lookback`), which beat ETS on the
        airline passengers where 24 steps did not (RESULTS.md)."""
        recipe: dict[str, Any] = {
            "model.cell": "gru",
            "model.hidden_size": 32,
            "optim.name": "adamw",
            "optim.lr": 3e-3,
            "optim.weight_decay": 1e-2,
            "clip.mode": "norm",
            "clip.max_norm": 1.0,
            "steps": 1500,
            "eval.every": 50,
            "eval.metric": "mase",
            "eval.patience": 8,
            "eval.restore_best": True,
            "checkpoint.every": 250,
        }
        period = getattr(config, "period", 0)
        if not period and not getattr(config, "path", "") and getattr(config, "series", "") in BUNDLED:
            try:
                period = load_series(config.series).period or 0  # type: ignore[attr-defined]
            except DataError:  # not here (the run will say how to get it): no season to read
                period = 0
        if period >= 12:
            recipe["task.lookback"] = 3 * period
        return recipe


def _plain(times: np.ndarray) -> list[Any]:
    """Timestamps as ISO text ("1961-01-01", "1986-03-31T12:30"), or step numbers as ints."""
    if times.dtype.kind == "M":
        return [str(t) for t in np.datetime_as_string(times, unit="auto")]
    return [int(t) for t in times]


__all__ = ["ForecastTask"]
