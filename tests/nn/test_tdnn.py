"""TDNN: gradient checks, a hand-computed case, PyTorch Conv1d parity, masks equal to running alone, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.errors import UserError
from rnnkit.nn import TDNN
from rnnkit.nn.gradcheck import gradcheck

MODES = ["causal", "same", "valid"]


def lengths_mask(lengths, T):
    return np.arange(T) < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("padding", MODES)
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(padding, stride, dilation, masked):
    rng = np.random.default_rng(10 * stride + dilation)
    layer = TDNN(3, 4, 3, dilation=dilation, stride=stride, padding=padding, dtype=np.float64, rng=rng)
    T = 11
    xs = rng.standard_normal((3, T, 3))
    mask = lengths_mask([T, 7, 5], T) if masked else None
    res = gradcheck(layer, xs, rng=rng, forward_kwargs={"mask": mask})
    assert set(res) == {"W", "b", "input"}
    assert res.passed(1e-6), res


def test_gradcheck_without_bias():
    rng = np.random.default_rng(1)
    layer = TDNN(2, 3, 2, padding="same", bias=False, dtype=np.float64, rng=rng)
    res = gradcheck(layer, rng.standard_normal((2, 5, 2)), rng=rng)
    assert set(res) == {"W", "input"} and res.passed(1e-6), res


def test_hand_computed_causal_kernel_two():
    """y_t = W[0] x_{t-1} + W[1] x_t + b with x_{-1} = 0, D = C = 1, by hand."""
    layer = TDNN(1, 1, 2, dtype=np.float64)
    layer.W[...] = np.array([2.0, 3.0]).reshape(2, 1, 1)
    layer.b[...] = 0.5
    ys = layer.forward(np.array([1.0, -1.0, 4.0]).reshape(1, 3, 1))
    np.testing.assert_allclose(ys.ravel(), [3 * 1 + 0.5, 2 * 1 + 3 * -1 + 0.5, 2 * -1 + 3 * 4 + 0.5])
    dxs = layer.backward(np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1))
    # dx_t = 3 dy_t + 2 dy_{t+1}; dW[0] = sum dy_t x_{t-1}; dW[1] = sum dy_t x_t
    np.testing.assert_allclose(dxs.ravel(), [3 + 20, 30 + 200, 300])
    np.testing.assert_allclose(layer.grads["W"].ravel(), [10 * 1 + 100 * -1, 1 - 10 + 400])
    np.testing.assert_allclose(layer.grads["b"], [111.0])


def test_hand_computed_valid_stride_two_dilation_two():
    """K=2, dilation 2, stride 2, valid: y_t = W[0] x_{2t} + W[1] x_{2t+2}; T=6 -> T'=2."""
    layer = TDNN(1, 1, 2, dilation=2, stride=2, padding="valid", bias=False, dtype=np.float64)
    layer.W[...] = np.array([1.0, 10.0]).reshape(2, 1, 1)
    ys = layer.forward(np.arange(6.0).reshape(1, 6, 1))
    np.testing.assert_allclose(ys.ravel(), [0 + 10 * 2, 2 + 10 * 4])


def test_output_lengths():
    assert TDNN(2, 2, 5, stride=2).output_length(1460) == 730
    assert TDNN(2, 2, 5, stride=3, padding="same").output_length(10) == 4
    assert TDNN(2, 2, 3, dilation=2, stride=2, padding="valid").output_length(10) == 3  # (10-5)//2+1
    assert TDNN(2, 2, 3, dilation=2, padding="valid").output_length(5) == 1
    assert TDNN(2, 2, 3).output_mask(None) is None


