"""Forecasting without leaks: windows, a chronological split, scaling, metrics, baselines, period, intervals.

A window is `lookback` steps of inputs followed by the `horizon` steps of the target it forecasts:

    index    s-lookback ... s-1 | s ... s+horizon-1
             inputs (all columns) | targets (the target column)

A window belongs to the part of the series that holds its targets. The series is cut chronologically at
`split_points`:

    0 ---- train ---- train_end ---- validation ---- val_end ---- test ---- n

Training windows have every target before train_end, validation windows in [train_end, val_end), test
windows in [val_end, n). A window's inputs may reach back into earlier parts (that is how a test window sees
its history), but no target ever appears in the inputs of its own window, and no validation or test value
appears anywhere in a training window. The scaler is fitted on the rows before train_end only.

Metrics are computed on the original scale; every baseline forecasts exactly the windows that `windows`
cuts for the same arguments, so scores compare on the same points.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from rnnlab.errors import ConfigError, DataError

#: how much lower (in autocorrelation) a period's peak may be than that of its multiple and still be taken.
HARMONIC_TOLERANCE = 0.1


def window_starts(n: int, lookback: int, horizon: int, start: int, end: int) -> np.ndarray:
    """(W,) int64: the first target index s of every window whose targets s..s+horizon-1 lie in
    [start, end) and whose `lookback` inputs s-lookback..s-1 lie in the series."""
    if lookback < 1 or horizon < 1:
        raise ConfigError(f"lookback and horizon must be at least 1, got {lookback} and {horizon}")
    if not 0 <= start <= end <= n:
        raise ConfigError(f"the targets' range [{start}, {end}) must lie in the series' {n} steps")
    return np.arange(max(start, lookback), end - horizon + 1, dtype=np.int64)


def windows(
    values: np.ndarray, lookback: int, horizon: int, start: int, end: int, *, target: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The inputs (W, lookback, F) and targets (W, horizon) of every window with its targets in [start, end).

    Args:
        values: (N, F) or (N,): the series, one row a step.
        target: the column whose future is forecast (0 for a `Series`).
    """
    series = _as_columns(values)
    starts = window_starts(len(series), lookback, horizon, start, end)[:, None]  # (W, 1)
    inputs = series[starts + np.arange(-lookback, 0)]  # (W, lookback, F)
    targets = series[starts + np.arange(horizon), target]  # (W, horizon)
    return inputs, targets


def split_points(
    n: int, val_fraction: float, test_fraction: float, lookback: int, horizon: int
) -> tuple[int, int]:
    """(train_end, val_end): the last `test_fraction` of the n steps (rounded) is test, the `val_fraction`
    before it validation, the rest training.

    Each part must hold one window at least: training lookback + horizon steps (its windows' inputs lie in
    it), validation and test `horizon` steps each (their inputs reach back into the parts before them).
    """
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ConfigError(f"{name} must lie strictly between 0 and 1, got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    test, val = round(n * test_fraction), round(n * val_fraction)
    train_end, val_end = n - val - test, n - test
    if train_end < lookback + horizon or val < horizon or test < horizon:
        raise DataError(
            f"a series of {n} steps is too short for lookback {lookback} and horizon {horizon} with "
            f"val_fraction {val_fraction} and test_fraction {test_fraction}: training has {train_end} steps "
            f"(needs lookback + horizon = {lookback + horizon}), validation {val} and test {test} "
            f"(each needs horizon = {horizon})"
        )
    return train_end, val_end


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-column standardisation, (x - mean) / std, with mean and std (F,) of the training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, train_end: int) -> Scaler:
        """Fitted on rows 0..train_end-1 of values (N, F) or (N,); a constant column gets std 1."""
        rows = _as_columns(values)[:train_end]
        if len(rows) < 2:
            raise DataError(f"the scaler needs two training rows at least, got {len(rows)}")
        _check_finite(rows, "the training rows")
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """values (..., F) scaled."""
        return (values - self.mean) / self.std

    def inverse(self, scaled: np.ndarray, column: int | None = None) -> np.ndarray:
        """Back to the original scale: scaled (..., F), or, with `column`, any array of that column's values
        (forecasts of the target: column 0)."""
        if column is None:
            return scaled * self.std + self.mean
        return scaled * self.std[column] + self.mean[column]


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error over every point."""
    error = _errors(actual, forecast)
    return float(np.abs(error).mean())


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error over every point."""
    error = _errors(actual, forecast)
    return float(np.sqrt(np.square(error).mean()))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric mean absolute percentage error, in percent (0 to 200): the mean of
    200 |y - f| / (|y| + |f|), a point where y = f = 0 counting 0."""
    error = _errors(actual, forecast)
    size = np.abs(np.asarray(actual, np.float64)) + np.abs(np.asarray(forecast, np.float64))
    ratio = np.divide(np.abs(error), size.ravel(), out=np.zeros_like(error), where=size.ravel() > 0)
    return float(200 * ratio.mean())


def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, period: int | None = None) -> float:
    """Mean absolute scaled error (Hyndman & Koehler 2006): the MAE divided by the in-sample MAE of the
    seasonal naive forecast y[t - m] over the training target `train` (m = period, or 1 when None).

    Below 1: better than that naive forecast was on the training part; the seasonal naive forecast scored
    on its own training points gives exactly 1.
    """
    lag = period or 1
    history = np.asarray(train, np.float64).ravel()
    if len(history) <= lag:
        raise DataError(f"MASE at period {lag} needs more than {lag} training values, got {len(history)}")
    _check_finite(history, "the training values")
    scale = float(np.abs(history[lag:] - history[:-lag]).mean())
    if scale == 0:
        raise DataError(f"MASE is undefined: the training values repeat exactly at lag {lag}")
    return mae(actual, forecast) / scale


def naive(
    values: np.ndarray, lookback: int, horizon: int, start: int, end: int, *, target: int = 0
) -> np.ndarray:
    """(W, horizon): each window's last input value of the target, repeated over the horizon."""
    y = _as_columns(values)[:, target]
    starts = window_starts(len(y), lookback, horizon, start, end)
    return np.repeat(y[starts - 1, None], horizon, axis=1)


