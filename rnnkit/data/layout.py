"""The input layout of a set of sequences (aeon's conventions), checked in one place, and padding for the engine.

A *case* is one float64 array ``(n_channels, length)``; a data set is a list of cases. ``as_cases`` accepts
the three layouts below and returns that list; ``pad_batch`` turns cases into the engine's ``(B, T, C)`` + mask.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError

FILLS = ("interpolate", "zero", "ffill")

# A 3-D array whose last axis is shorter than this and whose middle axis is at least TRANSPOSED_RATIO times
# longer is taken to be (n_cases, n_timepoints, n_channels) by mistake. Real archive data never looks like
# that (the shortest equal-length UEA series, PenDigits, has 8 points), while the Keras/PyTorch layout of
# 1-7 channels over tens of steps always does.
TRANSPOSED_MAX_TIMEPOINTS = 8
TRANSPOSED_RATIO = 4

LAYOUT_HELP = (
    "X must be a 3-D array (n_cases, n_channels, n_timepoints), a 2-D array (n_cases, n_timepoints) for one "
    "channel, or a list of (n_channels, length_i) arrays (1-D arrays for one channel) when lengths differ"
)


def fill_missing(case: np.ndarray, how: str, where: str = "") -> np.ndarray:
    """Return a copy of ``case`` (C, L) with NaN filled per channel.

    ``interpolate``: linear between the nearest valid neighbours, the nearest valid value before the first and
    after the last. ``ffill``: the last valid value; NaNs before the first valid value take that first value.
    ``zero``: 0.0. A channel with no valid value at all can only be zero-filled. ``where`` prefixes messages.
    """
    if how not in FILLS:
        raise UserError(f"{where}unknown fill {how!r}; use one of {', '.join(FILLS)}")
    out = np.array(case, dtype=np.float64)
    missing = np.isnan(out)
    if not missing.any():
        return out
    if how == "zero":
        out[missing] = 0.0
        return out
    steps = np.arange(out.shape[1])
    for c in np.flatnonzero(missing.any(axis=1)):
        valid = ~missing[c]
        if not valid.any():
            raise UserError(f"{where}channel {c + 1} has no values at all, so {how!r} cannot fill it; "
                            "use fill='zero' or drop the case")
        if how == "interpolate":
            out[c, ~valid] = np.interp(steps[~valid], steps[valid], out[c, valid])
        else:  # ffill: index of the last valid step at or before each step (the first valid one before it)
            last = np.maximum.accumulate(np.where(valid, steps, -1))
            last[last < 0] = np.flatnonzero(valid)[0]
            out[c] = out[c, last]
    return out


def _nan_message(i: int, case: np.ndarray) -> str:
    bad = ~np.isfinite(case)
    c, t = (int(v) for v in np.argwhere(bad)[0])
    kind = "NaN" if np.isnan(case[c, t]) else "an infinite value"
    n = int(bad.sum())
    return (f"X has {kind} at case {i}, channel {c}, step {t} (0-based; {n} non-finite value{'s' * (n > 1)} in "
            "this case); fill missing values first, e.g. rnnkit.data.layout.fill_missing(case, 'interpolate') "
            "or fill='interpolate' when reading the file (also 'zero', 'ffill')")


def _from_array(X: np.ndarray) -> list[np.ndarray]:
    if X.ndim == 2:
        X = X[:, None, :]  # (N, L) -> (N, 1, L): one channel
    elif X.ndim != 3:
        extra = " (one series? pass X[None, :] for one case of one channel)" if X.ndim == 1 else ""
        raise UserError(f"got a {X.ndim}-D array of shape {X.shape}{extra}; {LAYOUT_HELP}")
    N, C, L = X.shape
    if L < TRANSPOSED_MAX_TIMEPOINTS and C >= TRANSPOSED_RATIO * L:
        raise UserError(
            f"X has shape {X.shape}, read as {N} cases of {C} channels with only {L} time point(s) each; it looks "
            f"transposed, i.e. (n_cases, n_timepoints, n_channels). rnnkit wants (n_cases, n_channels, "
            f"n_timepoints): pass X.transpose(0, 2, 1). If it really is {C} channels of {L} points, pass it as "
            "a list of (n_channels, length) arrays, list(X), which is not checked for this")
    return [X[i] for i in range(N)]


def as_cases(X, fill: str | None = None, trim_nan_padding: bool = True) -> list[np.ndarray]:
    """Check X and return it as a list of float64 arrays ``(n_channels, length_i)``, one per case.

    Accepted layouts (aeon's): a 3-D array ``(n_cases, n_channels, n_timepoints)``; a 2-D array
    ``(n_cases, n_timepoints)`` for one channel; a list (or tuple) of ``(n_channels, length_i)`` arrays, or of
    1-D arrays for one channel, when lengths differ. Every case needs the same number of channels, at least one
    time point, and finite values; ``fill`` ("interpolate", "zero", "ffill") fills NaN instead of refusing.
    ``trim_nan_padding``: steps at the end of a case that are NaN in every channel are padding (the UCR
    archive pads shorter series with NaN to fit one array) and are cut off, making the case shorter; NaN
    anywhere else is a missing value.
    A 3-D array with fewer than 8 time points and at least 4 times as many "channels" is refused as
    transposed (see TRANSPOSED_MAX_TIMEPOINTS). The returned arrays are new (changing them leaves X alone).
    """
    if not isinstance(X, (np.ndarray, list, tuple)) and hasattr(X, "__array__"):
        X = np.asarray(X)  # a DataFrame of (n_cases, n_timepoints), a torch tensor, ...
    if isinstance(X, np.ndarray):
        if X.dtype == object:
            X = list(X)
        else:
            _check_dtype(X.dtype, "X")
            cases = _from_array(np.array(X, dtype=np.float64))
    if isinstance(X, (list, tuple)):
        cases = []
        for i, x in enumerate(X):
            a = np.asarray(x)
            if a.dtype == object:  # e.g. a pandas column of numbers
                try:
                    a = a.astype(np.float64)
                except (TypeError, ValueError):
                    pass
            _check_dtype(a.dtype, f"case {i} (0-based)")
            if a.ndim == 1:
                a = a[None, :]  # one channel
            elif a.ndim != 2:
                raise UserError(f"case {i} (0-based) has shape {a.shape}; each case of a list must be "
                                "(n_channels, length) or 1-D for one channel")
            cases.append(np.array(a, dtype=np.float64))
    elif not isinstance(X, np.ndarray):
        raise UserError(f"X is a {type(X).__name__}; {LAYOUT_HELP}")
    if not cases:
        raise UserError(f"X has no cases; {LAYOUT_HELP}")
    n_channels = cases[0].shape[0]
    for i, case in enumerate(cases):
        if case.shape[0] != n_channels:
            hint = "every case needs the same channels"
            if case.shape[1] == cases[0].shape[1] and case.shape[1] < min(case.shape[0], n_channels):
                hint = (f"the cases look like (length, n_channels) arrays with {case.shape[1]} channel(s): pass "
                        "[x.T for x in X] to make each (n_channels, length)")
            raise UserError(f"case {i} (0-based) has {case.shape[0]} channels but case 0 has {n_channels}; {hint}")
        if trim_nan_padding and case.size:
            present = np.flatnonzero(~np.isnan(case).all(axis=0))  # steps with a value in some channel
            if len(present) == 0:
                raise UserError(f"case {i} (0-based) holds only NaN; drop it or give its values")
            cases[i] = case = case[:, : present[-1] + 1]
        if case.shape[0] == 0 or case.shape[1] == 0:
            raise UserError(f"case {i} (0-based) is empty (shape {case.shape}); every case needs at least one "
                            "channel and one time point")
        if np.isinf(case).any() or (fill is None and np.isnan(case).any()):
            raise UserError(_nan_message(i, case))
        if fill is not None:
            cases[i] = fill_missing(case, fill, where=f"case {i} (0-based): ")
    return cases


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if not (np.issubdtype(dtype, np.number) or dtype == bool) or np.issubdtype(dtype, np.complexfloating):
        raise UserError(f"{name} has dtype {dtype}; values must be real numbers")


def lengths(cases: list[np.ndarray]) -> np.ndarray:
    """Number of time points of each case, int64 ``(n_cases,)``."""
    return np.array([c.shape[-1] for c in cases], dtype=np.int64)


def pad_batch(cases: list[np.ndarray], dtype=np.float32, max_len: int | None = None):
    """Cases ``(C, L_i)`` -> ``xs (B, T, C)`` zero-padded at the end and ``mask (B, T)``, True on real steps.

    T is the longest case, or ``max_len`` when given (a case longer than ``max_len`` is an error: nothing is
    truncated silently).
    """
    if len(cases) == 0:
        raise UserError("pad_batch needs at least one case")
    lens = lengths(cases)
    C = cases[0].shape[0]
    T = int(lens.max()) if max_len is None else int(max_len)
    if lens.max() > T:
        i = int(lens.argmax())
        raise UserError(f"case {i} (0-based) has {lens[i]} time points, more than max_len={T}; raise max_len "
                        "or shorten the series explicitly")
    B = len(cases)
    xs = np.zeros((B, T, C), dtype=dtype)
    mask = np.arange(T)[None, :] < lens[:, None]  # (B, T)
    for b, case in enumerate(cases):
        if case.shape[0] != C:
            raise UserError(f"case {b} (0-based) has {case.shape[0]} channels but case 0 has {C}")
        xs[b, : lens[b]] = case.T  # (L, C)
    return xs, mask
