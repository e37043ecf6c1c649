"""Time labels of a forecast: parse a time column, infer its frequency (yearly, quarterly, monthly with its day
rule, weekly, daily, business daily, hourly, ... or integer steps) and extrapolate it past the end of the data.

Irregular labels are not guessed at: :func:`infer_frequency` raises :class:`IrregularTime` with the reason,
and the forecaster numbers the future steps instead and says so. Pandas is optional (only :func:`as_index`).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from rnnkit.errors import UserError

_INT = re.compile(r"^[+-]?\d+$")
_QUARTER = re.compile(r"^(\d{4})[- ]?Q([1-4])$", re.IGNORECASE)
_TZ = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_FIXED_NAMES = {1: "secondly", 60: "minutely", 3600: "hourly", 86400: "daily", 7 * 86400: "weekly"}
_MONTH_NAMES = {1: "monthly", 3: "quarterly", 6: "half-yearly", 12: "yearly"}


class IrregularTime(UserError):
    """The time labels have no single frequency (or cannot be read as dates); the message says why."""


@dataclass(frozen=True)
class Frequency:
    """How consecutive time labels advance.

    ``kind``: "fixed" (a constant duration of ``step`` seconds), "month" (``step`` calendar months on day
    ``day`` of the month, clamped to the month's length; ``day`` 31 is the month end), "bday" (business days),
    or "int" (integer labels advancing by ``step``). ``unit`` is the NumPy datetime unit of the labels,
    ``offset`` the time of day in seconds (month and bday kinds), ``style`` how labels are written ("iso",
    "iso-space" for a space before the time of day, "quarter" for 1990Q1, "int").
    """

    kind: str
    step: int
    unit: str = ""
    day: int = 1
    offset: int = 0
    style: str = "iso"

    @property
    def name(self) -> str:
        """A human-readable description, e.g. "monthly (month start)"."""
        if self.kind == "int":
            return "integer steps" + ("" if self.step == 1 else f" of {self.step}")
        if self.kind == "bday":
            return "business daily"
        if self.kind == "fixed":
            if self.step in _FIXED_NAMES:
                return _FIXED_NAMES[self.step]
            for size, word in ((86400, "days"), (3600, "hours"), (60, "minutes"), (1, "seconds")):
                if self.step % size == 0:
                    return f"every {self.step // size} {word}"
        base = _MONTH_NAMES.get(self.step, f"every {self.step} months")
        if self.unit in ("Y", "M") or self.step % 12 == 0:
            return base
        rule = "month start" if self.day == 1 else "month end" if self.day == 31 else f"day {self.day}"
        return f"{base} ({rule})"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Frequency":
        return cls(**d)

    # -- extrapolation --------------------------------------------------------------------------
    def future(self, last, n: int) -> np.ndarray:
        """The ``n`` labels after ``last`` (a parsed label): datetime64 in ``unit``, or int64 for "int"."""
        k = np.arange(1, n + 1)
        if self.kind == "int":
            return int(last) + self.step * k
        last = np.datetime64(last, self.unit)
        if self.kind == "fixed":
            return (last.astype("datetime64[s]") + k * np.timedelta64(self.step, "s")).astype(f"datetime64[{self.unit}]")
        if self.kind == "bday":
            day = last.astype("datetime64[D]")
            days = np.busday_offset(day, k, roll="forward")
            return (days.astype("datetime64[s]") + np.timedelta64(self.offset, "s")).astype(f"datetime64[{self.unit}]")
        months = last.astype("datetime64[M]") + k * self.step  # calendar months
        if self.unit in ("Y", "M"):
            return months.astype(f"datetime64[{self.unit}]")
        length = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(int)
        days = months.astype("datetime64[D]") + (np.minimum(self.day, length) - 1)
        return (days.astype("datetime64[s]") + np.timedelta64(self.offset, "s")).astype(f"datetime64[{self.unit}]")

    def format(self, values) -> list[str]:
        """Labels written the way the input wrote them."""
        if self.kind == "int":
            return [str(int(v)) for v in values]
        out = [str(v) for v in np.asarray(values, dtype=f"datetime64[{self.unit}]")]
        if self.style == "quarter":
            return [f"{s[:4]}Q{(int(s[5:7]) - 1) // 3 + 1}" for s in out]
        if self.style == "iso-space":
            return [s.replace("T", " ") for s in out]
        return out


# -- parsing ------------------------------------------------------------------------------------------
def parse_labels(labels) -> tuple[np.ndarray, str]:
    """Time labels (strings, numbers or datetimes) -> (values, style): datetime64 or int64 values.

    Accepted: integers (4 digits are years), ISO dates and times (YYYY, YYYY-MM, YYYY-MM-DD, with a time
    of day after T or a space; a trailing UTC offset such as Z or +01:00 is dropped, so times are read and
    written as local times) and quarters (1990Q1, 1990-Q1).
    Anything else raises :class:`IrregularTime` naming the first label that could not be read.
    """
    texts = [str(t).strip() for t in labels]
    if not texts:
        raise IrregularTime("the time column is empty")
    if all(_INT.match(t) for t in texts):
        if all(len(t.lstrip("+-")) == 4 and not t.startswith("-") for t in texts):
            return np.array(texts, dtype="datetime64[Y]"), "iso"
        return np.array([int(t) for t in texts], dtype=np.int64), "int"
    if all(_QUARTER.match(t) for t in texts):
        ms = [f"{m.group(1)}-{3 * int(m.group(2)) - 2:02d}" for m in map(_QUARTER.match, texts)]
        return np.array(ms, dtype="datetime64[M]"), "quarter"
    clean = [_TZ.sub("", t) if len(t) > 10 else t for t in texts]
    values = []
    for t, c in zip(texts, clean):
        try:
            values.append(np.datetime64(c))
        except ValueError:
            raise IrregularTime(f"time label {t!r} is not a date the forecaster can read (ISO YYYY-MM-DD, "
                                "YYYY-MM, YYYY, an optional time of day, YYYYQn, or an integer)") from None
    unit = min((np.datetime_data(v.dtype)[0] for v in values), key=_UNITS.index, default="s")
    style = "iso-space" if any(" " in c for c in clean) else "iso"
    return np.array(values, dtype=f"datetime64[{unit}]"), style


_UNITS = ["as", "fs", "ps", "ns", "us", "ms", "s", "m", "h", "D", "W", "M", "Y"]  # finest first


# -- inference ----------------------------------------------------------------------------------------
def _gaps_text(d: np.ndarray, unit: str = "") -> str:
    """The three commonest steps with their counts, e.g. "1 day (290 times), 3 days (once)"."""
    vals, counts = np.unique(d, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:3]
    words = []
    for i in order:
        v, c = int(vals[i]), int(counts[i])
        what = f"{v} {unit if v == 1 else unit + 's'}".strip() if unit else str(v)
        words.append(f"{what} ({'once' if c == 1 else f'{c} times'})")
    return ", ".join(words)


def infer_frequency(labels) -> Frequency:
    """The frequency of a time column; :class:`IrregularTime` if it has none, a UserError if the labels go
    backwards or repeat (the rows are out of time order, or several series are stacked)."""
    values, style = parse_labels(labels)
    if len(values) < 2:
        raise IrregularTime("one time label is not enough to infer a frequency")
    if values.dtype.kind == "i":
        d = np.diff(values)
        _check_order(d, labels)
        if np.all(d == d[0]):
            return Frequency("int", int(d[0]), style="int")
        raise IrregularTime(f"the integer time labels advance unevenly (steps of {_gaps_text(d)})")
    unit = np.datetime_data(values.dtype)[0]
    secs = values.astype("datetime64[s]").astype(np.int64)
    _check_order(np.diff(secs), labels)
    months = values.astype("datetime64[M]").astype(np.int64)
    if unit in ("Y", "M"):
        dm = np.diff(months)
        if np.all(dm == dm[0]):
            return Frequency("month", int(dm[0]), unit, style=style)
        raise IrregularTime(f"the time labels advance unevenly (steps of {_gaps_text(dm, 'month')})")
    d = np.diff(secs)
    fixed = bool(np.all(d == d[0]))
    day_start = values.astype("datetime64[D]")
    offsets = secs - day_start.astype("datetime64[s]").astype(np.int64)
    if np.all(offsets == offsets[0]) and (not fixed or d[0] >= 28 * 86400):
        # calendar months first: yearly dates are 365 days apart until a leap year comes
        dm = np.diff(months)
        start = values.astype("datetime64[M]").astype("datetime64[D]")
        dom = (day_start - start).astype(np.int64) + 1
        length = ((values.astype("datetime64[M]") + 1).astype("datetime64[D]") - start).astype(np.int64)
        anchor = int(dom.max())
        if np.all(dm == dm[0]) and dm[0] > 0 and np.all(dom == np.minimum(anchor, length)):
            month_end = bool(np.all(dom == length))
            return Frequency("month", int(dm[0]), unit, 31 if month_end else anchor, int(offsets[0]), style)
    if fixed:
        return Frequency("fixed", int(d[0]), unit, style=style)
    if np.all(offsets == offsets[0]) and np.all(np.is_busday(day_start)) \
            and np.all(np.busday_count(day_start[:-1], day_start[1:]) == 1):
        return Frequency("bday", 1, unit, offset=int(offsets[0]), style=style)
    days = d / 86400
    unit_word, scaled = ("day", days) if np.all(days == np.round(days)) else ("second", d)
    first = int(np.flatnonzero(d != d[0])[0])
    raise IrregularTime(f"the time labels advance unevenly (gaps of {_gaps_text(scaled.astype(np.int64), unit_word)}"
                        f"; the first uneven one is from {labels[first]} to {labels[first + 1]})")


def _check_order(d: np.ndarray, labels) -> None:
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        k = int(bad[0])
        what = "repeats" if d[k] == 0 else "goes backwards"
        raise UserError(f"the time column {what} at position {k + 2} ({labels[k]} then {labels[k + 1]}); sort "
                        "the rows by time, and if the file holds several series name their column with "
                        "--series-col (Python: series_col=...)")


def future_labels(labels, n: int, freq: Frequency | None = None):
    """(values, texts) of the ``n`` labels after the last of ``labels`` at ``freq`` (inferred if None)."""
    freq = infer_frequency(labels) if freq is None else freq
    last = parse_labels([labels[-1]])[0][0]
    values = freq.future(last, n)
    return values, freq.format(values)


def as_index(values, name=None, pandas: bool = False):
    """Forecast times as returned to Python: a pandas DatetimeIndex (or Index) when ``pandas`` is asked and
    installed, else the NumPy array itself."""
    if not pandas:
        return values
    try:
        import pandas as pd
    except ImportError:
        return values
    if np.asarray(values).dtype.kind == "M":
        return pd.DatetimeIndex(np.asarray(values).astype("datetime64[s]"), name=name)
    return pd.Index(np.asarray(values), name=name)


def is_pandas(obj) -> bool:
    """Whether ``obj`` is a pandas object (checked by its type's module, so pandas is never imported)."""
    return type(obj).__module__.split(".")[0] == "pandas"


def pandas_input(data, target=None, time=None):
    """A pandas Series or DataFrame whose index holds dates (or periods), with no ``time`` column named,
    becomes a DataFrame whose first column is that index: returns (data, target, time) for ``from_python``."""
    if not is_pandas(data) or time is not None or not hasattr(data, "index"):
        return data, target, time
    index = data.index
    if getattr(index, "dtype", None) is None or (index.dtype.kind != "M" and "period" not in str(index.dtype)):
        return data, target, time
    if not hasattr(data, "columns"):  # a Series: its name is the target
        target = target or (str(data.name) if data.name is not None else "y")
        data = data.rename(target).to_frame()
    name = str(index.name) if index.name is not None else "time"
    while name in data.columns:
        name = f"_{name}"
    frame = data.copy()
    frame.index = range(len(frame))
    frame.insert(0, name, [str(t) for t in index])
    return frame, target, name


def learn_frequencies(series, label) -> tuple[dict, list[str]]:
    """({series name: Frequency or None}, notes on the series whose time labels have no frequency);
    ``label(s)`` names a series in the notes. Labels out of order raise a UserError."""
    freqs, notes = {}, []
    for s in series:
        freqs[s.name] = None
        if s.time is None:
            continue
        try:
            freqs[s.name] = infer_frequency(s.time)
        except IrregularTime as e:
            notes.append(f"series {label(s)!r}: {e}; forecasts are numbered by step instead of dated")
    return freqs, notes


def next_times(labels, freq: Frequency | None, horizon: int, n: int, fresh: bool):
    """(values, texts, dated) of the ``horizon`` times after a series of length ``n`` with time ``labels``
    (or None): labels at ``freq`` (re-inferred when the labels are ``fresh`` data with at least 3 of them)
    and dated=True, else positions n, n + 1, ... (the integer index continued) and dated=False."""
    if labels is not None and fresh and len(labels) >= 3:
        try:
            freq = infer_frequency(labels)
        except IrregularTime:
            pass  # keep the frequency learned in training
    if labels is not None and freq is not None:
        try:
            values = freq.future(parse_labels([labels[-1]])[0][0], horizon)
            return values, freq.format(values), True
        except (IrregularTime, ValueError):
            pass
    values = np.arange(n, n + horizon)
    return values, [str(v) for v in values], False
