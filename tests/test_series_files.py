"""The series readers: the user's CSV read back exactly, every bad file named by its path and row or column,
gaps refused or filled, and the bundled series (tiny fake wheels in their real formats; the real ones where
they are here)."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks import packages
from rnnlab.tasks.packages import MissingDataset
from rnnlab.tasks.series_files import Series, load_series, read_series_csv


def write(tmp_path, text: str, name: str = "series.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def days(*stamps: str) -> np.ndarray:
    return np.array(stamps, dtype="datetime64[us]")


def test_a_csv_is_read_with_the_target_first_and_its_frequency_named(tmp_path):
    path = write(
        tmp_path,
        "month,price,sales\n2020-01,1.5,10\n2020-02,2.5,20\n2020-03,3.5,30\n2020-04,4.5,40\n",
    )
    series = read_series_csv(path, "sales", time="month", features=["price"])
    assert series.name == "series"
    assert series.columns == ("sales", "price") and series.target == "sales"
    np.testing.assert_array_equal(series.values, [[10, 1.5], [20, 2.5], [30, 3.5], [40, 4.5]])
    np.testing.assert_array_equal(series.times, days("2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"))
    assert series.frequency == "MS" and series.period is None and len(series) == 4


def test_without_a_time_column_the_rows_are_steps_and_integer_times_are_step_numbers(tmp_path):
    path = write(tmp_path, "t,y\n5,1\n7,2\n9,3\n")
    assert read_series_csv(path, "y").times.tolist() == [0, 1, 2]
    series = read_series_csv(path, "y", time="t")
    assert series.times.dtype == np.int64 and series.times.tolist() == [5, 7, 9]
    assert series.frequency is None


def test_time_zones_are_read_as_utc_and_blank_lines_are_skipped(tmp_path):
    path = write(
        tmp_path, "when,y\n2020-01-01T01:00+01:00,1\n\n2020-01-01T02:00+01:00,2\n2020-01-01T03:00+01:00,3\n"
    )
    series = read_series_csv(path, "y", time="when")
    np.testing.assert_array_equal(
        series.times, days("2020-01-01T00:00", "2020-01-01T01:00", "2020-01-01T02:00")
    )
    assert series.frequency == "h"


BAD_FILES = [
    pytest.param("", {}, "the file is empty", id="empty"),
    pytest.param("\n\n", {}, "the file is empty", id="blank"),
    pytest.param("date,y\n", {}, "no data rows", id="header-only"),
    pytest.param(
        "date,y\n2020-01-01,1\n",
        {"target": "sales"},
        "no column 'sales'; the columns are 'date', 'y'",
        id="column",
    ),
    pytest.param("date,y\n2020-01-01,1\n", {"features": ["x"]}, "no column 'x'", id="feature"),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,abc\n", {}, "row 3, column 'y': 'abc' is not a number", id="text"
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,inf\n", {}, "row 3, column 'y': 'inf' is not a number", id="inf"
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,2,3\n", {}, "row 3 has 3 cells, the header has 2", id="cells"
    ),
    pytest.param("date,y,y\n2020-01-01,1,2\n", {}, "column 'y' appears 2 times", id="twice"),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-03,2\n2020-01-02,3\n",
        {},
        "row 4's timestamp 2020-01-02 comes before row 3's 2020-01-03",
        id="unsorted",
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n",
        {},
        "rows 3 and 4 have the same timestamp 2020-01-02",
        id="duplicate",
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,2\nsoon,3\n",
        {},
        "row 4, column 'date': cannot read 'soon' as a timestamp",
        id="timestamp",
    ),
    pytest.param("date,y\n2020-01-01,1\n,2\n", {}, "row 3, column 'date': no timestamp", id="no-timestamp"),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,\n2020-01-03,3\n",
        {},
        "row 3, column 'y': a missing value; pass gaps='fill'",
        id="missing-value",
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-02-01,2\n2020-03-01,3\n2020-06-01,6\n2020-07-01,7\n",
        {},
        "row 5: timestamp 2020-06-01 comes 3 steps of MS after row 4's 2020-03-01: 2 missing",
        id="missing-months",
    ),
    pytest.param(
        "date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n2020-01-04,4\n2020-01-06,6\n",
        {},
        "row 6: timestamp 2020-01-06 comes 2 steps of D after row 5's 2020-01-04: 1 missing",
        id="missing-day",
    ),
    pytest.param(
        "t,y\n0,1\n3,2\n5,3\n",
        {"time": "t"},
        "row 3: step 3 is off the series' regular step of 2 from 0",
        id="off-step",
    ),
]


@pytest.mark.parametrize(("text", "arguments", "message"), BAD_FILES)
def test_every_bad_file_is_named_with_its_row_or_column(tmp_path, text, arguments, message):
    path = write(tmp_path, text)
    arguments = {"target": "y", "time": "date", **arguments}
    with pytest.raises(DataError) as error:
        read_series_csv(path, **arguments)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_a_missing_file_and_a_timestamp_off_every_grid_are_errors_even_when_filling(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_series_csv(tmp_path / "none.csv", "y")
    rows = "".join(f"2020-01-{day:02d} 00:00,{day}\n" for day in range(1, 10))
    path = write(tmp_path, f"date,y\n{rows}2020-01-10 12:00,10\n2020-01-11 00:00,11\n")
    with pytest.raises(
        DataError, match=r"row 11: timestamp 2020-01-10T12:00 is off the series' regular step \(D"
    ):
        read_series_csv(path, "y", time="date", gaps="fill")


def test_gaps_must_be_refuse_or_fill_and_a_column_is_asked_for_once(tmp_path):
    path = write(tmp_path, "date,y\n2020-01-01,1\n")
    with pytest.raises(ConfigError, match="gaps must be 'refuse' or 'fill'"):
        read_series_csv(path, "y", gaps="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="asked for twice"):
        read_series_csv(path, "y", features=["y"])


def test_fill_interpolates_missing_values_linearly_and_repeats_the_nearest_at_the_ends(tmp_path):
    path = write(tmp_path, "y,x\n,1\n2,NA\n,3\n,4\n8,nan\n,null\n")
    series = read_series_csv(path, "y", features=["x"], gaps="fill")
    np.testing.assert_array_equal(series.values[:, 0], [2, 2, 4, 6, 8, 8])
    np.testing.assert_array_equal(series.values[:, 1], [1, 2, 3, 4, 4, 4])
    with pytest.raises(DataError, match="column 'x' holds no values"):
        read_series_csv(write(tmp_path, "y,x\n1,\n2,\n"), "y", features=["x"], gaps="fill")


def test_fill_inserts_missing_months_at_the_regular_step_and_interpolates_them(tmp_path):
    path = write(tmp_path, "date,y\n2020-01-01,1\n2020-02-01,2\n2020-03-01,3\n2020-06-01,9\n2020-07-01,7\n")
    series = read_series_csv(path, "y", time="date", gaps="fill")
    expected = [f"2020-{month:02d}-01" for month in range(1, 8)]
    np.testing.assert_array_equal(series.times, days(*expected))
    np.testing.assert_array_equal(series.values[:, 0], [1, 2, 3, 5, 7, 9, 7])
    assert series.frequency == "MS"


def test_business_days_with_a_holiday_fill_at_business_days_not_calendar_days(tmp_path):
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-02-01"))
    weekdays = [d for d in dates if np.is_busday(d) and d != np.datetime64("2024-01-15")]
    rows = "".join(f"{d},{i}\n" for i, d in enumerate(weekdays))
    path = write(tmp_path, f"date,y\n{rows}")
    with pytest.raises(
        DataError, match="row 12: timestamp 2024-01-16 comes 2 steps of B after row 11's 2024-01-12"
    ):
        read_series_csv(path, "y", time="date")
    series = read_series_csv(path, "y", time="date", gaps="fill")
    assert series.frequency == "B" and len(series) == len(weekdays) + 1
    holiday = int(np.flatnonzero(series.times == np.datetime64("2024-01-15"))[0])
    assert series.values[holiday - 1 : holiday + 2, 0].tolist() == [9, 9.5, 10]


def test_fill_inserts_missing_step_numbers(tmp_path):
    path = write(tmp_path, "t,y\n0,0\n2,2\n4,4\n10,10\n")
    series = read_series_csv(path, "y", time="t", gaps="fill")
    assert series.times.tolist() == [0, 2, 4, 6, 8, 10]
    np.testing.assert_array_equal(series.values[:, 0], [0, 2, 4, 6, 8, 10])


def test_a_series_checks_that_its_parts_fit_together():
    with pytest.raises(DataError, match="do not fit together"):
        Series("s", np.arange(3), np.zeros((3, 1)), ("y",), "x", None, None)
    with pytest.raises(DataError, match="NaN or Inf"):
        Series("s", np.arange(1), np.full((1, 1), np.nan), ("y",), "y", None, None)


# --- bundled series: the real formats in tiny fake wheels -------------------------------------------------


def fake_wheel(folder, filename: str, member: str, data: bytes) -> None:
    with zipfile.ZipFile(folder / filename, "w") as wheel:
        wheel.writestr(member, data)


def msft_tar_gz(csv_text: str) -> bytes:
    """pmdarima's msft.tar.gz: a gzipped tar holding one file, msft.csv."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = csv_text.encode()
        info = tarfile.TarInfo("msft.csv")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_airline_is_read_from_sktimes_wheel(tmp_path, monkeypatch):
    rows = "".join(f"1949-{month:02d},{100 + month}\n" for month in range(1, 13))
    fake_wheel(
        tmp_path,
        "sktime-1.2.0-py3-none-any.whl",
        "sktime/datasets/data/Airline/Airline.csv",
        f"Date,Passengers\n{rows}".encode(),
    )
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    series = load_series("airline")
    assert (series.columns, series.period, series.frequency) == (("Passengers",), 12, "MS")
    np.testing.assert_array_equal(series.values[:, 0], np.arange(101, 113))
    assert series.times[0] == np.datetime64("1949-01-01") and series.times[-1] == np.datetime64("1949-12-01")


