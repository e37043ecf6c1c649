"""RandomTDNN: features against a plain float64 loop, padded batch == each case alone, chunking, the dilation
plan, the drawn channels and biases, state round trip, and the numerical edge cases (short, constant, huge
dilation)."""
import itertools

import numpy as np
import pytest

from rnnkit.nn.random_tdnn import GOLDEN, N_KERNELS, TAPS, RandomTDNN, dilation_plan


def conv_reference(series, w, d):
    """Plain loop: out[t] = sum_j w[j] * series[t + (j - 4) d], zero outside 0..len-1 (float64)."""
    L = len(series)
    out = np.zeros(L)
    for t in range(L):
        acc = 0.0
        for j in range(9):
            u = t + (j - 4) * d
            if 0 <= u < L:
                acc += w[j] * series[u]
        out[t] = acc
    return out


def ppv_steps(L, d, padded):
    """The steps a feature counts over: the case's own ("same") or those whose window fits ("valid")."""
    if padded:
        return np.arange(L)
    steps = np.arange(4 * d, L - 4 * d)
    return steps if len(steps) else np.arange(L)


def weights(kernel):
    w = -np.ones(9)
    w[list(TAPS[kernel])] = 2.0
    return w


def reference_outputs(layer, g, d, case):
    """Kernel group g at dilation d on one case (L, C): the output at each of the case's steps."""
    series = case[:, np.flatnonzero(layer.channels[g])].astype(np.float64).sum(axis=1)
    return conv_reference(series, weights(layer.kernel[g]), d)


def reference_features(layer, xs, lengths):
    B = len(xs)
    feats = np.zeros((B, int(layer.counts.sum())))
    col = 0
    for i, d in enumerate(layer.dilations):
        for g in range(i * N_KERNELS, (i + 1) * N_KERNELS):
            n = int(layer.counts[g])
            bias = layer.biases[col: col + n].astype(np.float64)
            for b in range(B):
                L = int(lengths[b])
                out = reference_outputs(layer, g, int(d), xs[b, :L])
                steps = ppv_steps(L, int(d), bool(layer.padded[g]))
                feats[b, col: col + n] = (out[steps][:, None] > bias[None, :]).mean(axis=0)
            col += n
    return feats


def integer_data(rng, B, T, C, lengths):
    """Small integers: every convolution output is an exact integer in float32 and float64 alike, so the
    PPV comparisons of the engine and of the reference cannot differ by rounding."""
    xs = rng.integers(-4, 5, size=(B, T, C)).astype(np.float32)
    for b, L in enumerate(lengths):
        xs[b, L:] = 0.0
    return xs, np.asarray(lengths)


def test_kernel_table():
    assert TAPS.shape == (84, 3) and len({tuple(t) for t in TAPS}) == 84
    assert all(weights(k).sum() == 0.0 for k in range(84))  # -1 x 6 + 2 x 3


@pytest.mark.parametrize("C,lengths", [(1, [40] * 5), (1, [40, 31, 12, 7, 25]), (5, [36, 36, 36, 36]),
                                       (5, [36, 20, 8, 33])])
def test_features_equal_plain_loop_on_integer_data(C, lengths):
    rng = np.random.default_rng(C + len(set(lengths)))
    xs, lengths = integer_data(rng, len(lengths), max(lengths), C, lengths)
    layer = RandomTDNN(n_features=84 * 4, rng=1).fit(xs, lengths)
    assert len(layer.dilations) >= 2 and layer.padded.any() and not layer.padded.all()
    got = layer.transform(xs, lengths)
    np.testing.assert_allclose(got, reference_features(layer, xs, lengths), rtol=0, atol=1e-6)
    if C > 1:  # channel subsets really differ between groups
        sizes = layer.channels.sum(axis=1)
        assert sizes.min() >= 1 and sizes.max() <= C and len(set(sizes)) > 1


