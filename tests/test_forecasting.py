"""Forecasting without leaks: windows whose every value is its own step number, a scaler blind to the test
part, metrics against hand computations, baselines on the same points with known errors, ETS against
statsmodels' own forecasts, period detection on known series, and the coverage of residual intervals."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import packages
from rnnlab.tasks.forecasting import (
    Scaler,
    detect_period,
    ets,
    interval,
    mae,
    mase,
    naive,
    rmse,
    seasonal_naive,
    smape,
    split_points,
    window_starts,
    windows,
)

N, LOOKBACK, HORIZON = 100, 8, 3


def indexed(n: int = N) -> np.ndarray:
    """(n, 2): column 0 is each row's step number, column 1 the step number plus 1000."""
    steps = np.arange(n, dtype=np.float64)
    return np.stack([steps, steps + 1000], axis=1)


def test_each_windows_targets_start_right_after_its_inputs():
    inputs, targets = windows(indexed(), LOOKBACK, HORIZON, 20, 40)
    starts = np.arange(20, 40 - HORIZON + 1)
    assert inputs.shape == (len(starts), LOOKBACK, 2) and targets.shape == (len(starts), HORIZON)
    np.testing.assert_array_equal(inputs[:, :, 0], starts[:, None] + np.arange(-LOOKBACK, 0))
    np.testing.assert_array_equal(inputs[:, :, 1], inputs[:, :, 0] + 1000)
    np.testing.assert_array_equal(targets, starts[:, None] + np.arange(HORIZON))


def test_windows_of_the_start_reach_no_further_back_than_the_series_and_a_1d_series_is_one_column():
    inputs, targets = windows(np.arange(20.0), LOOKBACK, HORIZON, 0, 20)
    assert inputs.shape == (20 - LOOKBACK - HORIZON + 1, LOOKBACK, 1)
    assert targets[0].tolist() == [LOOKBACK, LOOKBACK + 1, LOOKBACK + 2] and targets[-1, -1] == 19
    empty_inputs, empty_targets = windows(indexed(), LOOKBACK, HORIZON, 50, 52)
    assert empty_inputs.shape == (0, LOOKBACK, 2) and empty_targets.shape == (0, HORIZON)
    with pytest.raises(ConfigError, match="must lie in the series"):
        window_starts(N, LOOKBACK, HORIZON, 0, N + 1)
    with pytest.raises(ConfigError, match="at least 1"):
        window_starts(N, 0, HORIZON, 0, N)


def test_no_window_leaks_a_later_part_or_its_own_targets():
    values = indexed()
    train_end, val_end = split_points(N, 0.2, 0.2, LOOKBACK, HORIZON)
    assert (train_end, val_end) == (60, 80)
    parts = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, N)}
    seen = {}
    for name, (start, end) in parts.items():
        inputs, targets = windows(values, LOOKBACK, HORIZON, start, end)
        assert targets.min() >= start and targets.max() < end
        # every input precedes its window's first target: no target is among its own inputs
        assert (inputs[:, :, 0].max(axis=1) < targets[:, 0]).all()
        seen[name] = set(inputs[:, :, 0].ravel()) | set(targets.ravel())
    assert max(seen["train"]) < train_end  # no validation or test value in any training window
    assert not seen["train"] & set(range(train_end, N))
    assert max(seen["val"]) < val_end
    test_targets = set(windows(values, LOOKBACK, HORIZON, val_end, N)[1].ravel())
    assert test_targets == set(range(val_end, N))


def test_split_points_name_the_numbers_when_the_series_is_too_short():
    assert split_points(40, 0.2, 0.2, 16, 8) == (24, 32)
    with pytest.raises(DataError, match=r"30 steps .* lookback 16 and horizon 8 .* training has 18 steps"):
        split_points(30, 0.2, 0.2, 16, 8)
    with pytest.raises(DataError, match="validation 5 and test 5 .each needs horizon = 6"):
        split_points(50, 0.1, 0.1, 4, 6)
    with pytest.raises(ConfigError, match="val_fraction"):
        split_points(50, 0.0, 0.2, 4, 2)
    with pytest.raises(ConfigError, match="below 1"):
        split_points(50, 0.5, 0.5, 4, 2)


def test_the_scaler_is_fitted_on_the_training_rows_only():
    values = np.random.default_rng(0).normal(3.0, 2.0, (50, 3))
    values[:, 2] = 7.0  # a constant column
    scaler = Scaler.fit(values, 30)
    np.testing.assert_allclose(scaler.mean, values[:30].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std[:2], values[:30, :2].std(axis=0), rtol=1e-12)
    assert scaler.std[2] == 1.0
    changed = values.copy()
    changed[30:] *= 100
    other = Scaler.fit(changed, 30)
    np.testing.assert_array_equal(other.mean, scaler.mean)
    np.testing.assert_array_equal(other.std, scaler.std)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:30, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaled), values, rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaled[:, 1], column=1), values[:, 1], rtol=1e-12)
    with pytest.raises(DataError, match="NaN"):
        Scaler.fit(np.full((5, 1), np.nan), 3)


