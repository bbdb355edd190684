"""Readers for the time series of the forecasting task: five bundled series, and the user's own CSV.

Nothing here downloads anything. The bundled series come with packages (see `rnnlab.tasks.packages`):

    name      length  step                      period  target        read from
    sunspots  309     yearly, 1700-2008         11      SUNACTIVITY   statsmodels' sunspots.csv
    co2       2284    weekly (W-SAT), 1958-2001  52      co2           statsmodels' co2.csv (59 gaps filled)
    elnino    732     monthly (MS), 1950-2010   12      TEMPERATURE   statsmodels' elnino.csv (year x month)
    airline   144     monthly (MS), 1949-1960   12      Passengers    sktime's Airline.csv (in its wheel)
    msft      7983    trading days, 1986-2017   None    Close         pmdarima's msft.tar.gz (in its wheel)

`period` is the seasonal period that the data is known to have, in steps: 12 for monthly data (a year),
52 for weekly (a year is 52.18 weeks; 52 is the nearest whole number of steps), 11 for the sunspots (the
Schwabe cycle, which is only roughly periodic: 9 to 14 years), and None for share prices, which have none.
`frequency` is the pandas alias of the regular step ("YS-JAN", "W-SAT", "MS"), or None: msft's steps are the
exchange's trading days, weekdays without its holidays, which no pandas alias describes.

`read_series_csv` reads the user's file and checks it; every error names the file, then the row (the file's
line number, the header being row 1) or the column. Values are float64 (N, F) with the target in column 0,
so `values[:, 0]` is what is forecast. `times` are datetime64[us] (UTC when the file gives time zones), or
int64 step numbers when the series has none.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tarfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.packages import archive_member, package_file

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike[str]
Gaps = Literal["refuse", "fill"]

#: cells read as a missing value (compared in lower case, after stripping spaces).
MISSING_CELLS = frozenset({"", "na", "n/a", "nan", "null"})
#: a series whose regular grid would hold more than this many times its rows is refused rather than filled.
MAX_GRID_GROWTH = 100
#: the lengths of the stretches of consecutive rows whose steps pandas is asked to name, where the whole
#: series has gaps: 3, the fewest it names, and 7, which spans a weekend (business days) whatever the start.
STRETCHES = (3, 7)
#: how many stretches of each length are looked at, evenly spread over the series.
STRETCH_SAMPLES = 200
INTEGER = re.compile(r"[+-]?\d+")

AIRLINE_MEMBER = "sktime/datasets/data/Airline/Airline.csv"
MSFT_MEMBER = "pmdarima/datasets/data/msft.tar.gz"


@dataclass(frozen=True, eq=False)
class Series:
    """One time series, sampled at a regular step unless `frequency` is None and its times are dates.

    Args:
        name: what it is called ("airline", or the CSV file's stem).
        times: (N,) datetime64[us] timestamps, or int64 step numbers when the data has no timestamps.
        values: (N, F) float64, no NaN; column 0 is the target.
        columns: the F column names, `target` first.
        target: the column to forecast.
        period: the seasonal period the data is known to have, in steps, or None (see the module docstring).
        frequency: the pandas alias of the step ("MS", "W-SAT", "B", "h"), or None when there is none.
    """

    name: str
    times: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]
    target: str
    period: int | None
    frequency: str | None

    def __post_init__(self) -> None:
        n, width = self.values.shape
        if len(self.times) != n or len(self.columns) != width or self.columns[0] != self.target:
            raise DataError(
                f"series {self.name!r}: {len(self.times)} times, values {self.values.shape} and columns "
                f"{self.columns} (target {self.target!r}) do not fit together"
            )
        if not np.isfinite(self.values).all():
            raise DataError(f"series {self.name!r}: its values hold NaN or Inf")

    def __len__(self) -> int:
        return len(self.values)


BUNDLED: dict[str, str] = {
    "sunspots": "yearly sunspot numbers 1700-2008 (309 years; statsmodels)",
    "co2": "weekly Mauna Loa CO2 in ppm, 1958-03-29 to 2001-12-29 (2284 weeks, 59 filled; statsmodels)",
    "elnino": "monthly Nino 1+2 sea-surface temperature in deg C, 1950-2010 (732 months; statsmodels)",
    "airline": "monthly airline passengers in thousands, 1949-1960 (144 months; sktime, Box & Jenkins)",
    "msft": "daily Microsoft share prices and volume, 1986-03-13 to 2017-11-10 (7983 trading days; pmdarima)",
}


def load_series(name: str) -> Series:
    """The bundled series `name` (one of `BUNDLED`), read from the package that ships it.

    Raises:
        MissingDataset: its package (or downloaded archive) is not here; the message says how to get it.
        DataError: its file is not in the format it should be.
        ConfigError: an unknown name.
    """
    if name not in BUNDLED:
        raise ConfigError(f"unknown series {name!r}; available: {', '.join(BUNDLED)}")
    return _LOADERS[name]()


def read_series_csv(
    path: PathLike,
    target: str,
    time: str | None = None,
    features: Sequence[str] = (),
    gaps: Gaps = "refuse",
) -> Series:
    """The series in a CSV file: a header row naming the columns, then one row per step.

    Args:
        path: the file (UTF-8, comma-separated, a byte-order mark allowed).
        target: the column to forecast; it becomes column 0.
        time: the column of timestamps (anything pandas reads as a date, all in one format), or of integer
            step numbers; None: the rows are consecutive steps. Rows must be in time order.
        features: further columns given to the model as inputs, after the target.
        gaps: "refuse" (default): a missing value (an empty cell, NA, N/A, NaN or null), or a step between
            two rows that differs from the series' regular step, is an error naming its row. "fill": each
            missing timestamp is inserted at the regular step, and every missing value (those of the
            inserted rows too) is interpolated linearly in the step number between its neighbours; at
            either end of the series the nearest value is repeated.

    The regular step is the frequency that pandas infers from the timestamps (calendar steps such as "MS"
    or "B" included), or, when there are gaps, the coarsest of the frequencies that pandas names for short
    stretches of rows (`STRETCHES`) whose grid holds every timestamp (failing any, that of the smallest
    step); for step numbers it is the smallest difference.

    Raises:
        DataError: the message starts with the file's path and names the row or column: a missing column
            (the columns present are listed), a row with the wrong number of cells, a cell that is not a
            number, an empty file or one with no data rows, timestamps that cannot be read, out of order or
            repeated (both rows named), off the regular step, or gaps when `gaps` is "refuse".
        ConfigError: `gaps` is neither "refuse" nor "fill", or a column is asked for twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start})") from None
    return _parse(text, str(path), path.stem, target, time, tuple(features), gaps)