def test_msft_is_read_from_the_tar_gz_inside_pmdarimas_wheel(tmp_path, monkeypatch):
    text = (
        "Date,Open,High,Low,Close,Volume,OpenInt\n"
        "1986-03-13,0.0672,0.07533,0.0672,0.07533,1371330506,0\n"
        "1986-03-14,0.07533,0.07533,0.07533,0.07533,409569463,0\n"
        "1986-03-17,0.07533,0.07533,0.07533,0.07533,176995245,0\n"
        "1986-03-19,0.07533,0.07533,0.07533,0.0701,63655515,0\n"
    )
    wheel = "pmdarima-2.1.1-cp311-cp311-manylinux2014_x86_64.whl"
    fake_wheel(tmp_path, wheel, "pmdarima/datasets/data/msft.tar.gz", msft_tar_gz(text))
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    series = load_series("msft")
    assert series.columns == ("Close", "Open", "High", "Low", "Volume") and series.target == "Close"
    np.testing.assert_array_equal(series.values[:, 0], [0.07533, 0.07533, 0.07533, 0.0701])
    np.testing.assert_array_equal(series.values[:, 4], [1371330506, 409569463, 176995245, 63655515])
    # trading days, kept as they are: a missing day (a holiday) is no gap
    np.testing.assert_array_equal(series.times, days("1986-03-13", "1986-03-14", "1986-03-17", "1986-03-19"))
    assert series.period is None and series.frequency is None