def test_the_metrics_against_hand_computations():
    actual, forecast = np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 1, 8])  # errors 1, 0, -2, 4
    assert mae(actual, forecast) == 1.75
    assert rmse(actual, forecast) == pytest.approx(np.sqrt(21 / 4), rel=1e-15)
    assert smape(actual, forecast) == pytest.approx(200 / 4 * (1 / 3 + 0 + 2 / 4 + 4 / 12), rel=1e-15)
    assert smape(np.array([0.0, 1]), np.array([0.0, -1])) == 100  # 0/0 counts 0; opposite signs 200
    assert mase(actual, forecast, np.array([1.0, 3, 2, 5])) == 1.75 / 2  # naive MAE in-sample: (2+1+3)/3
    assert mase(actual, forecast, np.array([1.0, 3, 2, 5, 4]), period=2) == 1.75 / (5 / 3)  # (1+2+2)/3


def test_mase_is_one_for_the_seasonal_naive_forecast_on_its_own_training_points():
    train = np.random.default_rng(1).normal(size=60)
    for period in (1, 4, 12):
        assert mase(train[period:], train[:-period], train, period) == pytest.approx(1, rel=1e-14)
    with pytest.raises(DataError, match="repeat exactly at lag 2"):
        mase(train[:3], train[:3], np.array([1.0, 2, 1, 2]), period=2)


def test_the_metrics_refuse_different_shapes_no_points_and_nan():
    with pytest.raises(DataError, match="shape"):
        mae(np.zeros((2, 3)), np.zeros(6))
    with pytest.raises(DataError, match="no points"):
        rmse(np.zeros(0), np.zeros(0))
    with pytest.raises(DataError, match="the forecast hold NaN"):
        smape(np.zeros(2), np.array([0, np.nan]))


def test_naive_and_seasonal_naive_forecast_the_same_windows_with_known_errors():
    line = 2.0 * np.arange(N) + 1  # y = 2t + 1: the naive forecast is 2h short at step h of the horizon
    _, targets = windows(line, LOOKBACK, HORIZON, 60, N)
    forecast = naive(line, LOOKBACK, HORIZON, 60, N)
    assert forecast.shape == targets.shape
    np.testing.assert_array_equal(targets - forecast, np.broadcast_to([2.0, 4, 6], targets.shape))
    assert mae(targets, forecast) == 4.0  # 2 (1 + 2 + 3) / 3
    # period 2 < horizon 3: step 3 takes the value two periods back, 4 steps before it
    seasonal = seasonal_naive(line, LOOKBACK, HORIZON, 60, N, period=2)
    assert seasonal.shape == targets.shape
    np.testing.assert_array_equal(targets - seasonal, np.broadcast_to([4.0, 4, 8], targets.shape))
    periodic = np.tile([3.0, 1, 4, 1, 5], N // 5)
    exact = seasonal_naive(periodic, LOOKBACK, HORIZON, 60, N, period=5)
    np.testing.assert_array_equal(exact, windows(periodic, LOOKBACK, HORIZON, 60, N)[1])
    with pytest.raises(ConfigError, match="needs 12 steps before the first target"):
        seasonal_naive(line, LOOKBACK, HORIZON, 0, N, period=12)


def seasonal_series(n: int = 160, seed: int = 0) -> np.ndarray:
    """A trend, a season of 12 and noise: what ETS with additive trend and season describes."""
    steps = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 0.3, n)
    return 10 + 0.05 * steps + 2 * np.sin(2 * np.pi * steps / 12) + noise


def test_changing_a_windows_targets_or_anything_after_them_leaves_every_baseline_unchanged():
    y = seasonal_series(100)
    fit_end, first = 72, 80
    forecasts = [
        naive(y, 24, 6, first, first + 6),
        seasonal_naive(y, 24, 6, first, first + 6, period=12),
        ets(y, 24, 6, first, first + 6, fit_end=fit_end, period=12),
    ]
    changed = y.copy()
    changed[first:] += 50
    again = [
        naive(changed, 24, 6, first, first + 6),
        seasonal_naive(changed, 24, 6, first, first + 6, period=12),
        ets(changed, 24, 6, first, first + 6, fit_end=fit_end, period=12),
    ]
    for before, after in zip(forecasts, again, strict=True):
        assert before.shape == (1, 6)
        np.testing.assert_array_equal(before, after)


def test_ets_forecasts_each_window_as_statsmodels_does_from_that_windows_history():
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = seasonal_series()
    fit_end, horizon = 120, 6
    forecast = ets(y, 24, horizon, fit_end, len(y), fit_end=fit_end, period=12)
    _, targets = windows(y, 24, horizon, fit_end, len(y))
    assert forecast.shape == targets.shape == (len(y) - fit_end - horizon + 1, horizon)
    spec = {"error": "add", "trend": "add", "damped_trend": True, "seasonal": "add", "seasonal_periods": 12}
    fitted = ETSModel(y[:fit_end], **spec).fit(disp=False)
    for window, start in ((0, fit_end), (20, fit_end + 20)):
        expected = ETSModel(y[:start], **spec).smooth(fitted.params).forecast(horizon)
        np.testing.assert_allclose(forecast[window], expected, rtol=1e-10)
    naive_error = mae(targets, naive(y, 24, horizon, fit_end, len(y)))
    assert mae(targets, forecast) < 0.5 * naive_error  # it has learnt the season
    with pytest.raises(ConfigError, match="before fit_end 120"):
        ets(y, 24, horizon, 100, len(y), fit_end=fit_end)


