"""Pooling over time: gradient checks, hand values, PyTorch parity, masks equal to running alone, errors."""
import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn import AttentionPool, LastPool, MaxPool, MeanPool
from rnnkit.nn.gradcheck import gradcheck

LENGTHS = [6, 4, 1, 5]


def make(kind, H=3, rng=0):
    if kind == "attention":
        return AttentionPool(H, 4, dtype=np.float64, rng=rng)
    return {"last": LastPool, "mean": MeanPool, "max": MaxPool}[kind](dtype=np.float64)


KINDS = ["last", "mean", "max", "attention"]


def lengths_mask(lengths, T):
    return np.arange(T) < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(kind, masked):
    rng = np.random.default_rng(1)
    layer = make(kind, rng=rng)
    xs = rng.standard_normal((len(LENGTHS), max(LENGTHS), 3))
    mask = lengths_mask(LENGTHS, max(LENGTHS)) if masked else None
    res = gradcheck(layer, xs, rng=rng, forward_kwargs={"mask": mask})
    assert set(res) == ({"W", "b", "v", "input"} if kind == "attention" else {"input"})
    assert res.passed(1e-6), res


def test_hand_values():
    xs = np.array([[[1.0, 5.0], [3.0, -1.0], [100.0, 100.0]],
                   [[2.0, 0.0], [4.0, 8.0], [-6.0, 1.0]]])
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(LastPool(np.float64).forward(xs, mask), [[3, -1], [-6, 1]])
    np.testing.assert_allclose(MeanPool(np.float64).forward(xs, mask), [[2, 2], [0, 3]], atol=1e-14)
    mp = MaxPool(np.float64)
    np.testing.assert_allclose(mp.forward(xs, mask), [[3, 5], [4, 8]])
    dxs = mp.backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(dxs, [[[0, 2], [1, 0], [0, 0]], [[0, 0], [3, 4], [0, 0]]])
    np.testing.assert_allclose(LastPool(np.float64).forward(xs), [[100, 100], [-6, 1]])