@pytest.mark.parametrize("algorithm", ["unfold", "winograd"])
def test_float32_default_and_grad_accumulation(algorithm):
    """Two backward calls after one forward add up (the kept buffers must not be spoiled by the first)."""
    rng = np.random.default_rng(2)
    layer = TDNN(3, 2, 3, rng=rng, algorithm=algorithm)
    xs = rng.standard_normal((2, 6, 3))
    ys = layer.forward(xs)
    assert ys.dtype == np.float32 and layer.W.dtype == np.float32
    dys = rng.standard_normal(ys.shape).astype(np.float32)
    dxs = layer.backward(dys)
    assert dxs.dtype == np.float32 and dxs.shape == xs.shape
    g = layer.grads["W"].copy()
    np.testing.assert_array_equal(layer.backward(dys), dxs)
    np.testing.assert_allclose(layer.grads["W"], 2 * g, rtol=1e-6)
    y2 = layer.forward(xs[:1, :4])  # a smaller call reuses the buffers; earlier outputs stay intact
    assert y2.shape == (1, 4, 2) and not np.shares_memory(y2, ys) and not np.shares_memory(layer.backward(y2), dxs)


def naive_tdnn(layer, x):
    """One case (T, D), written from the docstring's definition with plain loops (independent of the GEMM)."""
    T = x.shape[0]
    K, dil, s = layer.kernel_size, layer.dilation, layer.stride
    total = (K - 1) * dil
    left = {"causal": total, "same": total // 2, "valid": 0}[layer.padding]
    n_out = -(-T // s) if layer.padding != "valid" else (T - total - 1) // s + 1
    ys = np.zeros((n_out, layer.channels_out))
    for t in range(n_out):
        ys[t] = layer.b
        for k in range(K):
            i = t * s + k * dil - left
            if 0 <= i < T:
                ys[t] += x[i] @ layer.W[k]
    return ys


@settings(max_examples=60, deadline=None)
@given(padding=st.sampled_from(MODES), K=st.integers(1, 7), dil=st.integers(1, 3), stride=st.integers(1, 3),
       lengths=st.lists(st.integers(1, 14), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       algorithm=st.sampled_from(["unfold", "winograd"]))
def test_matches_loops_per_case_for_any_configuration(padding, K, dil, stride, lengths, seed, algorithm):
    rng = np.random.default_rng(seed)
    if algorithm == "winograd":
        K, dil, stride = max(K, 2), 1, 1
    layer = TDNN(2, 3, K, dilation=dil, stride=stride, padding=padding, dtype=np.float64, rng=rng,
                 algorithm=algorithm)
    if padding == "valid":
        lengths = [max(L, layer.receptive_field) for L in lengths]
    T = max(lengths)
    xs = rng.standard_normal((len(lengths), T, 2))
    mask = lengths_mask(lengths, T)
    ys = layer.forward(xs, mask=mask)
    out_mask = layer.output_mask(mask)
    assert ys.shape == (len(lengths), layer.output_length(T), 3) == out_mask.shape + (3,)
    for i, L in enumerate(lengths):
        ref = naive_tdnn(layer, xs[i, :L])
        assert out_mask[i].sum() == len(ref) and out_mask[i, :len(ref)].all()
        np.testing.assert_allclose(ys[i, :len(ref)], ref, rtol=1e-12, atol=1e-12)
        assert not ys[i, len(ref):].any()


# -- masks: a padded batch gives every case exactly what it gets alone ----------------------------
def run(layer, xs, mask, dys):
    layer.zero_grad()
    ys = layer.forward(xs, mask=mask)
    dxs = layer.backward(dys)
    return ys, dxs, {k: g.copy() for k, g in layer.grads.items()}


@pytest.mark.parametrize("padding", MODES)
@pytest.mark.parametrize("stride,dilation,algorithm", [(1, 1, "unfold"), (1, 1, "winograd"), (2, 1, "auto"),
                                                       (1, 2, "auto"), (2, 2, "auto")])
def test_masked_batch_equals_each_case_alone(padding, stride, dilation, algorithm):
    rng = np.random.default_rng(3)
    layer = TDNN(2, 3, 3, dilation=dilation, stride=stride, padding=padding, dtype=np.float64, rng=rng,
                 algorithm=algorithm)
    lengths = [12, 9, 6, 5]
    T = max(lengths)
    xs = rng.standard_normal((len(lengths), T, 2))
    mask = lengths_mask(lengths, T)
    xs[~mask] = np.nan  # padding may hold anything
    out_mask = layer.output_mask(mask)
    dys = rng.standard_normal((len(lengths), layer.output_length(T), 3))
    ys, dxs, grads = run(layer, xs, mask, dys)
    assert np.isfinite(ys).all() and np.isfinite(dxs).all()
    total = {k: 0 for k in grads}
    for i, L in enumerate(lengths):
        n_out = layer.output_length(L)
        assert out_mask[i].sum() == n_out and out_mask[i, :n_out].all()
        y1, dx1, g1 = run(layer, xs[i:i + 1, :L], None, dys[i:i + 1, :n_out])
        np.testing.assert_allclose(ys[i, :n_out], y1[0], rtol=1e-12, atol=1e-12)
        assert not ys[i, n_out:].any()
        np.testing.assert_allclose(dxs[i, :L], dx1[0], rtol=1e-12, atol=1e-12)
        assert not dxs[i, L:].any()
        for k in total:
            total[k] = total[k] + g1[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding", MODES)
@pytest.mark.parametrize("stride,dilation,algorithm", [(1, 2, "unfold"), (2, 2, "unfold"), (1, 1, "winograd")])
def test_left_padding_equals_each_case_alone(padding, stride, dilation, algorithm):
    """Data at the end of the row (padding first): outputs start at step start // stride."""
    rng = np.random.default_rng(4)
    layer = TDNN(2, 3, 3, dilation=dilation, stride=stride, padding=padding, dtype=np.float64, rng=rng,
                 algorithm=algorithm)
    T, starts = 12, [0, 2, 6]
    xs = rng.standard_normal((3, T, 2))
    mask = np.arange(T) >= np.array(starts)[:, None]
    xs[~mask] = 1e6
    ys = layer.forward(xs, mask=mask)
    out_mask = layer.output_mask(mask)
    for i, s in enumerate(starts):
        y1 = layer.forward(xs[i:i + 1, s:])[0]
        o = s // stride
        np.testing.assert_allclose(ys[i, o:o + len(y1)], y1, rtol=1e-12, atol=1e-12)
        assert not ys[i, :o].any() and out_mask[i].sum() == len(y1) and out_mask[i, o:].all()


def test_rows_without_data_give_zero_outputs():
    rng = np.random.default_rng(5)
    layer = TDNN(2, 3, 2, dtype=np.float64, rng=rng)
    mask = lengths_mask([4, 0], 4)
    ys = layer.forward(rng.standard_normal((2, 4, 2)), mask=mask)
    assert not ys[1].any() and not layer.output_mask(mask)[1].any()


# -- the Winograd path ---------------------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 5, 7])
@pytest.mark.parametrize("padding", MODES)
def test_winograd_equals_unfold_in_float64(K, padding):
    """The fast path against the reference: outputs, every gradient, masks, lengths that leave a last
    partial tile and ones shorter than a tile; twice, so the kept buffers are reused."""
    rng = np.random.default_rng(K)
    ref = TDNN(3, 4, K, padding=padding, dtype=np.float64, rng=rng, algorithm="unfold")
    fast = TDNN(3, 4, K, padding=padding, dtype=np.float64, algorithm="winograd")
    fast.load_state_dict(ref.state_dict())
    assert fast.uses_winograd() and not ref.uses_winograd()
    for T, lengths in ((23, [23, 17, 9]), (9, [9, 8, 7])):
        xs = rng.standard_normal((3, T, 3))
        mask = lengths_mask(lengths, T)
        dys = rng.standard_normal((3, ref.output_length(T), 4))
        for m in (None, mask):
            y_ref, dx_ref, g_ref = run(ref, xs, m, dys)
            y, dx, g = run(fast, xs, m, dys)
            scale = np.abs(y_ref).max()
            np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12 * scale)
            np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12 * np.abs(dx_ref).max())
            for k in g_ref:
                np.testing.assert_allclose(g[k], g_ref[k], rtol=0, atol=1e-12 * np.abs(g_ref[k]).max())


@pytest.mark.parametrize("padding", MODES)
@pytest.mark.parametrize("masked", [False, True])
def test_winograd_gradcheck(padding, masked):
    rng = np.random.default_rng(11)
    layer = TDNN(3, 4, 5, padding=padding, dtype=np.float64, rng=rng, algorithm="winograd")
    xs = rng.standard_normal((3, 13, 3))
    mask = lengths_mask([13, 9, 6], 13) if masked else None
    res = gradcheck(layer, xs, rng=rng, forward_kwargs={"mask": mask})
    assert res.passed(1e-6), res


def test_winograd_float32_error_and_auto_choice():
    """float32 through the transforms stays within 1e-5 of the output scale (float64 reference)."""
    rng = np.random.default_rng(12)
    layer = TDNN(32, 32, 5, rng=rng)
    assert layer.uses_winograd()
    assert not TDNN(1, 64, 5).uses_winograd() and not TDNN(32, 32, 5, stride=2).uses_winograd()
    assert not TDNN(32, 32, 8).uses_winograd() and not TDNN(32, 32, 5, algorithm="unfold").uses_winograd()
    assert not TDNN(16, 64, 3).uses_winograd() and not TDNN(32, 32, 7).uses_winograd()
    ref = TDNN(32, 32, 5, dtype=np.float64, algorithm="unfold")
    ref.load_state_dict(layer.state_dict())
    xs = rng.standard_normal((4, 50, 32)).astype(np.float32)
    dys = rng.standard_normal((4, 50, 32)).astype(np.float32)
    y32, dx32, g32 = run(layer, xs, None, dys)
    y64, dx64, g64 = run(ref, xs, None, dys)
    assert y32.dtype == np.float32 and dx32.dtype == np.float32
    assert np.abs(y32 - y64).max() < 1e-5 * np.abs(y64).max()
    assert np.abs(dx32 - dx64).max() < 1e-5 * np.abs(dx64).max()
    assert np.abs(g32["W"] - g64["W"]).max() < 1e-5 * np.abs(g64["W"]).max()


# -- PyTorch parity ---------------------------------------------------------------------------
@pytest.mark.parametrize("padding", MODES)
@pytest.mark.parametrize("stride,dilation,algorithm", [(1, 1, "unfold"), (1, 1, "winograd"), (2, 1, "auto"),
                                                       (1, 3, "auto"), (3, 2, "auto")])
def test_torch_conv1d_parity(padding, stride, dilation, algorithm):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    K, D, C, B, T = 4, 3, 5, 2, 17
    conv = torch.nn.Conv1d(D, C, K, stride=stride, dilation=dilation, dtype=torch.float64)
    torch.nn.init.normal_(conv.weight)
    layer = TDNN(D, C, K, dilation=dilation, stride=stride, padding=padding, dtype=np.float64, rng=rng,
                 algorithm=algorithm)
    layer.load_torch_state_dict(conv.state_dict())
    xs = rng.standard_normal((B, T, D))
    total = (K - 1) * dilation
    left = {"causal": total, "same": total // 2, "valid": 0}[padding]
    right = {"causal": 0, "same": total - total // 2, "valid": 0}[padding]
    xt = torch.tensor(xs, requires_grad=True)
    yt = conv(F.pad(xt.transpose(1, 2), (left, right))).transpose(1, 2)
    ys = layer.forward(xs)
    assert ys.shape == tuple(yt.shape)
    np.testing.assert_allclose(ys, yt.detach().numpy(), rtol=0, atol=1e-8)
    w = rng.standard_normal(ys.shape)
    (yt * torch.tensor(w)).sum().backward()
    dxs = layer.backward(w)
    np.testing.assert_allclose(dxs, xt.grad.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(layer.grads["W"].transpose(2, 1, 0), conv.weight.grad.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(layer.grads["b"], conv.bias.grad.numpy(), rtol=0, atol=1e-8)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_torch_same_padding_and_port_back():
    """padding='same' is torch's own padding='same' (stride 1, even kernel); weights port back by name."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    layer = TDNN(3, 2, 4, dilation=3, padding="same", dtype=np.float64, rng=rng)
    conv = torch.nn.Conv1d(3, 2, 4, dilation=3, padding="same", dtype=torch.float64)
    conv.load_state_dict({k: torch.tensor(v) for k, v in layer.torch_state_dict().items()})
    xs = rng.standard_normal((2, 9, 3))
    yt = conv(torch.tensor(xs).transpose(1, 2)).transpose(1, 2)
    np.testing.assert_allclose(layer.forward(xs), yt.detach().numpy(), rtol=0, atol=1e-8)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="full"), "unknown padding 'full'"),
    (dict(kernel_size=0), "kernel_size must be a positive integer"),
    (dict(stride=1.5), "stride must be a positive integer"),
    (dict(dilation=-1), "dilation must be a positive integer"),
    (dict(algorithm="fft"), "unknown algorithm 'fft'"),
    (dict(algorithm="winograd", stride=2), "algorithm='winograd' needs stride=1"),
])
def test_bad_options(kwargs, match):
    args = dict(input_size=2, channels_out=3, kernel_size=3) | kwargs
    with pytest.raises(UserError, match=match):
        TDNN(**args)


def test_bad_inputs_name_the_problem():
    layer = TDNN(2, 3, 3, dilation=2, padding="valid", dtype=np.float64)
    with pytest.raises(UserError, match=r"\(batch, time, 2\), got \(4, 7, 3\)"):
        layer.forward(np.zeros((4, 7, 3)))
    with pytest.raises(UserError, match="batch axis"):
        layer.forward(np.zeros((7, 2)))
    with pytest.raises(UserError, match="minimum length is 5"):
        layer.forward(np.zeros((1, 4, 2)))
    with pytest.raises(UserError, match=r"row\(s\) \[1\] have \[3\] valid steps.*at least 5"):
        layer.forward(np.zeros((2, 6, 2)), mask=lengths_mask([6, 3], 6))
    with pytest.raises(UserError, match=r"mask must have shape \(batch, time\) = \(2, 6\), got \(2,\)"):
        layer.forward(np.zeros((2, 6, 2)), mask=np.array([6, 5]))
    with pytest.raises(UserError, match="booleans or 0/1"):
        layer.forward(np.zeros((1, 6, 2)), mask=np.full((1, 6), 2))
    with pytest.raises(UserError, match=r"row\(s\) \[0\] have gaps"):
        TDNN(2, 3, 2).forward(np.zeros((1, 6, 2)), mask=np.array([[1, 1, 0, 1, 1, 1]]))
    with pytest.raises(UserError, match="not a multiple of stride=2"):
        TDNN(2, 3, 2, stride=2).forward(np.zeros((1, 6, 2)), mask=np.array([[0, 1, 1, 1, 1, 1]]))
    with pytest.raises(UserError, match="dtype"):
        layer.forward(np.array([[["a", "b"]] * 5]))


def test_backward_and_loading_errors():
    layer = TDNN(2, 3, 3, dtype=np.float64)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 4, 3)))
    layer.forward(np.zeros((1, 4, 2)))
    with pytest.raises(UserError, match=r"dys must have shape \(1, 4, 3\)"):
        layer.backward(np.zeros((1, 3, 3)))
    with pytest.raises(UserError, match=r"\(out, in, kernel\) = \(3, 2, 3\)"):
        layer.load_torch_state_dict({"weight": np.zeros((3, 3, 2)), "bias": np.zeros(3)})
    with pytest.raises(UserError, match="expected keys"):
        layer.load_torch_state_dict({"weight": np.zeros((3, 2, 3))})
    sd = layer.torch_state_dict()
    sd["weight"][0, 1, 2] = 7.0
    layer.load_torch_state_dict(sd)
    assert layer.W[2, 1, 0] == 7.0
