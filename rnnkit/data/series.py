"""Time series in, arrays out: CSV/array loading with validation, time-ordered splits, windows, scalers.

The order is fixed so that nothing leaks: load and validate -> split each series into train / validation /
test spans by time -> fit the transform (optional log, then standardisation) on the training span only ->
cut windows whose targets lie inside one span. Every bad input raises :class:`rnnkit.errors.UserError`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from rnnkit.data.csvfile import check_time_order, read_csv_rows
from rnnkit.errors import UserError

MISSING_TOKENS = {"", "na", "nan", "null", "none", "n/a", "?"}
MAX_ABS = 1e150  # beyond this, the squares behind standardisation overflow float64 (max 1.8e308)
FILL_METHODS = ("interpolate", "ffill")


@dataclass
class Series:
    """One univariate target with optional covariates, in time order.

    ``y`` (N,) float64; ``past`` (N, P) covariates observed up to the forecast origin; ``future`` (N, F)
    covariates known ahead (calendar features); ``time`` the time labels (strings) or None.
    """

    y: np.ndarray
    past: np.ndarray
    future: np.ndarray
    time: list | None = None
    name: str = "series"
    target: str = "y"
    past_names: tuple = ()
    future_names: tuple = ()

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> "Series":
        """The first ``n`` points (a forecast origin at ``n``)."""
        return Series(self.y[:n], self.past[:n], self.future[:n],
                      None if self.time is None else self.time[:n], self.name, self.target,
                      self.past_names, self.future_names)


# -- loading --------------------------------------------------------------------------------------
def _parse_cell(text: str, row: int, col: str, source: str) -> float:
    """A float, or NaN for a missing cell; a non-numeric cell is a UserError naming row and column."""
    t = text.strip()
    if t.lower() in MISSING_TOKENS:
        return math.nan
    try:
        value = float(t)
    except ValueError:
        raise UserError(
            f"{source}: row {row}, column {col!r}: {text!r} is not a number; "
            "fix the cell or choose another column"
        ) from None
    if not abs(value) <= MAX_ABS:  # inf, or so large that scaling overflows
        what = "infinite" if math.isinf(value) else "too large"
        raise UserError(f"{source}: row {row}, column {col!r}: {t} is {what}; values must be finite with magnitude "
                        f"at most {MAX_ABS:g} (rescale the column, e.g. divide it by a power of ten)")
    return value


def fill_missing(values: np.ndarray, column: str, fill: str | None, source: str, rows=None) -> np.ndarray:
    """Reject NaNs (naming row and column) unless ``fill`` is 'interpolate' or 'ffill'."""
    values = np.asarray(values, dtype=np.float64)
    huge = np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0)) > MAX_ABS)  # inf, or overflowing when scaled
    if huge.size:
        k = int(huge[0])
        where = f"row {int(rows[k])}" if rows is not None else f"index {k}"
        raise UserError(f"{source}: {where}, column {column!r}: {values[k]:g} is infinite or too large; values must be "
                        f"finite with magnitude at most {MAX_ABS:g} (rescale, e.g. divide by a power of ten)")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size == 0:
        return values
    row = int(rows[bad[0]]) if rows is not None else int(bad[0])
    where = f"row {row}" if rows is not None else f"index {row}"
    if fill is None:
        raise UserError(
            f"{source}: {where}, column {column!r} is empty or NaN ({bad.size} missing in all); "
            "fix the data or pass --fill interpolate|ffill (Python: fill='interpolate'|'ffill')"
        )
    if fill not in FILL_METHODS:
        raise UserError(f"unknown fill method {fill!r}; choose one of {', '.join(FILL_METHODS)}")
    good = np.flatnonzero(np.isfinite(values))
    if good.size == 0:
        raise UserError(f"{source}: column {column!r} has no numeric values at all")
    out = values.copy()
    if fill == "interpolate":
        # linear between neighbours; the edges take the nearest observed value
        out[bad] = np.interp(bad, good, values[good])
    else:
        if bad[0] < good[0]:
            raise UserError(
                f"{source}: {where}, column {column!r}: forward fill has no earlier value for the first "
                "rows; use --fill interpolate or drop those rows"
            )
        last = np.maximum.accumulate(np.where(np.isfinite(values), np.arange(len(values)), 0))
        out = values[last]
    return out


def load_csv(path, target: str, time: str | None = None, covariates=(), future_covariates=(),
             series_col: str | None = None, fill: str | None = None) -> list[Series]:
    """Read a CSV with a header into one :class:`Series` per value of ``series_col`` (or one in all).

    Rows keep their file order within each series (sort the file by time first). Row numbers in
    messages are file line numbers (the header is line 1).
    """
    path = os.fspath(path)
    header, rows = read_csv_rows(path)
    wanted = [target, *covariates, *future_covariates] + [c for c in (time, series_col) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(
            f"{path}: no column {missing[0]!r}; the columns are: {', '.join(header)}"
        )
    for c in dict.fromkeys(wanted):
        at = [i + 1 for i, h in enumerate(header) if h == c]
        if len(at) > 1:
            raise UserError(f"{path}: columns {' and '.join(map(str, at))} are both named {c!r} in the header; "
                            "rename one so that the column to use is unambiguous")
    idx = {h: i for i, h in enumerate(header)}
    for k, r in enumerate(rows):
        if len(r) != len(header):
            raise UserError(f"{path}: row {k + 2} has {len(r)} cells but the header has {len(header)}")
    line = np.arange(2, len(rows) + 2)
    if not rows:
        raise UserError(f"{path}: no data rows under the header")
    keys = [r[idx[series_col]].strip() for r in rows] if series_col else ["series"] * len(rows)
    order = list(dict.fromkeys(keys))
    out = []
    for key in order:
        sel = [k for k, v in enumerate(keys) if v == key]
        cols = {}
        for c in [target, *covariates, *future_covariates]:
            raw = np.array([_parse_cell(rows[k][idx[c]], int(line[k]), c, path) for k in sel])
            cols[c] = fill_missing(raw, c, fill, path, rows=line[sel])
        times = [rows[k][idx[time]].strip() for k in sel] if time else None
        if times is not None:
            check_time_order(times, [int(line[k]) for k in sel], time, path)
        out.append(_make_series(cols[target], [cols[c] for c in covariates],
                                [cols[c] for c in future_covariates], times, key, target,
                                tuple(covariates), tuple(future_covariates)))
    return out


def _make_series(y, past, future, times, name, target, past_names, future_names) -> Series:
    n = len(y)
    P = np.stack(past, axis=1) if len(past) else np.zeros((n, 0))
    F = np.stack(future, axis=1) if len(future) else np.zeros((n, 0))
    return Series(np.asarray(y, np.float64), P.astype(np.float64), F.astype(np.float64), times,
                  str(name), target, past_names, future_names)


def _column(obj, name, source):
    """A 1-D float array from a column of a DataFrame-like (duck typed) object."""
    cols = list(getattr(obj, "columns", []))
    if name not in cols:
        raise UserError(f"{source}: no column {name!r}; the columns are: {', '.join(map(str, cols))}")
    return _numeric(obj[name], name, source)


def _numeric(values, name, source) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind in "USb":
        try:
            arr = np.array([math.nan if v is None else float(v) for v in arr.ravel()]).reshape(arr.shape)
        except (TypeError, ValueError):
            raise UserError(f"{source}: column {name!r} holds values that are not numbers") from None
    return np.asarray(arr, dtype=np.float64)


def from_python(data, target: str | None = None, time=None, covariates=(), future_covariates=(),
                series_col=None, fill: str | None = None) -> list[Series]:
    """Series from NumPy arrays, lists, pandas Series/DataFrames (duck typed), or ready Series objects.

    A 1-D array or a pandas Series is one target. A 2-D array's first column is the target and the rest
    are past covariates (unless ``covariates`` names their indices). A DataFrame needs ``target``.
    A list of 1-D arrays is several series for one global model.
    """
    if isinstance(data, Series):
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, Series) for s in data):
        return list(data)
    if isinstance(data, (list, tuple)) and data and all(np.ndim(s) == 1 and len(s) > 1 for s in data) \
            and not np.isscalar(data[0]):
        out = []
        for k, s in enumerate(data):
            out += from_python(s, fill=fill)
            out[-1].name = str(k)
        return out
    if hasattr(data, "columns"):  # DataFrame-like
        source = "DataFrame"
        if target is None:
            raise UserError(f"{source}: say which column to forecast with target=...; "
                            f"the columns are: {', '.join(map(str, data.columns))}")
        keys = _column_raw(data, series_col, source) if series_col else ["series"] * len(data)
        times = [str(t) for t in _column_raw(data, time, source)] if time else None
        y = fill_missing(_column(data, target, source), target, fill, source)
        past = [fill_missing(_column(data, c, source), c, fill, source) for c in covariates]
        fut = [fill_missing(_column(data, c, source), c, fill, source) for c in future_covariates]
        out = []
        for key in dict.fromkeys(keys):
            sel = np.array([k == key for k in keys])
            out.append(_make_series(y[sel], [p[sel] for p in past], [f[sel] for f in fut],
                                    None if times is None else [t for t, s in zip(times, sel) if s],
                                    key, target, tuple(map(str, covariates)),
                                    tuple(map(str, future_covariates))))
        return out
    name = getattr(data, "name", None) or target or "y"
    arr = _numeric(data, name, "array")
    if arr.ndim == 1:
        return [_make_series(fill_missing(arr, str(name), fill, "array"), [], [], None, "series",
                             str(name), (), ())]
    if arr.ndim == 2:
        cols = [fill_missing(arr[:, j], f"column {j}", fill, "array") for j in range(arr.shape[1])]
        return [_make_series(cols[0], cols[1:], [], None, "series", "y",
                             tuple(f"x{j}" for j in range(1, arr.shape[1])), ())]
    raise UserError(f"array input must be 1-D (one series) or 2-D (time, features); got shape {arr.shape}")


def _column_raw(obj, name, source):
    cols = list(obj.columns)
    if name not in cols:
        raise UserError(f"{source}: no column {name!r}; the columns are: {', '.join(map(str, cols))}")
    col = obj[name]
    return list(col.to_numpy() if hasattr(col, "to_numpy") else col)


# -- splitting and windows ------------------------------------------------------------------------
def split_points(n: int, val_size: int, test_size: int) -> tuple[int, int]:
    """Ends of the train and validation spans: train = [0, a), val = [a, b), test = [b, n)."""
    b = n - test_size
    a = b - val_size
    if a < 2:
        raise UserError(
            f"series of length {n} leaves {a} points for training after {val_size} validation and "
            f"{test_size} test points; use a longer series or smaller --val/--test"
        )
    return a, b


def check_length(n: int, lookback: int, horizon: int, what: str = "series") -> None:
    """A window needs lookback + horizon points; say both numbers when there are fewer."""
    need = lookback + horizon
    if n < need:
        raise UserError(
            f"{what} has {n} points but lookback + horizon = {lookback} + {horizon} = {need} are needed "
            "for one window; use a longer series or a smaller --lookback/--horizon"
        )


def window_starts(n: int, lookback: int, horizon: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Forecast origins o (first target index) such that targets [o, o + horizon) lie in [lo, hi)
    and the inputs [o - lookback, o) lie in [0, n)."""
    hi = n if hi is None else hi
    first = max(lookback, lo)
    last = hi - horizon  # inclusive
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, dtype=np.int64)