def test_a_missing_archive_says_how_to_get_it_and_an_unknown_name_lists_the_series(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    with pytest.raises(MissingDataset, match="rnnlab data get sktime"):
        load_series("airline")
    with pytest.raises(ConfigError, match="available: sunspots, co2, elnino, airline, msft"):
        load_series("gold")


# --- the real bundled series, where they are here ---------------------------------------------------------

needs_statsmodels = pytest.mark.skipif(
    not packages.source("statsmodels").available(), reason="statsmodels is not installed"
)


@needs_statsmodels
def test_sunspots_are_309_years_from_1700():
    series = load_series("sunspots")
    assert len(series) == 309 and series.period == 11 and series.frequency == "YS-JAN"
    assert series.times[0] == np.datetime64("1700-01-01") and series.times[-1] == np.datetime64("2008-01-01")
    assert series.values[:3, 0].tolist() == [5, 11, 16] and series.values[-1, 0] == 2.9


@needs_statsmodels
def test_co2_is_2284_saturdays_with_its_59_gaps_filled_linearly():
    series = load_series("co2")
    assert len(series) == 2284 and series.period == 52 and series.frequency == "W-SAT"
    assert series.times[0] == np.datetime64("1958-03-29") and series.times[-1] == np.datetime64("2001-12-29")
    assert (np.diff(series.times) == np.timedelta64(7, "D")).all()
    # 1958-05-10 is missing, between 1958-05-03 (316.9) and 1958-05-17 (317.5)
    week = int(np.flatnonzero(series.times == np.datetime64("1958-05-10"))[0])
    assert series.values[week - 1 : week + 2, 0] == pytest.approx([316.9, 317.2, 317.5])


@needs_statsmodels
def test_elnino_is_one_monthly_series_read_year_by_year():
    series = load_series("elnino")
    assert len(series) == 732 and series.period == 12 and series.frequency == "MS"
    assert series.times[1] == np.datetime64("1950-02-01") and series.times[-1] == np.datetime64("2010-12-01")
    assert series.values[[0, 1, 12, -1], 0].tolist() == [23.11, 24.2, 24.19, 22.07]


@pytest.mark.skipif(
    not packages.source("sktime").available(), reason="sktime's wheel is not in the data cache"
)
def test_the_real_airline_series_is_144_months():
    series = load_series("airline")
    assert len(series) == 144 and series.values[[0, -1], 0].tolist() == [112, 432]
    assert series.times[-1] == np.datetime64("1960-12-01")


@pytest.mark.skipif(
    not packages.source("pmdarima").available(), reason="pmdarima's wheel is not in the data cache"
)
def test_the_real_msft_series_is_7983_trading_days():
    series = load_series("msft")
    assert len(series) == 7983 and series.values[-1, 0] == 83.87
    assert series.times[0] == np.datetime64("1986-03-13") and series.times[-1] == np.datetime64("2017-11-10")
    assert np.is_busday(series.times.astype("datetime64[D]")).all()
