"""Time labels of forecasts: frequency inference and extrapolation, checked against dates computed with the
standard library's calendar and datetime (month ends, leap years, weekends, midnight)."""
from __future__ import annotations

import calendar
import datetime as dt

import numpy as np
import pytest

from rnnkit.data.series import load_csv
from rnnkit.errors import UserError
from rnnkit.tasks.forecast_time import Frequency, IrregularTime, future_labels, infer_frequency, parse_labels

DATA = "/work/shared/data"


def month_ends(year, month, n):
    """n month-end dates from (year, month) on, by the calendar module."""
    out = []
    for k in range(n):
        y, m = year + (month - 1 + k) // 12, (month - 1 + k) % 12 + 1
        out.append(dt.date(y, m, calendar.monthrange(y, m)[1]).isoformat())
    return out


def days(start, n, step=1):
    d = dt.date.fromisoformat(start)
    return [(d + dt.timedelta(days=step * k)).isoformat() for k in range(n)]


def test_monthly_labels_of_the_airline_file():
    (s,) = load_csv(f"{DATA}/airline.csv", target="passengers", time="month")
    f = infer_frequency(s.time)
    assert f.name == "monthly" and (f.kind, f.step) == ("month", 1)
    values, texts = future_labels(s.time, 14, f)
    assert s.time[-1] == "1960-12"
    assert texts == [f"1961-{m:02d}" for m in range(1, 13)] + ["1962-01", "1962-02"]
    assert values.dtype == np.dtype("datetime64[M]")


def test_yearly_integer_labels_of_the_sunspots_file():
    (s,) = load_csv(f"{DATA}/sunspots.csv", target="sunspots", time="year")
    f = infer_frequency(s.time)
    assert f.name == "yearly"
    values, texts = future_labels(s.time, 3, f)
    assert texts == [str(int(s.time[-1]) + k) for k in (1, 2, 3)]
    assert values.dtype == np.dtype("datetime64[Y]")


def test_yearly_dates_across_leap_years():
    labels = [f"{y}-01-01" for y in range(1949, 1961)]  # 365 or 366 days apart
    f = infer_frequency(labels)
    assert f.name == "yearly"
    assert future_labels(labels, 3, f)[1] == ["1961-01-01", "1962-01-01", "1963-01-01"]
    ends = [f"{y}-12-31" for y in range(1990, 1995)]
    assert future_labels(ends, 2)[1] == ["1995-12-31", "1996-12-31"]


@pytest.mark.parametrize("year,month", [(2019, 1), (2019, 11), (2023, 6)])
def test_month_end_dates_follow_the_calendar(year, month):
    labels = month_ends(year, month, 14)  # crosses a February (leap in 2020, 2024)
    f = infer_frequency(labels)
    assert f.name == "monthly (month end)"
    y, m = year + (month - 1 + 14) // 12, (month - 1 + 14) % 12 + 1
    assert future_labels(labels, 15, f)[1] == month_ends(y, m, 15)


def test_quarter_ends_and_quarter_labels():
    labels = month_ends(2018, 3, 12)[::3]  # Mar, Jun, Sep, Dec
    f = infer_frequency(labels)
    assert f.name == "quarterly (month end)"
    assert future_labels(labels, 4, f)[1] == ["2019-03-31", "2019-06-30", "2019-09-30", "2019-12-31"]
    assert future_labels(["1990Q3", "1990Q4", "1991Q1"], 3)[1] == ["1991Q2", "1991Q3", "1991Q4"]


def test_day_of_month_clamped_in_short_months():
    labels = ["2021-11-30", "2021-12-30", "2022-01-30", "2022-02-28", "2022-03-30"]
    f = infer_frequency(labels)
    assert f.name == "monthly (day 30)"
    assert future_labels(labels, 3, f)[1] == ["2022-04-30", "2022-05-30", "2022-06-30"]
    start = [f"2020-{m:02d}-01 00:00:00" for m in range(1, 13)]  # how pandas writes Timestamps
    f = infer_frequency(start)
    assert f.name == "monthly (month start)"
    assert future_labels(start, 2, f)[1] == ["2021-01-01 00:00:00", "2021-02-01 00:00:00"]


def test_daily_weekly_hourly_and_business_days():
    daily = days("2020-02-20", 10)  # through 29 February
    assert infer_frequency(daily).name == "daily"
    assert future_labels(daily, 3)[1] == days("2020-02-29", 4)[1:]
    weekly = days("2021-12-20", 5, step=7)
    assert infer_frequency(weekly).name == "weekly"
    assert future_labels(weekly, 2)[1] == days("2021-12-20", 7, step=7)[5:]
    hourly = ["2020-12-31 21:00", "2020-12-31 22:00", "2020-12-31 23:00"]
    assert infer_frequency(hourly).name == "hourly"
    assert future_labels(hourly, 2)[1] == ["2021-01-01 00:00", "2021-01-01 01:00"]
    weekdays = [d for d in days("2024-01-01", 12) if dt.date.fromisoformat(d).weekday() < 5]
    f = infer_frequency(weekdays)
    assert f.name == "business daily"
    expected = [d for d in days("2024-01-13", 10) if dt.date.fromisoformat(d).weekday() < 5][:4]
    assert future_labels(weekdays, 4, f)[1] == expected


def test_integer_steps_and_their_stride():
    assert future_labels(["0", "1", "2"], 2)[1] == ["3", "4"]
    f = infer_frequency(["10", "15", "20"])
    assert (f.kind, f.step) == ("int", 5)
    np.testing.assert_array_equal(f.future(20, 3), [25, 30, 35])


@pytest.mark.parametrize("labels,message", [
    (["2020-01-01", "2020-01-02", "2020-01-04"], "2 days"),
    (["1990-01", "1990-02", "1990-04"], "2 months"),
    (["1", "2", "4"], "unevenly"),
    (["Jan 1949", "Feb 1949"], "'Jan 1949' is not a date"),
    (["2020-01-01"], "one time label"),
])
def test_irregular_labels_are_named(labels, message):
    with pytest.raises(IrregularTime, match=message):
        infer_frequency(labels)


@pytest.mark.parametrize("labels,message", [
    (["2020-01-02", "2020-01-01", "2020-01-03"], "goes backwards at position 2"),
    (["1949-01", "1949-02", "1949-02"], "repeats at position 3.*--series-col"),
])
def test_labels_out_of_order_are_refused(labels, message):
    with pytest.raises(UserError, match=message):
        infer_frequency(labels)


def test_frequency_round_trips_through_json():
    f = infer_frequency(month_ends(2019, 1, 6))
    assert Frequency.from_json(f.to_json()) == f
    values, style = parse_labels(["2020-01-01T00:00:00Z", "2020-01-01T01:00:00+00:00"])
    assert style == "iso" and values[1] - values[0] == np.timedelta64(3600, "s")
