"""Feed-forward layers: gradient checks (float64), shapes, dtypes, errors, Embedding accumulation, Dropout."""
import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn import activations as act
from rnnkit.nn.gradcheck import gradcheck
from rnnkit.nn.layers import Dense, Dropout, Embedding, ReLU, Sequential, Sigmoid, Softmax, Tanh

F64 = np.float64


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3), (3,)])
def test_dense_gradcheck_any_leading_shape(shape):
    rng = np.random.default_rng(0)
    layer = Dense(3, 5, dtype=F64, rng=rng)
    res = gradcheck(layer, rng.standard_normal(shape), rng=rng)
    assert set(res) == {"W", "b", "input"}
    assert res.passed(1e-6), res


def test_dense_matches_formula_and_keeps_float32():
    rng = np.random.default_rng(1)
    layer = Dense(4, 2, rng=rng)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (3, 5, 2)
    np.testing.assert_allclose(y, x @ layer.W + layer.b, rtol=1e-6)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert layer.grads["W"].dtype == np.float32


def test_dense_accumulates_grads():
    rng = np.random.default_rng(2)
    layer = Dense(3, 2, dtype=F64, rng=rng)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(dy)
    once = layer.grads["W"].copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.grads["W"], 2 * once)


def test_dense_bad_shape_names_axis():
    layer = Dense(3, 2)
    with pytest.raises(UserError, match="last axis.*in_features=3"):
        layer.forward(np.zeros((4, 5), np.float32))
    with pytest.raises(UserError, match="dtype"):
        layer.forward(np.array(["a", "b", "c"]))


@pytest.mark.parametrize("V", [7, 300])  # both scatter paths (one-hot GEMM and add.at)
def test_embedding_lookup_and_repeated_indices_accumulate(V):
    rng = np.random.default_rng(3)
    emb = Embedding(V, 4, dtype=F64, rng=rng)
    idx = np.array([[1, 2, 1], [6, 1, 0]])
    y = emb.forward(idx)
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y[0, 0], emb.W[1])
    dy = rng.standard_normal(y.shape)
    assert emb.backward(dy) is None
    expected = np.zeros_like(emb.W)
    for (i, j), k in np.ndenumerate(idx):
        expected[k] += dy[i, j]
    np.testing.assert_allclose(emb.grads["W"], expected, atol=1e-12)


def test_embedding_gradcheck():
    rng = np.random.default_rng(4)
    emb = Embedding(5, 3, dtype=F64, rng=rng)
    res = gradcheck(emb, rng.integers(0, 5, size=(2, 4)), rng=rng)
    assert set(res) == {"W"} and res.passed(1e-6), res


def test_embedding_errors():
    emb = Embedding(5, 3)
    with pytest.raises(UserError, match="integer"):
        emb.forward(np.array([0.0, 1.0]))
    with pytest.raises(UserError, match=r"out of range \[0, 5\)"):
        emb.forward(np.array([0, 5]))


@pytest.mark.parametrize("cls", [Sigmoid, Tanh, ReLU, Softmax])
def test_activation_layers_gradcheck(cls):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5))
    if cls is ReLU:
        x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    res = gradcheck(cls(dtype=F64), x, rng=rng)
    assert res.passed(1e-6), res


def test_sequential_shares_params_and_gradchecks():
    rng = np.random.default_rng(6)
    d0, d1 = Dense(3, 4, dtype=F64, rng=rng), Dense(4, 2, dtype=F64, rng=rng)
    net = Sequential(d0, Tanh(), d1, Sigmoid())
    assert set(net.params) == {"0.W", "0.b", "2.W", "2.b"}
    assert net.params["0.W"] is d0.W and net.grads["2.b"] is d1.grads["b"]
    res = gradcheck(net, rng.standard_normal((5, 3)), rng=rng)
    assert res.passed(1e-6), res
    assert len(net) == 4 and net[2] is d1


def test_sequential_rejects_mixed_dtypes():
    with pytest.raises(UserError, match="dtype"):
        Sequential(Dense(2, 2, dtype=np.float32), Dense(2, 2, dtype=F64))


def test_dropout_inverted_and_identity_at_eval():
    rng = np.random.default_rng(7)
    drop = Dropout(0.3, rng=np.random.default_rng(0))
    x = rng.standard_normal((200, 50)).astype(np.float32)
    assert drop.forward(x, training=False) is x
    y = drop.forward(x, training=True)
    assert y.dtype == np.float32
    kept = y != 0
    assert 0.25 < 1 - kept.mean() < 0.35
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    dy = np.ones_like(x)
    np.testing.assert_allclose(drop.backward(dy), kept / 0.7, rtol=1e-6)
    # same seed, same mask
    again = Dropout(0.3, rng=np.random.default_rng(0)).forward(x, training=True)
    np.testing.assert_array_equal(again, y)
    with pytest.raises(UserError):
        Dropout(1.0)


def test_activation_functions_stable():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    s = act.sigmoid(x)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-np.clip(x, -700, 700))), rtol=1e-12, atol=1e-15)  # tanh form: absolute accuracy
    z = np.array([[1000.0, 1001.0, 999.0]])
    p = act.softmax(z)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(act.log_softmax(z), np.log(act.softmax(z)), rtol=1e-12)
    np.testing.assert_allclose(act.log_softmax(np.array([0.0, np.log(3.0)])), np.log([0.25, 0.75]))
    assert act.sigmoid(np.zeros(3, np.float32)).dtype == np.float32


def test_initialisers():
    from rnnkit.nn import init

    rng = np.random.default_rng(8)
    w = init.xavier_uniform((30, 50), rng)
    assert w.dtype == np.float32 and np.abs(w).max() <= np.sqrt(6 / 80)
    assert init.kaiming_normal((400, 300), rng, F64).std() == pytest.approx(np.sqrt(2 / 400), rel=0.05)
    assert np.abs(init.kaiming_uniform((40, 30), rng)).max() <= np.sqrt(2) * np.sqrt(3 / 40)
    for shape in [(6, 6), (4, 9), (9, 4)]:
        q = init.orthogonal(shape, rng, F64)
        small = min(shape)
        gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    u = init.uniform_rnn((8, 16), 16, rng)
    assert np.abs(u).max() <= 0.25 and u.dtype == np.float32
    a = init.orthogonal((5, 5), np.random.default_rng(0))
    np.testing.assert_array_equal(a, init.orthogonal((5, 5), np.random.default_rng(0)))
    with pytest.raises(UserError, match="init"):
        Dense(2, 2, init="zeros")
    assert np.abs(Dense(20, 5, init="xavier", rng=0).W).max() <= np.sqrt(6 / 25)
