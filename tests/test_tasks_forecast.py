"""The forecasting task: windows relative to their level, no leaks, metrics on the original scale."""

import json

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import DataError
from rnnlab.tasks import ForecastTask
from rnnlab.tasks import forecasting as fc


def write_series(path, n=240, trend=0.5, period=12, noise=0.3, start=100.0):
    """A monthly series: level + trend + a season of `period` + noise; strictly positive."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = start + trend * t + 5 * np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n)
    lines = ["month,sales,price"] + [
        f"{1990 + i // 12}-{i % 12 + 1:02d}-01,{v:.5f},{10 + np.cos(i / 5):.4f}" for i, v in enumerate(y)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path, y


@pytest.fixture(autouse=True)
def no_packaged_data(tmp_path, monkeypatch):
    """An empty data cache, as on a fresh machine: the user's CSV must need no packaged series."""
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "empty-cache"))


@pytest.fixture
def csv(tmp_path):
    return write_series(tmp_path / "sales.csv")


def task_of(path, **settings):
    return ForecastTask(path=str(path), target="sales", time="month", **settings)


def test_windows_are_relative_to_their_level_and_carry_it(csv):
    path, y = csv
    task = task_of(path, lookback=6, horizon=3, transform="none")
    batch = next(iter(task.val_batches()))
    x, targets = batch.inputs, batch.targets
    assert x.shape[1:] == (6, 1) and targets.shape[1] == 4
    assert torch.equal(x[:, -1, 0], torch.zeros(len(x)))  # the level is subtracted: the last input is 0
    level = targets[:, -1].double().numpy()
    first = task.train_end  # the first validation window's targets start at train_end
    scaled = (y[first - 1] - task.scaler.mean[0]) / task.scaler.std[0]
    assert level[0] == pytest.approx(scaled, abs=1e-5)
    # a forecast of zeros is the naive forecast: its metrics are the naive baseline's
    zeros = task.metrics(torch.zeros(len(x), 3), targets)
    assert zeros == pytest.approx(task.baseline(), rel=1e-5)


def test_the_scaler_sees_the_training_rows_only_and_no_target_enters_its_window(csv, tmp_path):
    path, y = csv
    task = task_of(path, lookback=6, horizon=3, transform="none")
    changed, _ = write_series(tmp_path / "changed.csv")
    text = changed.read_text().splitlines()
    for i in range(task.val_end + 1, len(text)):  # the test part's values, tripled
        date, sales, price = text[i].split(",")
        text[i] = f"{date},{3 * float(sales)},{price}"
    changed.write_text("\n".join(text) + "\n")
    other = task_of(changed, lookback=6, horizon=3, transform="none")
    assert np.array_equal(task.scaler.mean, other.scaler.mean) and np.array_equal(
        task.scaler.std, other.scaler.std
    )
    for split in ("train", "val"):  # nothing before the test part changes
        a, b = task._windows(split), other._windows(split)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_metrics_are_on_the_original_scale(csv):
    path, y = csv
    task = task_of(path, lookback=12, horizon=4)  # log transform: the target is positive
    assert task.log
    batch = next(iter(task.test_batches()))
    truth = batch.targets[:, :-1]
    perfect = task.metrics(truth, batch.targets)
    assert perfect["mae"] == pytest.approx(0, abs=1e-3) and perfect["rmse"] == pytest.approx(0, abs=1e-3)
    _, actual = fc.windows(y, 12, 4, task.val_end, len(y))
    naive = fc.naive(y, 12, 4, task.val_end, len(y))
    assert task.baselines("test")["naive"]["mae"] == pytest.approx(fc.mae(actual, naive))


def test_the_baselines_are_scored_on_the_same_test_windows(csv):
    path, _ = csv
    task = task_of(path, lookback=12, horizon=4)
    baselines = task.baselines("test")
    assert set(baselines) == {"naive", "seasonal_naive", "ets"} and task.season == 12
    # trend and season: ETS, which models both, beats the naive forecasts that model one or neither
    assert baselines["ets"]["mase"] < min(baselines["naive"]["mase"], baselines["seasonal_naive"]["mase"])


