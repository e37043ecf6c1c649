"""Honest baselines for sequence classification, on the caller's split: majority class, 1-NN Euclidean, 1-NN DTW.

DTW runs in dtaidistance's C library (squared-Euclidean cost summed over channels, i.e. dependent DTW for
multivariate cases; the distance is the square root of the path sum). Values are used as given, without
z-normalisation, as the UCR archive's published baselines do. Cases are (n_channels, length) arrays.
"""
from __future__ import annotations

import time

import numpy as np
from dtaidistance import dtw, dtw_ndim

from rnnkit.data.layout import as_cases, lengths
from rnnkit.errors import UserError

# Sakoe-Chiba windows tried by dtw_window_loo, as fractions of the longest training length (the UCR archive
# searched 0..100% in steps of 1%; stopping at 20% keeps the search affordable on long series).
DEFAULT_WINDOWS = tuple(round(0.01 * k, 2) for k in range(21))

# Below this many DTW cells per pair a full distance matrix in C (about 5 ns a cell on 2 busy cores) beats the
# pruned search, whose Python call costs some 25 us a pair (measured on 400 x 400 random walks: at 2,100
# cells the matrix took 7 us a pair, the search 13 us; at 10,000 cells 48 us against 18 us).
BRUTE_MAX_CELLS = 4000


def _require_c() -> None:
    if dtw.dtw_cc is None:  # dtaidistance would fall back to its pure-Python loops, far too slow here
        raise RuntimeError("dtaidistance's C library is not available; reinstall dtaidistance (pip install "
                           "--force-reinstall dtaidistance) on a machine with a C compiler")


def _prepare(train_cases, test_cases=None):
    train = as_cases(train_cases)
    test = None if test_cases is None else as_cases(test_cases)
    if test is not None and test[0].shape[0] != train[0].shape[0]:
        raise UserError(f"the test cases have {test[0].shape[0]} channels but the training cases have "
                        f"{train[0].shape[0]}; use the same channels in both")
    return train, test


def majority(y_train, n_test: int) -> np.ndarray:
    """Predict the most frequent training label for every test case (ties: the label that sorts first)."""
    classes, counts = np.unique(np.asarray(y_train), return_counts=True)
    return np.full(int(n_test), classes[np.argmax(counts)], dtype=classes.dtype)


