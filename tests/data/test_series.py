"""Series loading, validation, splitting, windows, scalers and season detection."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.series import (SeriesScaler, check_length, detect_season, fill_missing, from_python,
                                load_csv, make_windows, split_points, window_starts)
from rnnkit.errors import UserError


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_csv_columns_and_order(tmp_path):
    p = write(tmp_path, "t,y,x\n1,10,0.5\n2,11,0.6\n3,13,0.7\n")
    (s,) = load_csv(p, "y", time="t", covariates=["x"])
    np.testing.assert_array_equal(s.y, [10, 11, 13])
    np.testing.assert_array_equal(s.past[:, 0], [0.5, 0.6, 0.7])
    assert s.time == ["1", "2", "3"] and s.past_names == ("x",)


def test_missing_column_lists_columns(tmp_path):
    p = write(tmp_path, "month,passengers\n1,2\n")
    with pytest.raises(UserError, match=r"no column 'sales'; the columns are: month, passengers"):
        load_csv(p, "sales")


def test_non_numeric_cell_names_row_and_column(tmp_path):
    p = write(tmp_path, "t,y\n1,10\n2,abc\n3,12\n")
    with pytest.raises(UserError, match=r"row 3, column 'y': 'abc' is not a number"):
        load_csv(p, "y")


def test_empty_and_nan_cells_need_fill(tmp_path):
    p = write(tmp_path, "t,y\n1,10\n2,\n3,NaN\n4,16\n")
    with pytest.raises(UserError, match=r"row 3, column 'y' is empty or NaN.*--fill"):
        load_csv(p, "y")
    (s,) = load_csv(p, "y", fill="interpolate")
    np.testing.assert_allclose(s.y, [10, 12, 14, 16])
    (s,) = load_csv(p, "y", fill="ffill")
    np.testing.assert_allclose(s.y, [10, 10, 10, 16])


def test_ffill_with_leading_gap_is_an_error():
    with pytest.raises(UserError, match="no earlier value"):
        fill_missing(np.array([np.nan, 1.0, 2.0]), "y", "ffill", "array")
    np.testing.assert_allclose(fill_missing(np.array([np.nan, 1.0, 2.0]), "y", "interpolate", "a"), [1, 1, 2])


def test_series_column_makes_several_series(tmp_path):
    p = write(tmp_path, "id,y\na,1\nb,5\na,2\nb,6\na,3\n")
    a, b = load_csv(p, "y", series_col="id")
    assert (a.name, b.name) == ("a", "b")
    np.testing.assert_array_equal(a.y, [1, 2, 3])
    np.testing.assert_array_equal(b.y, [5, 6])


def test_ragged_row_and_empty_file(tmp_path):
    with pytest.raises(UserError, match="row 3 has 1 cells"):
        load_csv(write(tmp_path, "t,y\n1,2\n3\n"), "y")
    with pytest.raises(UserError, match="empty"):
        load_csv(write(tmp_path, "", "e.csv"), "y")
    with pytest.raises(UserError, match="no such file"):
        load_csv(tmp_path / "nope.csv", "y")


class FakeFrame:
    """Duck-typed stand-in for a pandas DataFrame (pandas is not a dependency)."""

    def __init__(self, cols):
        self._cols = cols
        self.columns = list(cols)

    def __getitem__(self, k):
        return FakeColumn(self._cols[k])

    def __len__(self):
        return len(next(iter(self._cols.values())))


class FakeColumn:
    def __init__(self, v):
        self.v = v

    def to_numpy(self):
        return np.asarray(self.v)


def test_from_python_arrays_and_frames():
    (s,) = from_python(np.arange(5.0))
    assert len(s) == 5 and s.past.shape == (5, 0)
    (s,) = from_python(np.stack([np.arange(5.0), np.ones(5)], axis=1))
    assert s.past.shape == (5, 1)
    frame = FakeFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 0.0]})
    (s,) = from_python(frame, target="y", covariates=["x"])
    np.testing.assert_array_equal(s.y, [1, 2, 3])
    with pytest.raises(UserError, match="the columns are: y, x"):
        from_python(frame, target="z")
    two = from_python([np.arange(4.0), np.arange(6.0)])
    assert [len(s) for s in two] == [4, 6]


def test_pandas_if_installed():
    pd = pytest.importorskip("pandas")
    (s,) = from_python(pd.Series([1.0, 2.0, 4.0], name="sales"))
    assert s.target == "sales"
    (s,) = from_python(pd.DataFrame({"y": [1, 2, None]}), target="y", fill="ffill")
    np.testing.assert_array_equal(s.y, [1, 2, 2])


def test_split_points_and_too_short():
    assert split_points(100, 10, 20) == (70, 80)
    with pytest.raises(UserError, match="leaves 1 points for training"):
        split_points(21, 10, 10)


def test_window_exact_length_gives_one_sample():
    z = np.arange(7.0)
    xs, ys = make_windows(z, lookback=4, horizon=3)
    assert xs.shape == (1, 4) and ys.shape == (1, 3)
    np.testing.assert_array_equal(xs[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(ys[0], [4, 5, 6])


def test_window_one_short_names_both_lengths():
    with pytest.raises(UserError, match=r"has 6 points but lookback \+ horizon = 4 \+ 3 = 7"):
        make_windows(np.arange(6.0), lookback=4, horizon=3)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), lookback=st.integers(1, 20), horizon=st.integers(1, 10))
def test_window_count_property(n, lookback, horizon):
    z = np.arange(float(n))
    if n < lookback + horizon:
        with pytest.raises(UserError, match=f"has {n} points"):
            make_windows(z, lookback, horizon)
        return
    xs, ys = make_windows(z, lookback, horizon)
    assert len(xs) == n - lookback - horizon + 1
    # every window is contiguous: targets follow the inputs directly
    np.testing.assert_array_equal(ys[:, 0], xs[:, -1] + 1)
    assert ys[-1, -1] == n - 1 and xs[0, 0] == 0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 80), lookback=st.integers(1, 10), horizon=st.integers(1, 5),
       cut=st.floats(0.2, 0.9))
def test_window_targets_stay_in_their_span(n, lookback, horizon, cut):
    lo = int(n * cut)
    for o in window_starts(n, lookback, horizon, 0, lo):
        assert o + horizon <= lo and o - lookback >= 0
    for o in window_starts(n, lookback, horizon, lo, n):
        assert o >= lo and o + horizon <= n


def test_scaler_fits_training_span_only_and_inverts():
    y = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    sc = SeriesScaler().fit(y[:4])
    assert sc.mean_ == 2.5
    np.testing.assert_allclose(sc.inverse(sc.transform(y)), y)
    sc = SeriesScaler(log=True).fit(y[:4])
    np.testing.assert_allclose(sc.inverse(sc.transform(y)), y)
    assert SeriesScaler.from_json(sc.to_json()) == sc


def test_constant_series_and_log_of_nonpositive():
    with pytest.raises(UserError, match="constant"):
        SeriesScaler().fit(np.full(10, 3.0))
    with pytest.raises(UserError, match="positive"):
        SeriesScaler(log=True).fit(np.array([1.0, 0.0, 2.0]))


def test_check_length_message():
    with pytest.raises(UserError, match=r"has 5 points but lookback \+ horizon = 4 \+ 2 = 6"):
        check_length(5, 4, 2)


def test_detect_season():
    rng = np.random.default_rng(0)
    t = np.arange(300)
    assert detect_season(np.sin(2 * np.pi * t / 12) + 0.02 * t + rng.normal(0, 0.2, 300)) == 12
    assert detect_season(np.sin(2 * np.pi * t / 7) + 0.5 * np.sin(2 * np.pi * t / 30)
                         + rng.normal(0, 0.3, 300)) == 7
    assert detect_season(rng.normal(size=300)) == 1


def test_detect_season_ignores_random_walk_bumps():
    rng = np.random.default_rng(0)
    assert [detect_season(np.cumsum(rng.normal(size=250))) for _ in range(8)] == [1] * 8