def _parse(
    text: str,
    where: str,
    name: str,
    target: str,
    time: str | None,
    features: tuple[str, ...],
    gaps: Gaps,
    regular: bool = True,
) -> Series:
    """A Series from CSV text (`where` names it in errors); `regular=False` keeps the timestamps as given."""
    if gaps not in ("refuse", "fill"):
        raise ConfigError(f"gaps must be 'refuse' or 'fill', got {gaps!r}")
    columns = (target, *features)
    asked = [*columns, *([] if time is None else [time])]
    if len(set(asked)) != len(asked):
        raise ConfigError(
            f"a column is asked for twice: target {target!r}, time {time!r}, features {features}"
        )
    header, rows, numbers = _table(text, where)
    index = _column_index(header, asked, where)
    values = _numbers(rows, numbers, [index[c] for c in columns], columns, where)
    if time is None:
        times: np.ndarray = np.arange(len(rows), dtype=np.int64)
        return _with_gaps(name, times, values, columns, None, numbers, gaps, where)
    stamps = _timestamps([row[index[time]] for row in rows], numbers, time, where)
    _check_order(stamps, numbers, where)
    if not regular:
        return _with_gaps(name, stamps, values, columns, None, numbers, gaps, where)
    grid, positions, frequency = _regular_grid(stamps, numbers, where)
    if len(grid) != len(stamps):
        if gaps == "refuse":
            first = int(np.flatnonzero(np.diff(positions) != 1)[0]) + 1
            steps = int(positions[first] - positions[first - 1])
            raise DataError(
                f"{where}: row {numbers[first]}: timestamp {_show(stamps[first])} comes {steps} steps of "
                f"{frequency or grid[1] - grid[0]} after row {numbers[first - 1]}'s "
                f"{_show(stamps[first - 1])}: {steps - 1} missing; pass gaps='fill' to insert and interpolate"
            )
        full = np.full((len(grid), values.shape[1]), np.nan)
        full[positions] = values
        values = full
    return _with_gaps(name, grid, values, columns, frequency, numbers, gaps, where)