def test_ets_without_a_period_has_no_season():
    steps = np.arange(80)
    y = 5 + 0.5 * steps + np.random.default_rng(2).normal(0, 0.1, 80)
    forecast = ets(y, 10, 4, 60, 80, fit_end=60)
    _, targets = windows(y, 10, 4, 60, 80)
    assert mae(targets, forecast) < 0.25 * mae(targets, naive(y, 10, 4, 60, 80))  # it follows the trend


def sine(n: int, period: int, noise: float, seed: int) -> np.ndarray:
    steps = np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * steps / period) + noise * rng.standard_normal(n) + 0.02 * steps


def test_detect_period_finds_a_noisy_sine_of_period_12_and_nothing_in_white_noise():
    for seed in range(5):
        assert detect_period(sine(240, 12, 0.5, seed), 40) == 12
        assert detect_period(sine(1200, 12, 0.5, seed), 40) == 12  # not a multiple of it
        assert detect_period(np.random.default_rng(seed).standard_normal(500), 50) is None


def test_detect_period_finds_no_season_in_a_persistent_series_and_a_true_period_of_24():
    rng = np.random.default_rng(0)
    shocks = rng.standard_normal(500)
    ar = np.zeros(500)
    for t in range(1, 500):
        ar[t] = 0.9 * ar[t - 1] + shocks[t]
    assert detect_period(ar, 50) is None
    assert detect_period(np.cumsum(shocks), 50) is None
    assert detect_period(np.arange(100.0), 20) is None
    steps = np.arange(480)
    period_24 = np.sin(2 * np.pi * steps / 12) + 0.5 * np.sin(2 * np.pi * steps / 24)
    assert detect_period(period_24 + 0.3 * rng.standard_normal(480), 40) == 24
    with pytest.raises(DataError, match="needs 2 x max_period = 80 values, got 50"):
        detect_period(np.zeros(50), 40)


def test_intervals_from_validation_residuals_cover_the_level_on_fresh_residuals():
    rng = np.random.default_rng(0)
    spread = np.array([1.0, 2.0, 4.0])  # per step of the horizon
    lower, upper = interval(rng.normal(size=(4000, 3)) * spread, level=0.9)
    assert lower.shape == upper.shape == (3,)
    np.testing.assert_allclose(upper, 1.6449 * spread, rtol=0.05)
    np.testing.assert_allclose(lower, -1.6449 * spread, rtol=0.05)
    fresh = rng.normal(size=(20000, 3)) * spread
    coverage = ((fresh >= lower) & (fresh <= upper)).mean(axis=0)
    np.testing.assert_allclose(coverage, 0.9, atol=0.015)
    few = np.array([[1.0, -2.0], [-3.0, 2.0], [2.0, 0.0]])  # fewer than 10: z times the RMS per step
    lower, upper = interval(few, level=0.9)
    np.testing.assert_allclose(upper, 1.6449 * np.sqrt([14 / 3, 8 / 3]), rtol=1e-4)
    np.testing.assert_allclose(lower, -upper)
    with pytest.raises(DataError, match="windows >= 1"):
        interval(np.zeros((0, 3)), level=0.9)
    with pytest.raises(ConfigError, match="level"):
        interval(np.zeros((50, 3)), level=1.0)


needs_statsmodels = pytest.mark.skipif(
    not packages.source("statsmodels").available(), reason="statsmodels is not installed"
)


@needs_statsmodels
def test_the_bundled_monthly_and_weekly_series_show_their_known_periods():
    from rnnlab.tasks.series_files import load_series

    assert detect_period(load_series("elnino").values[:, 0], 40) == 12
    assert detect_period(load_series("co2").values[:, 0], 120) == 52
    sunspots = load_series("sunspots").values[:, 0]
    assert detect_period(sunspots, 30) in (10, 11)  # the Schwabe cycle; r(10) = 0.649, r(11) = 0.641


@needs_statsmodels
def test_on_elnino_the_seasonal_baselines_beat_the_naive_one_on_the_same_test_windows():
    from rnnlab.tasks.series_files import load_series

    series = load_series("elnino")
    y = series.values[:, 0]
    train_end, val_end = split_points(len(y), 0.15, 0.15, 24, 12)
    _, targets = windows(series.values, 24, 12, val_end, len(y))
    train = y[:train_end]
    naive_score = mase(targets, naive(series.values, 24, 12, val_end, len(y)), train, 12)
    seasonal = seasonal_naive(series.values, 24, 12, val_end, len(y), period=12)
    assert mase(targets, seasonal, train, 12) < 0.6 * naive_score
