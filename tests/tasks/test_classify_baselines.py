"""Baselines against a direct NumPy DTW and Euclidean distance: distances, 1-NN predictions, the LOO window."""
from pathlib import Path

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.tasks import classify_baselines as cb


@pytest.fixture(params=["pruned", "matrix"])
def search(request, monkeypatch):
    """Run a test through both ways _nn_search finds neighbours: the pruned search and the full matrix."""
    monkeypatch.setattr(cb, "BRUTE_MAX_CELLS", 0 if request.param == "pruned" else 10**9)
    return request.param


def numpy_dtw(a, b, radius=None):
    """DTW by the textbook recursion; a (C, n), b (C, m); cost sum over channels of squared differences;
    the band allows j - i in [-radius, radius + (m - n)] when m >= n (and mirrored), i.e. the radius around both
    diagonals; returns the square root of the path sum."""
    n, m = a.shape[1], b.shape[1]
    D = np.full((n + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(n):
        for j in range(m):
            if radius is not None and not (-radius - max(0, n - m) <= j - i <= radius + max(0, m - n)):
                continue
            cost = np.sum((a[:, i] - b[:, j]) ** 2)
            D[i + 1, j + 1] = cost + min(D[i, j], D[i, j + 1], D[i + 1, j])
    return np.sqrt(D[n, m])


def numpy_matrix(A, B, radius):
    return np.array([[numpy_dtw(a, b, radius) for b in B] for a in A])


def random_cases(rng, n, C, lo, hi):
    return [rng.normal(size=(C, int(rng.integers(lo, hi + 1)))).cumsum(axis=1) for _ in range(n)]


def test_runs_the_c_library(monkeypatch):
    from dtaidistance import dtw
    assert dtw.dtw_cc is not None
    cb._require_c()
    monkeypatch.setattr(dtw, "dtw_cc", None)
    with pytest.raises(RuntimeError, match="C library"):
        cb._require_c()


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("window", [None, 0.0, 0.1, 0.25])
def test_dtw_distances_equal_numpy(C, window):
    rng = np.random.default_rng(10 + C)
    A, B = random_cases(rng, 5, C, 6, 14), random_cases(rng, 4, C, 6, 14)
    radius = cb.window_radius(window, max(a.shape[1] for a in A))
    np.testing.assert_allclose(cb.dtw_distances(A, B, window), numpy_matrix(A, B, radius), rtol=1e-12)
    np.testing.assert_allclose(cb.dtw_distances(A, None, window), numpy_matrix(A, A, radius), rtol=1e-12,
                               atol=1e-12)


def test_window_radius():
    assert cb.window_radius(None, 100) is None
    assert [cb.window_radius(w, 100) for w in (0.0, 0.07, 0.1, 1.0)] == [0, 7, 10, 100]
    assert cb.window_radius(0.05, 24) == 1  # floor, as in the UCR suite
    with pytest.raises(UserError, match="window 1.5"):
        cb.window_radius(1.5, 10)


@pytest.mark.parametrize("C", [1, 2])
@pytest.mark.parametrize("window", [None, 0.0, 0.15])
def test_nn1_dtw_predicts_the_numpy_nearest(C, window, search):
    rng = np.random.default_rng(20 + C)
    train, test = random_cases(rng, 25, C, 8, 20), random_cases(rng, 12, C, 8, 20)
    y = np.array(["a", "b", "c", "d", "e"])[rng.integers(0, 5, 25)]
    radius = cb.window_radius(window, max(c.shape[1] for c in train))
    expected = y[np.argmin(numpy_matrix(test, train, radius), axis=1)]
    np.testing.assert_array_equal(cb.nn1_dtw(train, y, test, window), expected)


def test_nn_search_ties_go_to_the_first_case(search):
    base = np.sin(np.arange(12.0))[None, :]
    train = [base + 5.0, base, base, base + 1.0]  # cases 1 and 2 both at distance 0 from the query
    assert cb.nn1_dtw(train, np.array(["w", "x", "y", "z"]), [base.copy()]).tolist() == ["x"]
    # the later case is visited first (closer in Euclidean distance), the earlier one ties it under DTW
    query = np.zeros((1, 12))
    query[0, 5] = 1.0
    shifted = np.roll(query, 2, axis=1)
    assert cb.nn1_dtw([query + 3.0, shifted, query.copy()], np.array(["far", "first", "same"]), [query],
                      window=0.25).tolist() == ["first"]
    # two exact ties at a positive distance: the second is computed (its bound is 0) and must not win
    flat = np.zeros((1, 8))
    assert cb.nn1_dtw([flat + 5.0, flat + 1.0, flat - 1.0], np.array(["far", "up", "down"]), [flat]).tolist() \
        == ["up"]


def test_nn_search_keeps_valid_lower_bounds(search):
    rng = np.random.default_rng(8)
    train = random_cases(rng, 24, 1, 12, 18)
    series = cb._series(train)
    order = cb.euclidean_distances(train, train)
    lower = np.zeros_like(order)
    off = ~np.eye(24, dtype=bool)
    for radius in (None, 5, 3, 1, 0):  # wide to narrow, as dtw_window_loo does
        nn, lower = cb._nn_search(series, series, radius, lower, order, symmetric=True)
        D = numpy_matrix(train, train, radius)
        assert np.all(lower[off] <= D[off] * (1 + 1e-12))
        np.fill_diagonal(D, np.inf)
        np.testing.assert_array_equal(nn, np.argmin(D, axis=1))


def test_euclidean_equal_and_unequal_lengths():
    rng = np.random.default_rng(3)
    train, test = random_cases(rng, 6, 2, 10, 10), random_cases(rng, 3, 2, 10, 10)
    D = np.array([[np.sqrt(np.sum((t - r) ** 2)) for r in train] for t in test])
    np.testing.assert_allclose(cb.euclidean_distances(train, test), D, rtol=1e-10)
    y = np.arange(6)
    np.testing.assert_array_equal(cb.nn1_euclidean(train, y, test), np.argmin(D, axis=1))
    # unequal: every case resampled linearly to the longest training length (here 9)
    train = [np.array([[0.0, 1.0, 2.0]]), np.array([[0.0] * 9]), np.array([[5.0, 4, 3, 2, 1, 0, 1, 2, 3]])]
    test = [np.array([[0.0, 2.0]])]
    ramp = np.linspace(0.0, 2.0, 9)
    expected = [np.sqrt(np.sum((ramp - ramp) ** 2)), np.sqrt(np.sum(ramp ** 2)),
                np.sqrt(np.sum((ramp - train[2][0]) ** 2))]
    np.testing.assert_allclose(cb.euclidean_distances(train, test)[0], expected, atol=1e-12)
    assert cb.nn1_euclidean(train, np.array(["up", "flat", "vee"]), test).tolist() == ["up"]


def test_majority():
    assert cb.majority(np.array(["b", "a", "b", "c"]), 3).tolist() == ["b", "b", "b"]
    assert cb.majority(np.array([2, 1, 1, 2]), 2).tolist() == [1, 1]  # a tie: the label that sorts first
    assert cb.majority(["x"], 0).shape == (0,)


@pytest.mark.parametrize("C", [1, 2])
def test_loo_scores_equal_brute_force_numpy(C, search):
    rng = np.random.default_rng(5 + C)
    train = random_cases(rng, 14, C, 15, 22)
    y = rng.integers(0, 2, 14)
    windows = (0.0, 0.05, 0.1, 0.2, 0.3)
    chosen, scores = cb.dtw_window_loo(train, y, windows)
    max_len = max(c.shape[1] for c in train)
    expected = {}
    for w in windows:
        D = numpy_matrix(train, train, cb.window_radius(w, max_len))
        np.fill_diagonal(D, np.inf)
        expected[w] = float(np.mean(y[np.argmin(D, axis=1)] == y))
    assert scores == pytest.approx(expected)
    best = max(expected.values())
    assert chosen == min(w for w in windows if expected[w] == best)


def spikes(positions, rng, length=40):
    cases = []
    for p in positions:
        x = 0.01 * rng.normal(size=(1, length))
        x[0, p] += 1.0
        cases.append(x)
    return cases


def test_loo_window_choice_is_sane(search):
    # one spike; class 0 near step 11, class 1 near step 25. Same-class spikes are 2 apart, other-class ones at
    # least 8: a radius of 2..7 matches each case with its class (LOO 1.0); 0-1 cannot align any spike (all
    # distances ~ equal) and >= 8 aligns every spike.
    rng = np.random.default_rng(0)
    positions = [8, 10, 12, 14, 22, 24, 26, 28]
    train, y = spikes(positions, rng), np.array([0, 0, 0, 0, 1, 1, 1, 1])
    chosen, scores = cb.dtw_window_loo(train, y)
    assert chosen == 0.05 and scores[0.05] == 1.0 and scores[0.15] == 1.0  # radius 2 and 6
    assert scores[0.0] < 1.0 and scores[0.02] < 1.0
    assert set(scores) == set(cb.DEFAULT_WINDOWS)


def test_baseline_report(search):
    rng = np.random.default_rng(7)
    train, test = random_cases(rng, 20, 1, 10, 16), random_cases(rng, 9, 1, 10, 16)
    y_train, y_test = rng.integers(0, 3, 20).astype(str), rng.integers(0, 3, 9).astype(str)
    rep = cb.baseline_report(train, y_train, test, y_test, windows=(0.0, 0.1, 0.2))
    assert rep["majority"]["accuracy"] == np.mean(cb.majority(y_train, 9) == y_test)
    assert rep["1nn_euclidean"]["accuracy"] == np.mean(cb.nn1_euclidean(train, y_train, test) == y_test)
    full = y_train[np.argmin(numpy_matrix(test, train, None), axis=1)]
    assert rep["1nn_dtw_full"]["accuracy"] == np.mean(full == y_test)
    window, scores = cb.dtw_window_loo(train, y_train, (0.0, 0.1, 0.2))
    learned = y_train[np.argmin(numpy_matrix(test, train, rep["1nn_dtw_learned"]["radius"]), axis=1)]
    assert rep["1nn_dtw_learned"]["window"] == window
    assert rep["1nn_dtw_learned"]["radius"] == cb.window_radius(window, 16)
    assert rep["1nn_dtw_learned"]["loo_accuracy"] == scores[window]
    assert 0 <= rep["1nn_dtw_learned"]["loo_seconds"] <= rep["1nn_dtw_learned"]["seconds"]
    assert rep["1nn_dtw_learned"]["accuracy"] == np.mean(learned == y_test)
    assert all(rep[k]["seconds"] >= 0 for k in ("majority", "1nn_euclidean", "1nn_dtw_full", "1nn_dtw_learned"))
    assert rep["best"] in rep and rep[rep["best"]]["accuracy"] == max(
        rep[k]["accuracy"] for k in ("majority", "1nn_euclidean", "1nn_dtw_full", "1nn_dtw_learned"))


def test_bad_input():
    one, two = [np.ones((1, 5))] * 3, [np.ones((2, 5))] * 2
    with pytest.raises(UserError, match="test cases have 2 channels but the training cases have 1"):
        cb.nn1_dtw(one, np.arange(3), two)
    with pytest.raises(UserError, match="3 training cases but 2 labels"):
        cb.dtw_window_loo(one, [0, 1])
    with pytest.raises(UserError, match="at least 2 training cases"):
        cb.dtw_window_loo(one[:1], [0])
    with pytest.raises(UserError, match="labels do not match cases"):
        cb.baseline_report(one, [0, 1, 2], one, [0, 1])


UCR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ucr"


@pytest.mark.skipif(not (UCR / "UnitTest_TRAIN.ts").is_file(), reason="../shared/data/ucr is not present")
def test_report_on_the_archive_unit_test_equals_numpy():
    from rnnkit.data.tsfile import read_ts
    train, y_train = read_ts(UCR / "UnitTest_TRAIN.ts")
    test, y_test = read_ts(UCR / "UnitTest_TEST.ts")
    rep = cb.baseline_report(train, y_train, test, y_test, windows=(0.0, 0.1))
    full = y_train[np.argmin(numpy_matrix(test, train, None), axis=1)]
    assert rep["1nn_dtw_full"]["accuracy"] == np.mean(full == y_test)
    ed = np.array([[np.sqrt(np.sum((t - r) ** 2)) for r in train] for t in test])
    assert rep["1nn_euclidean"]["accuracy"] == np.mean(y_train[np.argmin(ed, axis=1)] == y_test)
    assert rep["majority"]["accuracy"] == pytest.approx(12 / 22)  # labels counted in the file: 12 "1", 10 "2"


def test_euclidean_far_from_zero_keeps_its_precision():
    # values near 1e8 differing by 1e-3: |a|^2 + |b|^2 - 2ab would lose every digit of the difference
    rng = np.random.default_rng(4)
    base = 1e8 + rng.normal(size=(1, 30))
    train = [base + 1e-3, base - 2e-3, base + 5e-3]
    D = cb.euclidean_distances(train, [base])
    np.testing.assert_allclose(D[0], [1e-3 * np.sqrt(30), 2e-3 * np.sqrt(30), 5e-3 * np.sqrt(30)], rtol=1e-4)
    assert cb.nn1_euclidean(train, np.array(["a", "b", "c"]), [base]).tolist() == ["a"]