def make_windows(z: np.ndarray, lookback: int, horizon: int, origins=None):
    """Windows of a (N,) or (N, D) array: inputs (S, lookback, ...) and targets (S, horizon, ...)."""
    z = np.asarray(z)
    n = len(z)
    check_length(n, lookback, horizon)
    origins = window_starts(n, lookback, horizon) if origins is None else np.asarray(origins)
    past = np.arange(-lookback, 0)[None, :] + origins[:, None]
    ahead = np.arange(horizon)[None, :] + origins[:, None]
    return z[past], z[ahead]


# -- transforms (fitted on the training span only) ------------------------------------------------
@dataclass
class SeriesScaler:
    """Optional log, then standardisation; ``fit`` sees the training span only.

    ``mean_`` and ``scale_`` are learned; ``log`` is a setting. ``inverse`` maps back to the original scale.
    """

    log: bool = False
    mean_: float = field(default=math.nan)
    scale_: float = field(default=math.nan)

    def fit(self, y_train: np.ndarray, name: str = "series") -> "SeriesScaler":
        y = np.asarray(y_train, np.float64)
        if self.log and np.any(y <= 0):
            raise UserError(f"{name}: transform 'log' needs positive values but the training span has "
                            f"min {y.min():g}; use --transform none")
        z = np.log(y) if self.log else y
        with np.errstate(over="ignore"):  # an overflow is reported below, as values too large
            std = float(np.std(z))
        if not np.isfinite(std) or std <= 1e-12 * max(1.0, abs(float(np.mean(z)))):
            if not np.all(np.isfinite(z)) or np.max(np.abs(z)) > MAX_ABS:
                raise UserError(f"{name}: values up to {np.max(np.abs(z)):g} are too large to standardise (the "
                                f"squares overflow); keep magnitudes at most {MAX_ABS:g}, e.g. divide by a power "
                                "of ten")
            raise UserError(f"{name}: the training span is constant ({z[0]:g}), so there is nothing to learn "
                            "and scaling would divide by zero; check the target column")
        self.mean_, self.scale_ = float(np.mean(z)), std
        return self

    def transform(self, y: np.ndarray, name: str = "series") -> np.ndarray:
        y = np.asarray(y, np.float64)
        if self.log:
            if np.any(y <= 0):
                raise UserError(f"{name}: transform 'log' needs positive values, found {y.min():g}; "
                                "use --transform none")
            y = np.log(y)
        return (y - self.mean_) / self.scale_

    def inverse(self, z: np.ndarray) -> np.ndarray:
        y = np.asarray(z, np.float64) * self.scale_ + self.mean_
        return np.exp(np.minimum(y, 700.0)) if self.log else y

    def to_json(self) -> dict:
        return {"log": self.log, "mean_": self.mean_, "scale_": self.scale_}

    @classmethod
    def from_json(cls, d: dict) -> "SeriesScaler":
        return cls(bool(d["log"]), float(d["mean_"]), float(d["scale_"]))