def _with_gaps(
    name: str,
    times: np.ndarray,
    values: np.ndarray,
    columns: tuple[str, ...],
    frequency: str | None,
    numbers: list[int],
    gaps: Gaps,
    where: str,
) -> Series:
    """The Series, its missing values refused (naming the first) or filled."""
    missing = np.isnan(values)
    if gaps == "refuse" and missing.any():
        row, column = np.argwhere(missing)[0]
        raise DataError(
            f"{where}: row {numbers[row]}, column {columns[column]!r}: a missing value; "
            f"pass gaps='fill' to interpolate it"
        )
    return Series(name, times, _fill_missing(values, columns, where), columns, columns[0], None, frequency)


def _fill_missing(values: np.ndarray, columns: Sequence[str], where: str) -> np.ndarray:
    """Each column's NaN interpolated linearly in the row number; the nearest value repeated at the ends."""
    filled = values.copy()
    steps = np.arange(len(values))
    for column, name in enumerate(columns):
        known = ~np.isnan(values[:, column])
        if not known.any():
            raise DataError(f"{where}: column {name!r} holds no values")
        filled[:, column] = np.interp(steps, steps[known], values[known, column])
    return filled


def _table(text: str, where: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows (cells stripped) and each row's number (its line; the header is row 1)."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []
    try:
        for record in reader:
            cells = [cell.strip() for cell in record]
            if not any(cells) and len(cells) <= 1:
                continue  # a blank line
            if header is None:
                header = cells
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{where}: row {reader.line_num} has {len(cells)} cells, the header has {len(header)}"
                )
            rows.append(cells)
            numbers.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"{where}: row {reader.line_num}: not CSV ({error})") from None
    if header is None:
        raise DataError(f"{where}: the file is empty (no header row)")
    if not rows:
        raise DataError(f"{where}: no data rows, only the header")
    return header, rows, numbers


def _column_index(header: list[str], names: Sequence[str], where: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for name in names:
        found = [i for i, cell in enumerate(header) if cell == name]
        if not found:
            present = ", ".join(repr(cell) for cell in header)
            raise DataError(f"{where}: no column {name!r}; the columns are {present}")
        if len(found) > 1:
            raise DataError(f"{where}: column {name!r} appears {len(found)} times in the header")
        index[name] = found[0]
    return index


def _numbers(
    rows: list[list[str]], numbers: list[int], index: list[int], columns: Sequence[str], where: str
) -> np.ndarray:
    """(N, F) float64 of the chosen cells, NaN where a cell is missing (`MISSING_CELLS`)."""
    values = np.empty((len(rows), len(index)))
    for i, row in enumerate(rows):
        for j, k in enumerate(index):
            cell = row[k]
            if cell.lower() in MISSING_CELLS:
                values[i, j] = np.nan
                continue
            try:
                value = float(cell)
            except ValueError:
                value = None
            if value is None or not np.isfinite(value):
                raise DataError(f"{where}: row {numbers[i]}, column {columns[j]!r}: {cell!r} is not a number")
            values[i, j] = value
    return values


def _timestamps(cells: list[str], numbers: list[int], column: str, where: str) -> np.ndarray:
    """(N,) datetime64[us] (naive UTC) of the cells, or int64 when every cell is an integer."""
    for cell, number in zip(cells, numbers, strict=True):
        if not cell:
            raise DataError(f"{where}: row {number}, column {column!r}: no timestamp")
    if all(INTEGER.fullmatch(cell) for cell in cells):
        return np.array([int(cell) for cell in cells], dtype=np.int64)
    import pandas as pd

    with warnings.catch_warnings():
        # pandas warns when it cannot guess one format and reads each cell on its own; a cell it cannot read
        # at all becomes NaT and is reported below, so the warning adds nothing.
        warnings.simplefilter("ignore", UserWarning)
        stamps = pd.to_datetime(pd.Series(cells), errors="coerce", utc=True)
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise DataError(
            f"{where}: row {numbers[i]}, column {column!r}: cannot read {cells[i]!r} as a timestamp "
            f"(in the format of row {numbers[0]}'s {cells[0]!r})"
        )
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]")


def _check_order(stamps: np.ndarray, numbers: list[int], where: str) -> None:
    steps = np.diff(stamps)
    wrong = np.flatnonzero(steps <= np.zeros((), steps.dtype))
    if wrong.size:
        i = int(wrong[0])
        if stamps[i + 1] == stamps[i]:
            raise DataError(
                f"{where}: rows {numbers[i]} and {numbers[i + 1]} have the same timestamp {_show(stamps[i])}"
            )
        raise DataError(
            f"{where}: row {numbers[i + 1]}'s timestamp {_show(stamps[i + 1])} comes before "
            f"row {numbers[i]}'s {_show(stamps[i])}: the rows must be in time order"
        )


