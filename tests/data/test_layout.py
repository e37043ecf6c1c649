"""The input layout: aeon's three layouts in, a list of (C, L) cases out; every refusal's message; padding."""
import numpy as np
import pytest

from rnnkit.data.layout import as_cases, fill_missing, lengths, pad_batch
from rnnkit.errors import UserError


def test_three_d_array():
    X = np.arange(2 * 3 * 10, dtype=np.int32).reshape(2, 3, 10)
    cases = as_cases(X)
    assert len(cases) == 2 and all(c.shape == (3, 10) and c.dtype == np.float64 for c in cases)
    assert cases[1][2, 9] == X[1, 2, 9] == 59
    cases[0][0, 0] = -1.0
    assert X[0, 0, 0] == 0  # a copy, not a view of the caller's data


def test_two_d_array_is_one_channel():
    X = np.random.default_rng(0).normal(size=(4, 9))
    cases = as_cases(X)
    assert [c.shape for c in cases] == [(1, 9)] * 4
    np.testing.assert_array_equal(cases[2][0], X[2])


def test_list_of_unequal_cases():
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(2, 5)), rng.normal(size=(2, 8)), rng.normal(size=(2, 1))]
    cases = as_cases(X)
    assert lengths(cases).tolist() == [5, 8, 1]
    np.testing.assert_array_equal(cases[1], X[1])
    assert [c.shape for c in as_cases([np.arange(3), [1.0, 2.0]])] == [(1, 3), (1, 2)]
    assert [c.shape for c in as_cases(tuple(np.ones((3, 2, 4))))] == [(2, 4)] * 3


def test_object_array_of_cases():
    X = np.empty(2, dtype=object)
    X[0], X[1] = np.ones((1, 3)), np.ones((1, 5))
    assert lengths(as_cases(X)).tolist() == [3, 5]


def refuse(X, *needles, **kw):
    with pytest.raises(UserError) as e:
        as_cases(X, **kw)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_transposed_array_is_named():
    refuse(np.zeros((5, 30, 2)), "looks transposed", "(n_cases, n_timepoints, n_channels)", "X.transpose(0, 2, 1)")
    refuse(np.zeros((5, 100, 6)), "looks transposed")
    refuse(np.zeros((5, 40, 1)), "looks transposed")
    # the rule's edges: real archive shapes pass (PenDigits 2 x 8, DuckDuckGeese 1345 x 270, PEMS-SF 963 x 144)
    for shape in [(3, 2, 8), (2, 1345, 270), (2, 963, 144), (3, 3, 2), (3, 27, 7)]:
        assert len(as_cases(np.zeros(shape))) == shape[0]
    # the escape hatch named in the message: a list is taken as it is
    assert as_cases(list(np.zeros((5, 30, 2))))[0].shape == (30, 2)


def test_refusals():
    refuse(np.ones(5), "1-D array", "X[None, :]")
    refuse(np.ones((2, 2, 2, 2)), "4-D array", "(n_cases, n_channels, n_timepoints)")
    refuse("abc", "X is a str")
    refuse([], "no cases")
    refuse(np.zeros((0, 5)), "no cases")
    refuse([np.ones((2, 3)), np.ones((1, 3))], "case 1 (0-based) has 1 channels but case 0 has 2")
    refuse([np.ones((1, 3)), np.ones((1, 0))], "case 1 (0-based) is empty")
    refuse([np.ones((1, 2, 3))], "case 0 (0-based) has shape (1, 2, 3)")
    refuse(np.array([["a", "b"]]), "dtype <U1", "real numbers")
    refuse(np.ones((2, 3), dtype=complex), "real numbers")


def test_non_finite_values_are_located():
    X = np.ones((3, 2, 6))
    X[2, 1, 4] = np.nan
    X[2, 0, 5] = np.nan
    refuse(X, "NaN at case 2, channel 0, step 5", "2 non-finite values", "fill='interpolate'")
    X = [np.ones((1, 3)), np.array([[1.0, np.inf]])]
    refuse(X, "an infinite value at case 1, channel 0, step 1")
    refuse(X, "infinite", fill="zero")  # an infinity is not a missing value