@dataclass
class ColumnScaler:
    """Per-column standardisation for covariates (constant columns get scale 1)."""

    mean_: np.ndarray = None
    scale_: np.ndarray = None

    def fit(self, X: np.ndarray) -> "ColumnScaler":
        X = np.asarray(X, np.float64).reshape(len(X), -1)
        self.mean_ = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        s = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        self.scale_ = np.where(s > 1e-12, s, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float64) - self.mean_) / self.scale_

    def to_json(self) -> dict:
        return {"mean_": [float(v) for v in self.mean_], "scale_": [float(v) for v in self.scale_]}

    @classmethod
    def from_json(cls, d: dict) -> "ColumnScaler":
        return cls(np.array(d["mean_"], np.float64), np.array(d["scale_"], np.float64))


# -- seasonality --------------------------------------------------------------------------------
def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelations of ``x`` at lags 1..max_lag (index k-1 holds lag k)."""
    x = x - x.mean()
    denom = float(x @ x)
    if denom <= 0:
        return np.zeros(max_lag)
    return np.array([x[:-k] @ x[k:] / denom for k in range(1, max_lag + 1)])


def detect_season(y: np.ndarray, max_lag: int | None = None, threshold: float = 0.2) -> int:
    """The dominant period from the autocorrelation of the linearly detrended series (1 if none).

    Picks the highest local maximum of the ACF above ``threshold``; a lag whose ACF is within 10% of
    the best and shorter wins, so that a multiple of the period is not chosen. A wandering series (a
    random walk) has spurious ACF bumps, so the period must also show in the first differences
    (ACF > 0.1 within one step of it), else the answer is 1.
    """
    y = np.asarray(y, np.float64)
    n = len(y)
    if n < 8:
        return 1
    t = np.arange(n)
    resid = y - np.polyval(np.polyfit(t, y, 1), t)
    max_lag = min(max_lag or n // 3, n - 2)
    acf = _acf(resid, max_lag)
    peaks = [k + 1 for k in range(1, len(acf) - 1)
             if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > threshold]
    if not peaks:
        return 1
    best = max(acf[p - 1] for p in peaks)
    m = int(min(p for p in peaks if acf[p - 1] >= 0.9 * best))
    dacf = _acf(np.diff(y), min(m + 1, n - 3))
    return m if dacf[max(m - 2, 0):m + 1].max() > 0.1 else 1