def test_features_equal_plain_loop_on_real_valued_data():
    """Gaussian data in float32 vs the float64 loop: a feature may differ only where an output sits within
    rounding of one of its biases. That happens where a bias was drawn as an output itself: a case whose
    window fits once (length 9) has a single "valid" step, the biases its group draws from it equal that
    output, and the tie then goes either way. Measured: 21 of 2,520 features (0.8%), all of that case."""
    rng = np.random.default_rng(7)
    lengths = np.array([50, 44, 9, 30, 50, 3])
    xs = rng.standard_normal((6, 50, 3)).astype(np.float32)
    for b, L in enumerate(lengths):
        xs[b, L:] = 0.0
    layer = RandomTDNN(n_features=84 * 5, rng=2).fit(xs[:4], lengths[:4])
    got = layer.transform(xs, lengths)
    want = reference_features(layer, xs, lengths)
    bad = np.argwhere(np.abs(got - want) > 1e-5)
    assert len(bad) <= 0.02 * got.size
    group = np.repeat(np.arange(len(layer.counts)), layer.counts)  # feature -> kernel group
    for b, col in bad:
        g = group[col]
        d = int(layer.dilations[g // N_KERNELS])
        L = int(lengths[b])
        out = reference_outputs(layer, g, d, xs[b, :L])[ppv_steps(L, d, bool(layer.padded[g]))]
        bias = float(layer.biases[col])
        near = np.abs(out - bias) <= 1e-5 * (1.0 + abs(bias))  # steps within rounding of the bias
        assert near.any(), (b, col)
        assert abs(got[b, col] - want[b, col]) * len(out) <= near.sum() + 1e-3  # only those count differently


def test_biases_are_quantiles_of_a_training_case_output():
    """Each group's biases are quantiles, at positions (k * golden ratio) mod 1, of its output over the PPV
    steps of one of the training cases."""
    rng = np.random.default_rng(3)
    xs, lengths = integer_data(rng, 4, 30, 2, [30, 25, 14, 6])
    layer = RandomTDNN(n_features=84 * 3, rng=5).fit(xs, lengths)
    q = (np.arange(1, int(layer.counts.sum()) + 1) * GOLDEN) % 1.0
    col = 0
    for i, d in enumerate(layer.dilations):
        for g in range(i * N_KERNELS, (i + 1) * N_KERNELS):
            n = int(layer.counts[g])
            candidates = []
            for b in range(4):
                L = int(lengths[b])
                out = reference_outputs(layer, g, int(d), xs[b, :L])[ppv_steps(L, int(d), bool(layer.padded[g]))]
                candidates.append(np.quantile(out, q[col: col + n]))
            assert any(np.allclose(layer.biases[col: col + n], c, rtol=0, atol=1e-5) for c in candidates), g
            col += n
    assert col == len(layer.biases)


def test_padded_batch_with_garbage_equals_each_case_alone_and_chunking_changes_nothing():
    rng = np.random.default_rng(11)
    lengths = np.array([60, 17, 5, 42, 60, 1])
    xs = rng.standard_normal((6, 75, 4)).astype(np.float32)  # 15 steps of padding beyond the longest
    layer = RandomTDNN(n_features=1000, rng=0).fit(xs, lengths)
    batch = layer.transform(xs, lengths)  # the padding holds random values: it must read as zeros
    for b, L in enumerate(lengths):
        alone = layer.transform(xs[b: b + 1, :L], lengths[b: b + 1])
        np.testing.assert_array_equal(batch[b], alone[0])
    zeroed = np.where(np.arange(75)[None, :, None] < lengths[:, None, None], xs, 0.0)
    np.testing.assert_array_equal(layer.transform(zeroed, lengths), batch)
    layer.chunk_bytes = 1  # one case at a time
    np.testing.assert_array_equal(layer.transform(xs, lengths), batch)
    assert batch.dtype == np.float32 and batch.shape == (6, 84 * (1000 // 84))
    assert ((batch >= 0) & (batch <= 1)).all()


def test_fit_ignores_training_padding_values():
    rng = np.random.default_rng(12)
    lengths = np.array([30, 12, 30, 20])
    xs = rng.standard_normal((4, 30, 2)).astype(np.float32)
    clean = np.where(np.arange(30)[None, :, None] < lengths[:, None, None], xs, 0.0)
    a = RandomTDNN(n_features=500, rng=4).fit(xs, lengths)
    b = RandomTDNN(n_features=500, rng=4).fit(clean, lengths)
    np.testing.assert_array_equal(a.biases, b.biases)


@pytest.mark.parametrize("length,n_features,max_dilations", list(itertools.product(
    [1, 2, 9, 10, 17, 50, 129, 1000, 100_000], [84, 100, 1000, 9996, 10_000, 50_000], [32, 5])))
def test_dilation_plan(length, n_features, max_dilations):
    dil, counts = dilation_plan(length, n_features, max_dilations)
    assert counts.sum() == n_features // 84 and (counts >= 1).all() and len(counts) == len(dil)
    assert dil[0] == 1 and (np.diff(dil) > 0).all() and len(dil) <= max_dilations  # unique, increasing
    if length > 9:
        assert dil[-1] * 8 <= length - 1
    else:
        assert list(dil) == [1]


def test_dilation_plan_reaches_the_series_length():
    dil, _ = dilation_plan(1001, 10_000)
    assert dil[-1] == 125 and len(dil) == 25  # (1001 - 1) / 8; 32 exponential steps, 25 distinct


def test_univariate_groups_read_the_only_channel_and_multivariate_at_most_nine():
    rng = np.random.default_rng(0)
    uni = RandomTDNN(n_features=500, rng=0).fit(rng.standard_normal((3, 20, 1)), [20, 20, 20])
    assert uni.channels.all()
    multi = RandomTDNN(n_features=2000, rng=0).fit(rng.standard_normal((3, 20, 12)), [20, 20, 20])
    sizes = multi.channels.sum(axis=1)
    assert sizes.min() == 1 and sizes.max() <= 9 and len(np.unique(multi.channels, axis=0)) > 50


def test_same_seed_same_layer_other_seed_other_layer():
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((5, 30, 3)).astype(np.float32)
    lengths = np.full(5, 30)
    a, b = (RandomTDNN(600, rng=9).fit(xs, lengths) for _ in range(2))
    c = RandomTDNN(600, rng=10).fit(xs, lengths)
    np.testing.assert_array_equal(a.transform(xs, lengths), b.transform(xs, lengths))
    assert not np.array_equal(a.biases, c.biases)


def test_state_round_trip_and_bad_states():
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((4, 25, 2)).astype(np.float32)
    lengths = np.array([25, 20, 9, 3])
    layer = RandomTDNN(700, rng=3).fit(xs, lengths)
    state = layer.state()
    assert set(state) == {"dilations", "kernel", "padded", "channels", "counts", "biases"}
    shapes = RandomTDNN.state_shapes(len(layer.dilations), 2, len(layer.biases))
    assert {k: (v.shape, v.dtype) for k, v in state.items()} == {k: (s, np.dtype(t)) for k, (s, t) in shapes.items()}
    back = RandomTDNN.from_state(state)
    np.testing.assert_array_equal(back.transform(xs, lengths), layer.transform(xs, lengths))

    def broken(**change):
        return RandomTDNN.from_state({**state, **change})

    G = len(state["kernel"])
    bad = {
        "dilations": np.array([0] * len(layer.dilations)),
        "kernel": np.full(G, 84),
        "counts": state["counts"] + 1,
        "channels": np.zeros_like(state["channels"]),
        "padded": state["padded"][:-1],
        "biases": np.full_like(state["biases"], np.nan),
    }
    for name, value in bad.items():
        with pytest.raises(ValueError):
            broken(**{name: value})
    with pytest.raises(ValueError, match="channel"):
        layer.transform(np.zeros((1, 25, 3), np.float32), [25])
    for bad_lengths in ([26], [0], [25, 25]):
        with pytest.raises(ValueError, match="lengths"):
            layer.transform(np.zeros((1, 25, 2), np.float32), bad_lengths)


def test_huge_dilation_reads_only_the_centre_tap():
    """A dilation far beyond the series (a hand-made state; fit never draws one) costs no memory and gives
    what the plain loop gives: only tap 4 (weight -1 or 2) reads inside the case."""
    rng = np.random.default_rng(4)
    xs, lengths = integer_data(rng, 3, 50, 1, [50, 31, 7])
    layer = RandomTDNN(84, rng=0).fit(xs, lengths)
    state = {**layer.state(), "dilations": np.array([1 << 20])}
    huge = RandomTDNN.from_state(state)
    np.testing.assert_allclose(huge.transform(xs, lengths), reference_features(huge, xs, lengths), atol=1e-6)


def test_short_and_constant_cases_give_finite_features():
    rng = np.random.default_rng(5)
    xs, lengths = integer_data(rng, 5, 40, 1, [1, 2, 8, 9, 40])
    xs[4] = 3.0  # a constant case: zero output inside, nonzero only where zero padding enters the window
    layer = RandomTDNN(600, rng=0).fit(xs, lengths)
    feats = layer.transform(xs, lengths)
    assert np.isfinite(feats).all() and ((feats >= 0) & (feats <= 1)).all()
    np.testing.assert_allclose(feats, reference_features(layer, xs, lengths), rtol=0, atol=1e-6)
    constant = RandomTDNN(600, rng=0).fit(np.full((2, 30, 1), 3.0), [30, 30])  # every bias from a constant
    assert np.isfinite(constant.biases).all()
    assert np.isfinite(constant.transform(xs, lengths)).all()