def test_fill_in_as_cases_and_fill_missing():
    X = np.array([[np.nan, 2.0, np.nan, 6.0, np.nan]])
    keep = dict(trim_nan_padding=False)
    assert as_cases(X, fill="interpolate", **keep)[0].tolist() == [[2.0, 2.0, 4.0, 6.0, 6.0]]
    assert as_cases(X, fill="ffill", **keep)[0].tolist() == [[2.0, 2.0, 2.0, 6.0, 6.0]]
    assert as_cases(X, fill="zero", **keep)[0].tolist() == [[0.0, 2.0, 0.0, 6.0, 0.0]]
    assert as_cases(X, fill="zero")[0].tolist() == [[0.0, 2.0, 0.0, 6.0]]  # the last NaN is padding
    case = np.array([[1.0, np.nan], [np.nan, np.nan]])
    with pytest.raises(UserError, match="channel 2 has no values at all"):
        fill_missing(case, "interpolate")
    assert fill_missing(case, "zero").tolist() == [[1.0, 0.0], [0.0, 0.0]]
    with pytest.raises(UserError, match="unknown fill 'mean'"):
        fill_missing(case, "mean")
    assert np.isnan(case).sum() == 3  # the input is left alone


def test_pad_batch():
    cases = [np.arange(6.0).reshape(2, 3), np.arange(10.0, 20.0).reshape(2, 5), np.array([[7.0], [8.0]])]
    xs, mask = pad_batch(cases)
    assert xs.shape == (3, 5, 2) and xs.dtype == np.float32 and mask.dtype == bool
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    np.testing.assert_array_equal(xs[0, :3], cases[0].T)
    np.testing.assert_array_equal(xs[1], cases[1].T)
    assert xs[2, 0].tolist() == [7.0, 8.0] and not xs[0, 3:].any() and not xs[2, 1:].any()
    xs, mask = pad_batch(cases, dtype=np.float64, max_len=7)
    assert xs.shape == (3, 7, 2) and xs.dtype == np.float64 and mask.sum() == 9
    with pytest.raises(UserError, match="case 1 .* 5 time points, more than max_len=4"):
        pad_batch(cases, max_len=4)
    with pytest.raises(UserError, match="at least one case"):
        pad_batch([])


def test_nan_padding_at_the_end_is_trimmed():
    X = np.arange(24.0).reshape(3, 2, 4)
    X[0, :, 2:] = np.nan  # padding: both channels end early
    X[1, 0, 3] = np.nan  # one channel only: a missing value
    cases = as_cases(X, fill="zero")
    assert lengths(cases).tolist() == [2, 4, 4]
    np.testing.assert_array_equal(cases[0], X[0, :, :2])
    assert cases[1][0, 3] == 0.0
    refuse(X, "NaN at case 1, channel 0, step 3")
    assert lengths(as_cases(X, fill="zero", trim_nan_padding=False)).tolist() == [4, 4, 4]
    refuse(np.full((2, 1, 3), np.nan), "case 0 (0-based) holds only NaN")


def test_transposed_list_is_named():
    X = [np.zeros((50, 3)), np.zeros((42, 3))]
    refuse(X, "case 1 (0-based) has 42 channels but case 0 has 50", "(length, n_channels)", "[x.T for x in X]")
    assert [c.shape for c in as_cases([x.T for x in X])] == [(3, 50), (3, 42)]


def test_object_arrays_of_numbers_are_converted():
    X = np.array([[1, 2, 3], [4, 5, 6]], dtype=object)
    assert [c.tolist() for c in as_cases(X)] == [[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]]
    refuse(np.array([["a", 1]], dtype=object), "case 0 (0-based) has dtype object", "real numbers")