def test_attention_with_zero_scorer_is_the_mean_and_weights_are_kept():
    rng = np.random.default_rng(2)
    pool = AttentionPool(3, 4, dtype=np.float64, rng=rng)
    xs = rng.standard_normal((4, 6, 3))
    mask = lengths_mask(LENGTHS, 6)
    pool.v[...] = 0  # equal scores: attention is the masked mean
    np.testing.assert_allclose(pool.forward(xs, mask), MeanPool(np.float64).forward(xs, mask), atol=1e-14)
    pool.v[...] = rng.standard_normal(4)
    pool.forward(xs, mask)
    assert pool.weights_.shape == (4, 6)
    np.testing.assert_allclose(pool.weights_.sum(axis=1), 1.0)
    assert not pool.weights_[~mask].any() and (pool.weights_[mask] > 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_masked_batch_equals_each_case_alone(kind):
    rng = np.random.default_rng(3)
    layer = make(kind, rng=rng)
    T = max(LENGTHS)
    xs = rng.standard_normal((len(LENGTHS), T, 3))
    mask = lengths_mask(LENGTHS, T)
    xs[~mask] = np.nan  # padding may hold anything
    dy = rng.standard_normal((len(LENGTHS), 3))
    layer.zero_grad()
    y = layer.forward(xs, mask)
    dxs = layer.backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    assert np.isfinite(y).all() and np.isfinite(dxs).all() and not dxs[~mask].any()
    total = {k: np.zeros_like(g) for k, g in grads.items()}
    for i, L in enumerate(LENGTHS):
        layer.zero_grad()
        y1 = layer.forward(xs[i:i + 1, :L])
        dx1 = layer.backward(dy[i:i + 1])
        np.testing.assert_allclose(y[i], y1[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dxs[i, :L], dx1[0], rtol=1e-12, atol=1e-14)
        for k in total:
            total[k] += layer.grads[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-10, atol=1e-14)


def torch_pool(torch, kind, xt, mt, pool):
    """The pools written directly in torch: masked_fill / gather / softmax, autograd for the gradient."""
    m3 = mt[:, :, None]
    if kind == "last":
        idx = (mt.sum(1) - 1).long()
        return xt[torch.arange(xt.shape[0]), idx]
    if kind == "mean":
        return (xt * m3).sum(1) / mt.sum(1, keepdim=True)
    if kind == "max":
        return xt.masked_fill(~m3, float("-inf")).max(dim=1).values
    W, b, v = (torch.tensor(pool.params[k], requires_grad=True) for k in ("W", "b", "v"))
    s = torch.tanh(xt @ W + b) @ v
    a = torch.softmax(s.masked_fill(~mt, float("-inf")), dim=1)
    return (a[:, :, None] * xt).sum(1), (W, b, v), a


@pytest.mark.parametrize("kind", KINDS)
def test_torch_parity(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = make(kind, rng=rng)
    T = max(LENGTHS)
    xs = rng.standard_normal((len(LENGTHS), T, 3))
    mask = lengths_mask(LENGTHS, T)
    xt, mt = torch.tensor(xs, requires_grad=True), torch.tensor(mask)
    out = torch_pool(torch, kind, xt, mt, layer)
    yt, extra = (out[0], out[1:]) if isinstance(out, tuple) else (out, None)
    w = rng.standard_normal((len(LENGTHS), 3))
    (yt * torch.tensor(w)).sum().backward()
    layer.zero_grad()
    np.testing.assert_allclose(layer.forward(xs, mask), yt.detach().numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(layer.backward(w), xt.grad.numpy(), rtol=0, atol=1e-8)
    if extra is not None:
        (W, b, v), a = extra
        np.testing.assert_allclose(layer.weights_, a.detach().numpy(), rtol=0, atol=1e-8)
        for name, p in zip("Wbv", (W, b, v)):
            np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=0, atol=1e-8)


def test_dtypes():
    """Parameter-free pools keep a float input's dtype (a float64 model may build them with no dtype);
    AttentionPool computes in its own dtype, float32 by default."""
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((2, 4, 3))
    mask = lengths_mask([4, 2], 4)
    for layer in (LastPool(), MeanPool(), MaxPool()):
        for dtype in (np.float32, np.float64):
            y = layer.forward(xs.astype(dtype), mask=mask)
            assert y.dtype == dtype and layer.backward(np.ones((2, 3))).dtype == dtype
        assert layer.forward(np.ones((2, 4, 3), int)).dtype == np.float32
    att = AttentionPool(3, 2, rng=rng)
    assert att.forward(xs, mask=mask).dtype == np.float32 and att.backward(np.ones((2, 3))).dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_name_the_problem(kind):
    layer = make(kind)
    name = type(layer).__name__
    with pytest.raises(UserError, match=rf"{name}: row\(s\) \[1\] of the mask have no valid step"):
        layer.forward(np.zeros((2, 3, 3)), mask=lengths_mask([3, 0], 3))
    with pytest.raises(UserError, match=r"input must have shape \(batch, time, "):
        layer.forward(np.zeros((3, 3)))
    with pytest.raises(UserError, match=r"mask must have shape \(batch, time\) = \(2, 3\)"):
        layer.forward(np.zeros((2, 3, 3)), mask=np.ones((3, 2), bool))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((2, 3)))
    layer.forward(np.zeros((2, 3, 3)))
    with pytest.raises(UserError, match=r"dy must have shape \(2, 3\), got \(2, 4\)"):
        layer.backward(np.zeros((2, 4)))


def test_attention_pool_checks_sizes():
    with pytest.raises(UserError, match=r"input must have shape \(batch, time, 3\), got \(1, 2, 5\)"):
        AttentionPool(3, 2).forward(np.zeros((1, 2, 5)))
    with pytest.raises(UserError, match="attention_size must be a positive integer"):
        AttentionPool(3, 0)