def _regular_grid(
    stamps: np.ndarray, numbers: list[int], where: str
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The regular grid from the first timestamp to the last, each row's position on it, and its alias.

    Raises DataError naming the first row off the grid when no regular step holds every timestamp.
    """
    n = len(stamps)
    if n < 3:  # too few for pandas to name a step; two rows are a regular step of their own
        return stamps, np.arange(n), None
    if stamps.dtype.kind == "i":
        step = int(np.diff(stamps).min())
        offset = stamps - stamps[0]
        off = np.flatnonzero(offset % step)
        if off.size:
            raise DataError(
                f"{where}: row {numbers[off[0]]}: step {stamps[off[0]]} is off the series' regular step "
                f"of {step} from {_show(stamps[0])}"
            )
        _check_growth(int(offset[-1] // step) + 1, n, f"a step of {step}", where)
        return stamps[0] + step * np.arange(offset[-1] // step + 1), offset // step, None
    return _calendar_grid(stamps, numbers, where)


def _calendar_grid(
    stamps: np.ndarray, numbers: list[int], where: str
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """`_regular_grid` for timestamps: pandas' frequency of them all, or else the coarsest of the frequencies
    it names for stretches of consecutive rows (failing any, the smallest step) whose grid holds every one."""
    import pandas as pd

    index = pd.DatetimeIndex(stamps)
    frequency = _infer_frequency(index)
    if frequency is not None:
        return stamps, np.arange(len(stamps)), frequency
    # alias -> (how many stretches have it, one step's typical length)
    candidates: dict[str, tuple[int, pd.Timedelta]] = {}
    for length in STRETCHES:
        last = len(stamps) - length
        if last < 0:
            continue
        for start in np.unique(np.linspace(0, last, min(STRETCH_SAMPLES, last + 1)).astype(int)):
            found = _infer_frequency(index[start : start + length])
            if found is not None:
                count = candidates.get(found, (0, None))[0] + 1
                candidates[found] = count, (index[start + length - 1] - index[start]) / (length - 1)
    if not candidates:
        smallest = pd.Timedelta(np.diff(stamps).min())
        candidates[pd.tseries.frequencies.to_offset(smallest).freqstr] = 0, smallest
    span = index[-1] - index[0]
    best: tuple[pd.DatetimeIndex, np.ndarray, str] | None = None
    for alias, (_, step) in candidates.items():
        if span / step > MAX_GRID_GROWTH * len(stamps):
            continue
        grid = pd.date_range(index[0], index[-1], freq=alias)
        positions = grid.get_indexer(index)
        if (positions >= 0).all() and (best is None or len(grid) < len(best[0])):
            best = grid, positions, alias
    if best is None:
        alias, (_, step) = max(candidates.items(), key=lambda item: item[1][0])
        _check_growth(int(span / step), len(stamps), f"a step of {alias}", where)
        row = int(np.argmax(pd.date_range(index[0], index[-1], freq=alias).get_indexer(index) < 0))
        raise DataError(
            f"{where}: row {numbers[row]}: timestamp {_show(stamps[row])} is off the series' regular step "
            f"({alias}, from row {numbers[0]}'s {_show(stamps[0])})"
        )
    grid, positions, alias = best
    return grid.to_numpy().astype("datetime64[us]"), positions, alias


def _show(stamp: np.generic) -> str:
    """A timestamp as short as it is exact ("1986-03-31", "1986-03-31T12:30"), or a step number."""
    if isinstance(stamp, np.datetime64):
        return str(np.datetime_as_string(stamp, unit="auto"))
    return str(stamp)


def _check_growth(size: int, n: int, step: str, where: str) -> None:
    if size > MAX_GRID_GROWTH * n:
        raise DataError(
            f"{where}: at {step}, the {n} rows would spread over {size} steps: too sparse to be one regular "
            f"series (more than {MAX_GRID_GROWTH}x as many steps as rows)"
        )


def _infer_frequency(index: pd.DatetimeIndex) -> str | None:
    """pandas' alias of the step of `index` ("MS", "W-SAT"), or None when it has no regular step."""
    import pandas as pd

    with warnings.catch_warnings():
        # pandas 3 warns that infer_freq will return an offset instead of its alias; either is read below.
        warnings.simplefilter("ignore", DeprecationWarning)
        found = pd.infer_freq(index)
    return found if found is None or isinstance(found, str) else found.freqstr


def _statsmodels_csv(dataset: str) -> tuple[str, str]:
    """The text of statsmodels' datasets/<dataset>/<dataset>.csv, and its path."""
    path = package_file("statsmodels", f"datasets/{dataset}/{dataset}.csv", f"the {dataset} series")
    return path.read_text(encoding="utf-8"), str(path)


def _sunspots() -> Series:
    """statsmodels' sunspots.csv: "YEAR","SUNACTIVITY", one row a year (YEAR as 1700 or 1700.0)."""
    text, where = _statsmodels_csv("sunspots")
    table = _parse(text, where, "sunspots", "SUNACTIVITY", None, ("YEAR",), "refuse")
    years = table.values[:, 1]
    _check_consecutive(years, where)
    times = (years.astype(np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[us]")
    return Series("sunspots", times, table.values[:, :1], ("SUNACTIVITY",), "SUNACTIVITY", 11, "YS-JAN")


def _co2() -> Series:
    """statsmodels' co2.csv: "date,co2", dates as YYYYMMDD a week apart (Saturdays); 59 values missing.

    The missing values (runs of 1 to 5 weeks, one of 8 and one of 18; none at either end) are interpolated
    linearly between the weeks on either side, as `read_series_csv(..., gaps="fill")` does: across the
    18-week gap (1964) this flattens one seasonal swing.
    """
    import pandas as pd

    text, where = _statsmodels_csv("co2")
    series = _parse(text, where, "co2", "co2", None, (), "fill")
    _, rows, _ = _table(text, where)
    dates = pd.to_datetime([row[0] for row in rows], format="%Y%m%d").to_numpy().astype("datetime64[us]")
    if not (np.diff(dates) == np.timedelta64(7, "D")).all():
        raise DataError(f"{where}: the dates are not one week apart")
    return replace(series, times=dates, period=52, frequency="W-SAT")


def _elnino() -> Series:
    """statsmodels' elnino.csv: "YEAR","JAN",...,"DEC", one row a year; read row by row into one series."""
    text, where = _statsmodels_csv("elnino")
    header, _, _ = _table(text, where)
    months = tuple(header[1:])
    table = _parse(text, where, "elnino", "YEAR", None, months, "refuse").values  # (years, 1 + 12)
    if len(months) != 12:
        raise DataError(f"{where}: expected YEAR and 12 month columns, got {header}")
    _check_consecutive(table[:, 0], where)
    first = np.datetime64(f"{int(table[0, 0])}-01", "M")
    times = (first + np.arange(table.shape[0] * 12)).astype("datetime64[us]")
    values = table[:, 1:].reshape(-1, 1)
    return Series("elnino", times, values, ("TEMPERATURE",), "TEMPERATURE", 12, "MS")


def _airline() -> Series:
    """sktime's Airline.csv: "Date,Passengers", dates as 1949-01, one row a month."""
    data = archive_member("sktime", AIRLINE_MEMBER, "the airline series")
    series = _parse(
        data.decode("utf-8-sig"), f"sktime:{AIRLINE_MEMBER}", "airline", "Passengers", "Date", (), "refuse"
    )
    if series.frequency != "MS":
        raise DataError(f"sktime:{AIRLINE_MEMBER}: expected monthly dates, got frequency {series.frequency}")
    return replace(series, period=12)


def _msft() -> Series:
    """pmdarima's msft.tar.gz, a gzipped tar holding msft.csv: "Date,Open,High,Low,Close,Volume,OpenInt",
    one row a trading day (OpenInt is always 0 and left out)."""
    where = f"pmdarima:{MSFT_MEMBER}"
    data = archive_member("pmdarima", MSFT_MEMBER, "the msft series")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            member = archive.extractfile("msft.csv")
            if member is None:
                raise DataError(f"{where}: msft.csv is not a file")
            text = member.read().decode("utf-8-sig")
    except (tarfile.TarError, KeyError, OSError, EOFError) as error:
        raise DataError(f"{where}: cannot read msft.csv from it ({error})") from None
    features = ("Open", "High", "Low", "Volume")
    return _parse(text, f"{where}:msft.csv", "msft", "Close", "Date", features, "refuse", regular=False)


def _check_consecutive(years: np.ndarray, where: str) -> None:
    if not (np.diff(years) == 1).all():
        raise DataError(f"{where}: the years are not consecutive")


_LOADERS: dict[str, Callable[[], Series]] = {
    "sunspots": _sunspots,
    "co2": _co2,
    "elnino": _elnino,
    "airline": _airline,
    "msft": _msft,
}

__all__ = ["BUNDLED", "MISSING_CELLS", "Series", "load_series", "read_series_csv"]