def seasonal_naive(
    values: np.ndarray, lookback: int, horizon: int, start: int, end: int, *, period: int, target: int = 0
) -> np.ndarray:
    """(W, horizon): the value one period before each target step, or as many whole periods before as it
    takes to reach the window's history (step h of the horizon, from 1: y[s + h - 1 - m ceil(h / m)])."""
    y = _as_columns(values)[:, target]
    starts = window_starts(len(y), lookback, horizon, start, end)
    if period < 1:
        raise ConfigError(f"period must be at least 1, got {period}")
    ahead = np.arange(horizon)
    back = period * (ahead // period + 1)
    source = starts[:, None] + ahead - back  # (W, horizon), each before its window's first target
    if starts.size and source.min() < 0:
        raise ConfigError(
            f"seasonal_naive with period {period} needs {period} steps before the first target, which is "
            f"step {starts[0]}: start the windows later or lengthen the lookback"
        )
    return y[source]


def ets(
    values: np.ndarray,
    lookback: int,
    horizon: int,
    start: int,
    end: int,
    *,
    fit_end: int,
    period: int | None = None,
    target: int = 0,
) -> np.ndarray:
    """(W, horizon): exponential smoothing (statsmodels' ETSModel: additive errors, additive damped trend,
    additive seasonality of `period` when given and steps 0..fit_end-1 hold two periods at least). The
    trend is damped so that a slope fitted on the past does not run on unchecked over a long horizon.

    The parameters and initial states are fitted once, by maximum likelihood, on steps 0..fit_end-1 (the
    training and validation parts); every window must have its targets at or after fit_end. With those
    parameters fixed, the model is run (`ETSModel.smooth`, which filters forward in time) over the steps
    before the last window's targets; its state after step s-1 depends on y[0..s-1] alone, and each
    window's forecast is that state's h-step forecast (level + (phi + ... + phi^h) trend + the season's
    last value): what statsmodels forecasts from y[0..s-1] with these parameters. No window's own targets
    enter its forecast, and refitting per window (hundreds of fits) is avoided.
    """
    y = _as_columns(values)[:, target]
    starts = window_starts(len(y), lookback, horizon, start, end)
    if starts.size and starts[0] < fit_end:
        raise ConfigError(
            f"ets forecasts windows after its fitting part: the first target is step {starts[0]}, "
            f"before fit_end {fit_end}"
        )
    if not starts.size:
        return np.empty((0, horizon))
    seasonal = period is not None and period >= 2 and fit_end >= 2 * period
    spec = {
        "error": "add",
        "trend": "add",
        "damped_trend": True,
        "seasonal": "add" if seasonal else None,
        "seasonal_periods": period if seasonal else None,
    }
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    _check_finite(y[: end - horizon], "the target")
    fitted = ETSModel(y[:fit_end], **spec).fit(disp=False)
    states = ETSModel(y[: end - horizon], **spec).smooth(fitted.params).states  # (T, level trend [season])
    phi = dict(zip(fitted.param_names, fitted.params, strict=True))["damping_trend"]
    ahead = np.arange(1, horizon + 1)
    origin = starts[:, None] - 1  # (W, 1): the last step each window's forecast may see
    forecast = states[origin, 0] + states[origin, 1] * np.cumsum(phi**ahead)
    if seasonal and period is not None:
        forecast += states[origin + ahead - period * ((ahead - 1) // period + 1), 2]
    return forecast


def detect_period(values: np.ndarray, max_period: int, alpha: float = 0.05) -> int | None:
    """The seasonal period of a series: the lag in 2..max_period of its highest significant autocorrelation
    peak, or None.

    The autocorrelation r (the biased estimate, as statsmodels' `acf`) is of the series less its
    straight-line trend, so that a trend's slowly decaying autocorrelation hides no season. A peak is a lag
    whose r exceeds the lag before and is not below the lag after. It is significant at lag k above
    z sqrt((1 + 2 sum_{j<k} r_j^2) / n), Bartlett's spread of r_k when the autocorrelation ends before lag
    k (what statsmodels' `plot_acf` draws), with z the normal quantile at 1 - alpha / (2 (max_period - 1)):
    Bonferroni's correction over the lags tried. Bartlett's spread, wider than white noise's 1 / sqrt(n),
    keeps a persistent series with no season (an AR(1), a random walk) from showing one.

    A period's multiples are peaks too, and by chance one may come out highest: the highest peak is taken
    back to the shortest significant peak of which it is a multiple (within a step) and which is nearly as
    high, within `HARMONIC_TOLERANCE` once both are corrected for the estimate's taper (n - k) / n.
    """
    x = np.asarray(values, np.float64).ravel()
    if max_period < 2:
        raise ConfigError(f"max_period must be at least 2, got {max_period}")
    if len(x) < 2 * max_period:
        raise DataError(f"detect_period needs 2 x max_period = {2 * max_period} values, got {len(x)}")
    _check_finite(x, "the series")
    n = len(x)
    steps = np.arange(n)
    detrended = x - np.polyval(np.polyfit(steps, x, 1), steps)
    if np.abs(detrended).max() <= 1e-9 * np.abs(x).max():
        return None  # a straight line: nothing repeats
    r = _autocorrelation(detrended, max_period + 1)  # (max_period + 2,)
    lags = np.arange(2, max_period + 1)
    spread = np.sqrt((1 + 2 * np.cumsum(np.square(r[1:-1]))) / n)  # spread[k - 2] belongs to lag k
    z = NormalDist().inv_cdf(1 - alpha / (2 * (max_period - 1)))
    peak = (r[lags] > r[lags - 1]) & (r[lags] >= r[lags + 1]) & (r[lags] > z * spread[lags - 2])
    if not peak.any():
        return None
    significant = lags[peak]
    highest = int(significant[np.argmax(r[significant])])
    untapered = r * n / (n - np.arange(len(r)))
    for lag in significant[significant < highest]:
        multiple = round(highest / lag)
        if abs(highest - multiple * lag) <= 1 and untapered[lag] >= untapered[highest] - HARMONIC_TOLERANCE:
            return int(lag)
    return highest


def interval(residuals: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Prediction-interval offsets (lower, upper) = (-w, w), each (horizon,), from residuals (W, horizon) =
    target - forecast of the validation windows: per step of the horizon, the half-width w that `level`
    of the absolute residuals stay within (split conformal prediction). A forecast f gets [f - w, f + w],
    centred on it, so that a model retrained on more data need not share the validation model's bias.

    The quantile needs 1 / (1 - level) residuals (10 at level 0.9); with fewer, w is z·RMS of them, the
    half-width of a normal distribution of that spread (z = 1.645 at 0.9).
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must lie strictly between 0 and 1, got {level}")
    errors = np.asarray(residuals, np.float64)
    if errors.ndim != 2 or len(errors) == 0:
        raise DataError(f"residuals must be (windows >= 1, horizon), got shape {errors.shape}")
    _check_finite(errors, "the residuals")
    if len(errors) >= np.ceil(1 / (1 - level) - 1e-9):
        width = np.quantile(np.abs(errors), level, axis=0)
    else:
        width = NormalDist().inv_cdf((1 + level) / 2) * np.sqrt((errors**2).mean(0))
    return -width, width


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(max_lag + 1,): sum_t x_t x_(t+k) / sum_t x_t^2 for k = 0..max_lag, x less its mean, by FFT."""
    size = 1 << int(np.ceil(np.log2(2 * len(x))))  # zero-padded: no wrap-around between the ends
    spectrum = np.fft.rfft(x - x.mean(), size)
    sums = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    return sums / sums[0]


def _as_columns(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise DataError(f"a series must be (N,) or (N, F), got shape {array.shape}")
    return array


def _errors(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """forecast - actual, flattened; DataError on different shapes, no points, NaN or Inf."""
    y, f = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    if y.shape != f.shape:
        raise DataError(f"the forecast's shape {f.shape} differs from the actual values' {y.shape}")
    if y.size == 0:
        raise DataError("no points to score")
    _check_finite(y, "the actual values")
    _check_finite(f, "the forecast")
    return (f - y).ravel()


def _check_finite(array: np.ndarray, what: str) -> None:
    if not np.isfinite(array).all():
        raise DataError(f"{what} hold NaN or Inf")


__all__ = [
    "HARMONIC_TOLERANCE",
    "Scaler",
    "detect_period",
    "ets",
    "interval",
    "mae",
    "mase",
    "naive",
    "rmse",
    "seasonal_naive",
    "smape",
    "split_points",
    "window_starts",
    "windows",
]