# -- 1-NN Euclidean -----------------------------------------------------------------------------------------
def resample(case: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of every channel of ``case`` (C, L) to ``length`` points (identity when L == length)."""
    C, L = case.shape
    if L == length:
        return case
    if L == 1:
        return np.repeat(case, length, axis=1)
    grid = np.linspace(0.0, L - 1, length)
    return np.stack([np.interp(grid, np.arange(L), case[c]) for c in range(C)])


def euclidean_distances(train_cases, test_cases) -> np.ndarray:
    """Euclidean distances ``(n_test, n_train)``.

    Policy for unequal lengths: every case (train and test) is linearly resampled to the longest *training*
    length, so no data are dropped or padded and only training data fix the length. Channels are concatenated.
    """
    train, test = _prepare(train_cases, test_cases)
    L = int(lengths(train).max())
    A = np.stack([resample(c, L).ravel() for c in train])  # (n_train, C*L)
    B = np.stack([resample(c, L).ravel() for c in test])  # (n_test, C*L)
    # differences, not |a|^2 + |b|^2 - 2ab, which cancels badly for series far from zero; in blocks of rows
    D = np.empty((len(B), len(A)))
    rows = max(1, int(4e6 // A.size))  # ~32 MB of float64 temporaries a block
    for s in range(0, len(B), rows):
        D[s: s + rows] = np.sqrt(((B[s: s + rows, None, :] - A[None, :, :]) ** 2).sum(axis=2))
    return D


def nn1_euclidean(train_cases, y_train, test_cases) -> np.ndarray:
    """1-NN with Euclidean distance (see euclidean_distances for unequal lengths); ties: the first train case."""
    D = euclidean_distances(train_cases, test_cases)
    return np.asarray(y_train)[np.argmin(D, axis=1)]


# -- DTW ------------------------------------------------------------------------------------------------------
def window_radius(window: float | None, max_len: int) -> int | None:
    """Sakoe-Chiba radius for a window given as a fraction of ``max_len``: floor(window * max_len), as in the
    UCR suite; None (full window) stays None. Between cases of unequal length the band (dtaidistance's) is the
    radius around both diagonals, so it widens by the length difference and a path always exists."""
    if window is None:
        return None
    if not 0.0 <= window <= 1.0:
        raise UserError(f"window {window} must be a fraction of the series length in [0, 1], or None for full")
    return int(np.floor(window * max_len + 1e-9))  # the epsilon keeps 0.07 * 100 at 7


def _series(cases: list[np.ndarray]):
    """Cases (C, L) -> what dtaidistance wants: 1-D arrays for one channel, (L, C) arrays otherwise."""
    if cases[0].shape[0] == 1:
        return [np.ascontiguousarray(c[0], dtype=np.float64) for c in cases]
    return [np.ascontiguousarray(c.T, dtype=np.float64) for c in cases]


def _dtw_kwargs(radius):
    # dtaidistance's window w allows |i - j| <= w - 1 around the diagonals: radius r is window r + 1
    return {} if radius is None else {"window": int(radius) + 1}


def _pair(a, b, radius, max_dist=None) -> float:
    kw = _dtw_kwargs(radius)
    if max_dist is not None and np.isfinite(max_dist):
        kw["max_dist"] = float(max_dist)  # early abandoning: returns inf once the distance exceeds it
    if a.ndim == 1:
        return dtw.distance_fast(a, b, use_pruning=False, **kw)
    return dtw_ndim.distance_fast(a, b, **kw)


def _matrix(series_a, series_b, radius) -> np.ndarray:
    """DTW distances (len(a), len(b)) in C, in parallel; series_b None means a against itself (symmetric)."""
    _require_c()
    lib = dtw if series_a[0].ndim == 1 else dtw_ndim
    kw = _dtw_kwargs(radius)
    if series_b is None:
        D = np.asarray(lib.distance_matrix_fast(series_a, parallel=True, **kw))
        iu = np.triu_indices(len(series_a), 1)
        D[(iu[1], iu[0])] = D[iu]  # dtaidistance fills the upper triangle only
        np.fill_diagonal(D, 0.0)
        return D
    n = len(series_a)
    full = lib.distance_matrix_fast(list(series_a) + list(series_b), parallel=True,
                                    block=((0, n), (n, n + len(series_b))), **kw)
    return np.asarray(full)[:n, n:]


def dtw_distances(cases_a, cases_b=None, window: float | None = None) -> np.ndarray:
    """DTW distance matrix (len(a), len(b)) (b None: a against itself); ``window`` a fraction of the longest
    case of ``cases_a`` (Sakoe-Chiba radius floor(window * length)), None for the full window."""
    a, b = _prepare(cases_a, cases_b)
    radius = window_radius(window, int(lengths(a).max()))
    return _matrix(_series(a), None if b is None else _series(b), radius)


def nn1_dtw(train_cases, y_train, test_cases, window: float | None = None) -> np.ndarray:
    """1-NN with DTW; ``window`` a fraction of the longest training length (None: full). Ties: first train case.

    Exact; on long series much faster than a full distance matrix: candidates in order of Euclidean distance,
    each DTW abandoned once it exceeds the best so far (see _nn_search)."""
    train, test = _prepare(train_cases, test_cases)
    radius = window_radius(window, int(lengths(train).max()))
    order = euclidean_distances(train, test)  # (n_test, n_train): likely neighbours first
    nn, _ = _nn_search(_series(test), _series(train), radius, np.zeros_like(order), order)
    return np.asarray(y_train)[nn]


def _cells_per_pair(queries, refs, radius) -> float:
    """Mean DTW cells a pair; the band widens by the length difference of the two series (a sample of pairs)."""
    lq = np.array([len(q) for q in queries[:: max(1, len(queries) // 200)]], dtype=float)
    lr = np.array([len(r) for r in refs[:: max(1, len(refs) // 200)]], dtype=float)
    if radius is None:
        return float(lq.mean() * lr.mean())
    band = np.minimum(2 * radius + 1 + np.abs(lq[:, None] - lr[None, :]), np.maximum(lq[:, None], lr[None, :]))
    return float((np.minimum(lq[:, None], lr[None, :]) * band).mean())


def _nn_search(queries, refs, radius, lower, order, symmetric=False):
    """Exact 1-NN of each query under DTW with ``radius`` -> (indices, lower), computing as little as possible.

    ``lower`` (n_q, n_r): lower bounds of the distances at this radius (zeros when nothing is known; distances
    at a wider window, since a narrower band can only raise DTW). Candidates are visited by increasing bound,
    then by ``order`` (a cheap guess such as Euclidean distance); once a bound exceeds the best distance so far
    the rest cannot win, and each DTW is abandoned in C once past the best. ``lower`` is raised in place with
    what is learned, so it stays a valid bound for this and any narrower window. ``symmetric``: queries are
    refs (leave-one-out: a case is not its own neighbour, and d(i, j) found for row i bounds row j). The result
    equals a brute-force argmin, ties included (smallest index). Short series (at most BRUTE_MAX_CELLS cells
    a pair) take the brute-force matrix instead, which is then cheaper.
    """
    _require_c()
    if _cells_per_pair(queries, refs, radius) <= BRUTE_MAX_CELLS:  # short series: every distance, in C
        D = _matrix(refs, None, radius) if symmetric else _matrix(queries, refs, radius)
        if symmetric:
            np.fill_diagonal(D, np.inf)
        np.maximum(lower, D, out=lower)
        return np.argmin(D, axis=1), lower
    nn = np.empty(len(queries), dtype=np.int64)
    for i, q in enumerate(queries):
        row = lower[i]
        best, best_j = np.inf, -1
        for j in np.lexsort((order[i], row)):
            if symmetric and j == i:
                continue
            if row[j] > best:
                break
            if row[j] == best and j > best_j:
                continue
            d = _pair(q, refs[j], radius, max_dist=best)
            if symmetric:  # d(j, i) = d(i, j): what row i learns bounds row j too
                lower[j, i] = max(lower[j, i], d if d < np.inf else best)
            if d == np.inf:  # abandoned: the distance is above ``best``
                row[j] = max(row[j], best)
                continue
            row[j] = d
            if d < best or (d == best and j < best_j):
                best, best_j = d, j
        nn[i] = best_j
    return nn, lower


def dtw_window_loo(train_cases, y_train, windows=DEFAULT_WINDOWS):
    """Choose the DTW window by leave-one-out 1-NN accuracy on the training data only (the UCR archive's
    "learned window", DTW_R1_1NN). Returns ``(window, scores)``: the chosen fraction and {window: LOO accuracy}.

    Ties go to the smallest window. Windows with the same radius (floor(window * longest length)) are scored
    once. The search is exact but pruned: windows are visited from wide to narrow, so the distances found for
    one bound the next one's from below, and every DTW is abandoned early (see _nn_search).
    """
    train, _ = _prepare(train_cases)
    y = np.asarray(y_train)
    if len(train) != len(y):
        raise UserError(f"{len(train)} training cases but {len(y)} labels; give one label per case")
    if len(train) < 2:
        raise UserError("leave-one-out needs at least 2 training cases")
    if len(windows) == 0:
        raise UserError("give at least one window to try")
    max_len = int(lengths(train).max())
    by_radius: dict[int, float] = {}
    for w in sorted(windows):
        by_radius.setdefault(window_radius(w, max_len), w)  # smallest window of each radius
    series = _series(train)
    order = euclidean_distances(train, train)
    lower = np.zeros_like(order)  # raised by each window's search; valid for every narrower one
    scores: dict[float, float] = {}
    for radius in sorted(by_radius, reverse=True):
        nn, lower = _nn_search(series, series, radius, lower, order, symmetric=True)
        acc = float(np.mean(y[nn] == y))
        for w in windows:
            if window_radius(w, max_len) == radius:
                scores[float(w)] = acc
    best = max(scores.values())
    return min(w for w, a in scores.items() if a == best), dict(sorted(scores.items()))


def baseline_report(train_cases, y_train, test_cases, y_test, windows=DEFAULT_WINDOWS) -> dict:
    """Accuracy and seconds of every baseline on one split: {"majority", "1nn_euclidean", "1nn_dtw_full",
    "1nn_dtw_learned"} each {"accuracy", "seconds"}; the learned one adds "window", "radius",
    "loo_accuracy" and "loo_seconds" (the search, part of its seconds); "best" names the most accurate.
    The test data are used once, after the window is chosen on the training data."""
    train, test = _prepare(train_cases, test_cases)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(ytr) != len(train) or len(yte) != len(test):
        raise UserError(f"labels do not match cases: {len(train)} train cases / {len(ytr)} labels, "
                        f"{len(test)} test cases / {len(yte)} labels")
    report: dict = {}

    def score(name, fn):
        t0 = time.perf_counter()
        pred, extra = fn()
        report[name] = {"accuracy": float(np.mean(pred == yte)), "seconds": time.perf_counter() - t0, **extra}

    score("majority", lambda: (majority(ytr, len(test)), {}))
    score("1nn_euclidean", lambda: (nn1_euclidean(train, ytr, test), {}))
    s_train, s_test = _series(train), _series(test)
    order = euclidean_distances(train, test)  # (n_test, n_train): likely neighbours first
    lower = np.zeros_like(order)

    def dtw_full():
        nn, _ = _nn_search(s_test, s_train, None, lower, order)
        return ytr[nn], {}

    def dtw_learned():
        t0 = time.perf_counter()
        window, scores = dtw_window_loo(train, ytr, windows)
        loo_seconds = time.perf_counter() - t0
        radius = window_radius(window, int(lengths(train).max()))
        # what the full-window search learned bounds the windowed distances from below
        nn, _ = _nn_search(s_test, s_train, radius, lower, order)
        return ytr[nn], {"window": window, "radius": radius, "loo_accuracy": scores[window],
                         "loo_seconds": loo_seconds}

    score("1nn_dtw_full", dtw_full)
    score("1nn_dtw_learned", dtw_learned)
    report["best"] = max(("majority", "1nn_euclidean", "1nn_dtw_full", "1nn_dtw_learned"),
                         key=lambda k: report[k]["accuracy"])
    return report