def test_a_series_too_short_is_refused_with_the_numbers(tmp_path):
    path, _ = write_series(tmp_path / "short.csv", n=30)
    with pytest.raises(DataError, match=r"a series of 30 steps is too short for lookback 24 and horizon 12"):
        task_of(path)


def test_log_of_a_series_with_zeros_is_refused(tmp_path):
    path, _ = write_series(tmp_path / "z.csv", start=-50.0)
    with pytest.raises(DataError, match=r"task.transform: log needs a positive target"):
        task_of(path, transform="log")


def train_on(path, out, *flags):
    """`rnnlab train --task forecast` on the sales CSV for 300 steps; its summary.json."""
    args = [
        "train",
        "--task",
        "forecast",
        "--task.path",
        str(path),
        "--task.target=sales",
        "--task.time=month",
    ]
    assert main([*args, *flags, "--steps=300", "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text())


def test_a_short_run_beats_the_naive_forecast(csv, tmp_path):
    path, _ = csv
    out = tmp_path / "run"
    summary = train_on(path, out, "--task.features=price")
    assert summary["test"]["mase"] < summary["test_baselines"]["naive"]["mase"]
    assert set(summary["test_baselines"]) == {"naive", "seasonal_naive", "ets"}
    assert "restore_best = true" in (out / "config.toml").read_text()


def test_the_forecast_command_backtests_then_forecasts_the_steps_after_the_last_row(csv, tmp_path, capsys):
    path, y = csv
    out = tmp_path / "fc"
    args = ["forecast", "--csv", str(path), "--time", "month", "--target", "sales", "--horizon", "6"]
    assert main([*args, "--out", str(out), "--quiet", "--steps=200"]) == 0
    printed = capsys.readouterr().out
    assert "rnnlab" in printed and "ets" in printed and "seasonal_naive" in printed
    rows = (out / "forecast.csv").read_text().splitlines()
    assert rows[0] == "time,forecast,lower,upper" and len(rows) == 7
    assert rows[1].startswith("2010-01-01,") and rows[6].startswith("2010-06-01,")  # after 2009-12
    values = np.array([[float(v) for v in row.split(",")[1:]] for row in rows[1:]])
    assert (values[:, 1] <= values[:, 0]).all() and (values[:, 0] <= values[:, 2]).all()
    assert abs(values[0, 0] - y[-1]) < 15  # it goes on from where the series ends
    backtest = (out / "backtest.csv").read_text().splitlines()
    assert backtest[0] == "forecaster,mae,rmse,smape,mase" and len(backtest) == 5
    assert (out / "forecast.png").is_file() and (out / "backtest" / "summary.json").is_file()
    assert 'fit_on = "all"' in (out / "final" / "config.toml").read_text()
    # nothing is overwritten
    assert main([*args, "--out", str(out), "--quiet"]) == 1
    assert "exists and is not empty" in capsys.readouterr().err


def test_the_forecast_command_names_a_missing_target(csv, tmp_path, capsys):
    path, _ = csv
    assert main(["forecast", "--csv", str(path), "--horizon", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--target" in capsys.readouterr().err


def test_the_recursive_strategy_rolls_the_model_on_its_own_outputs(csv):
    path, _ = csv
    task = task_of(path, lookback=6, horizon=4, strategy="recursive", transform="none")
    assert task.output_size == 1  # the next step of every column (the target alone here)
    x, targets = task._windows("train")
    assert targets.shape == (len(x), 2) and torch.equal(x[:, -1], torch.zeros(len(x), 1))

    def last_change(window):  # a "model" that repeats the last step's change: a linear extrapolation
        return window[:, -1] - window[:, -2]

    ramp = torch.arange(-5.0, 1.0).reshape(1, 6, 1) * 0.5  # rising by 0.5 a step, relative to its last row
    assert torch.allclose(task.forecast(last_change, ramp), torch.tensor([[0.5, 1.0, 1.5, 2.0]]))
    batch = next(iter(task.val_batches()))
    assert task.predict(last_change, batch).shape == (batch.targets.shape[0], 4)


def test_a_recursive_run_beats_the_naive_forecast(csv, tmp_path):
    path, _ = csv
    summary = train_on(path, tmp_path / "run", "--task.strategy=recursive")
    assert summary["test"]["mase"] < summary["test_baselines"]["naive"]["mase"]
