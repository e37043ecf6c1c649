"""Recurrent layers: float64 gradient checks, equality with hand-stepped equations, state, masks, errors."""
import numpy as np
import pytest

from rnnkit.nn.gradcheck import gradcheck
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN

KINDS = {
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
    "gru_reset_before": (GRU, {"reset_after": False}),
    "elman": (ElmanRNN, {}),
    "elman_relu": (ElmanRNN, {"nonlinearity": "relu"}),
    "jordan": (JordanRNN, {"output_size": 3}),
    "jordan_sigmoid": (JordanRNN, {"output_size": 3, "output_activation": "sigmoid"}),
}
SHAPES = [  # (num_layers, bidirectional, return_sequences)
    (1, False, True),
    (2, True, True),
    (2, False, False),
    (1, True, False),
]


def make(kind, num_layers=1, bidirectional=False, return_sequences=True, dtype=np.float64, seed=1, D=3, H=4):
    cls, kw = KINDS[kind]
    return cls(D, H, num_layers=num_layers, bidirectional=bidirectional, return_sequences=return_sequences,
               dtype=dtype, rng=seed, **kw)


def random_state(layer, B, rng):
    return tuple(rng.standard_normal(s.shape) for s in layer.initial_state(B))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"L{s[0]}-{'bi' if s[1] else 'uni'}-{'seq' if s[2] else 'last'}")
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_gradients_match_central_differences(kind, shape, masked):
    rng = np.random.default_rng(7)
    layer = make(kind, *shape)
    # T=3: over longer spans some initial-state gradients vanish (a 2-layer sigmoid Jordan net's reaches
    # ~3e-8 by T=5), and there round-off, not the gradient, decides a relative error
    B, T = 3, 3
    xs = rng.standard_normal((B, T, 3))
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], bool) if masked else None
    result = gradcheck(layer, xs, state=random_state(layer, B, rng), mask=mask, rng=rng, eps=1e-5)
    assert set(result) >= set(layer.params) | {"input", "state[0]"}
    assert result.passed(1e-6), result.failures(1e-6)


# -- the equations, written out one step at a time, independently of the fused kernels ----------------
def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference_step(kind, p, x, state):
    if kind == "lstm":
        h, c = state
        a = x @ p["W_x"] + p["b_x"] + h @ p["W_h"] + p["b_h"]
        i, f, g, o = np.split(a, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        return h, (h, c)
    if kind == "gru":
        (h,) = state
        ax = x @ p["W_x"] + p["b_x"]
        ah = h @ p["W_h"] + p["b_h"]
        xr, xz, xn = np.split(ax, 3, axis=1)
        hr, hz, hn = np.split(ah, 3, axis=1)
        r, z = sig(xr + hr), sig(xz + hz)
        n = np.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, (h,)
    if kind == "gru_reset_before":
        (h,) = state
        ax = x @ p["W_x"] + p["b_x"]
        xr, xz, xn = np.split(ax, 3, axis=1)
        hr, hz, _ = np.split(h @ p["W_h"] + p["b_h"], 3, axis=1)
        r, z = sig(xr + hr), sig(xz + hz)
        H = h.shape[1]
        n = np.tanh(xn + (r * h) @ p["W_h"][:, 2 * H:] + p["b_h"][2 * H:])
        h = (1 - z) * n + z * h
        return h, (h,)
    if kind == "elman":
        (h,) = state
        h = np.tanh(x @ p["W_x"] + p["b_x"] + h @ p["W_h"] + p["b_h"])
        return h, (h,)
    if kind == "jordan":
        (y,) = state
        h = np.tanh(x @ p["W_x"] + p["b_x"] + y @ p["W_h"] + p["b_h"])
        y = np.tanh(h @ p["W_o"] + p["b_o"])
        return y, (y,)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "elman", "jordan"])
def test_forward_equals_the_equations_stepped_by_hand(kind):
    rng = np.random.default_rng(3)
    layer = make(kind)
    B, T = 2, 6
    xs = rng.standard_normal((B, T, 3))
    state0 = random_state(layer, B, rng)
    ys, state = layer.forward(xs, state0)
    p = {k.split(".", 1)[1]: v for k, v in layer.params.items()}
    st = tuple(s[0] for s in state0)
    for t in range(T):
        y, st = reference_step(kind, p, xs[:, t], st)
        np.testing.assert_allclose(ys[:, t], y, rtol=1e-12, atol=1e-12)
    for a, b in zip(state, st):
        np.testing.assert_allclose(a[0], b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "elman", "jordan"])
def test_step_equals_forward_and_stacks(kind):
    rng = np.random.default_rng(4)
    layer = make(kind, num_layers=2)
    xs = rng.standard_normal((3, 5, 3))
    ys, state = layer.forward(xs)
    st = None
    for t in range(5):
        y, st = layer.step(xs[:, t], st)
        np.testing.assert_allclose(y, ys[:, t], rtol=1e-12, atol=1e-12)
    for a, b in zip(st, state):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # projected input: x @ W_x of the first layer, as a precomputed embedding table would give it
    y0, _ = layer.step(xs[:, 0], None)
    y1, _ = layer.step(xs[:, 0] @ layer.params["l0.W_x"], None, projected=True)
    np.testing.assert_allclose(y0, y1, rtol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman", "jordan"])
def test_backward_of_two_chunks_chained_by_state_equals_one_backward(kind):
    """BPTT split at a chunk boundary: backward of the second chunk, its dstate0 fed into the backward of the
    first, gives the same input and weight gradients as one backward over the whole sequence."""
    rng = np.random.default_rng(5)
    layer = make(kind)
    xs = rng.standard_normal((2, 4, 3))
    w = rng.standard_normal((2, 4, layer.output_size))
    layer.zero_grad()
    layer.forward(xs)
    dx_full, _ = layer.backward(w)
    g_full = {k: v.copy() for k, v in layer.grads.items()}
    # chunked: forward both chunks, then backward the second chunk and feed its dstate0 into the first
    layer.zero_grad()
    _, s1 = layer.forward(xs[:, :2])
    layer_b = make(kind)
    layer_b.load_state_dict(layer.state_dict())
    layer_b.forward(xs[:, 2:], s1)
    dx2, ds = layer_b.backward(w[:, 2:])
    dx1, _ = layer.backward(w[:, :2], ds)
    np.testing.assert_allclose(np.concatenate([dx1, dx2], axis=1), dx_full, rtol=1e-10, atol=1e-12)
    for k in g_full:
        np.testing.assert_allclose(layer.grads[k] + layer_b.grads[k], g_full[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman", "jordan"])
def test_state_carried_across_batches_equals_one_long_sequence(kind):
    rng = np.random.default_rng(6)
    layer = make(kind, num_layers=2)
    xs = rng.standard_normal((2, 8, 3))
    ys, state = layer.forward(xs)
    ya, sa = layer.forward(xs[:, :5])
    yb, sb = layer.forward(xs[:, 5:], sa)
    np.testing.assert_allclose(np.concatenate([ya, yb], axis=1), ys, rtol=1e-12)
    for a, b in zip(sb, state):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman", "jordan"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_batch_equals_each_sequence_alone(kind, bidirectional):
    rng = np.random.default_rng(8)
    layer = make(kind, num_layers=2, bidirectional=bidirectional)
    lengths = [6, 2, 4]
    xs = rng.standard_normal((3, 6, 3))
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    xs[~mask] = 99.0  # padding content must not matter
    w = rng.standard_normal((3, 6, layer.output_size))
    layer.zero_grad()
    ys, state = layer.forward(xs, mask=mask)
    dxs, _ = layer.backward(w)
    batch_grads = {k: v.copy() for k, v in layer.grads.items()}
    assert np.all(ys[~mask] == 0) and np.all(dxs[~mask] == 0)
    alone_grads = {k: np.zeros_like(v) for k, v in batch_grads.items()}
    for b, n in enumerate(lengths):
        layer.zero_grad()
        y1, s1 = layer.forward(xs[b:b + 1, :n])
        dx1, _ = layer.backward(w[b:b + 1, :n])
        np.testing.assert_allclose(ys[b, :n], y1[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dxs[b, :n], dx1[0], rtol=1e-10, atol=1e-12)
        for a, s in zip(state, s1):
            np.testing.assert_allclose(a[:, b], s[:, 0], rtol=1e-10, atol=1e-12)
        for k in alone_grads:
            alone_grads[k] += layer.grads[k]
    for k in batch_grads:
        np.testing.assert_allclose(batch_grads[k], alone_grads[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_sequences_false_gives_last_valid_step(bidirectional):
    """Forward direction: the last valid step of each row; reverse direction: step 0 (its last)."""
    rng = np.random.default_rng(9)
    seq = make("lstm", num_layers=2, bidirectional=bidirectional, return_sequences=True)
    last = make("lstm", num_layers=2, bidirectional=bidirectional, return_sequences=False)
    xs = rng.standard_normal((2, 5, 3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    ys, _ = seq.forward(xs, mask=mask)
    y_last, _ = last.forward(xs, mask=mask)
    np.testing.assert_allclose(y_last[:, :4], np.stack([ys[0, 4, :4], ys[1, 1, :4]]), rtol=1e-12)
    if bidirectional:
        np.testing.assert_allclose(y_last[:, 4:], ys[:, 0, 4:], rtol=1e-12)


def test_float32_is_default_and_forward_and_backward_keep_it():
    layer = LSTM(3, 4, rng=0)
    ys, (h, c) = layer.forward(np.ones((1, 2, 3)))  # float64 input is cast
    dxs, (dh, dc) = layer.backward(np.ones_like(ys))
    assert layer.dtype == np.float32
    assert {a.dtype for a in (ys, h, c, dxs, dh, dc, *layer.grads.values())} == {np.dtype(np.float32)}


def test_forget_bias_sets_the_f_block_only():
    layer = LSTM(3, 4, forget_bias=1.0, rng=0)
    b = layer.params["l0.b_x"] + layer.params["l0.b_h"]
    np.testing.assert_allclose(b[4:8], 1.0)
    assert not np.allclose(b[:4], 1.0)


class FixedDropout:
    """A layer whose dropout draws the same mask at every training forward (for central differences)."""

    def __init__(self, layer):
        self.layer, self.params, self.grads, self.dtype = layer, layer.params, layer.grads, layer.dtype

    def forward(self, xs, state=None, mask=None):
        self.layer.rng = np.random.default_rng(5)
        return self.layer.forward(xs, state, mask, training=True)

    def backward(self, dys, dstate=None):
        return self.layer.backward(dys, dstate)

    def zero_grad(self):
        self.layer.zero_grad()


@pytest.mark.parametrize("kind", ["lstm", "gru", "jordan"])
def test_dropout_between_layers_only_in_training_and_its_backward(kind):
    cls, kw = KINDS[kind]
    layer = cls(3, 4, num_layers=3, dropout=0.5, dtype=np.float64, rng=0, **kw)
    xs = np.random.default_rng(1).standard_normal((2, 3, 3))
    a, _ = layer.forward(xs)
    b, _ = layer.forward(xs)
    np.testing.assert_array_equal(a, b)
    c, _ = layer.forward(xs, training=True)
    assert not np.allclose(a, c)
    mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
    result = gradcheck(FixedDropout(layer), xs, mask=mask, state=layer.initial_state(2), rng=2)
    assert result.passed(), result.failures()


def test_record_dh_and_gate_activations():
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    xs = np.random.default_rng(1).standard_normal((2, 5, 3))
    layer.record_dh = True
    ys, _ = layer.forward(xs)
    gates = layer.gate_activations()
    assert set(gates) == {"l0", "l0_reverse", "l1", "l1_reverse"} and set(gates["l0"]) == {"i", "f", "g", "o"}
    assert gates["l0"]["i"].shape == (2, 5, 4) and np.all((gates["l0"]["f"] > 0) & (gates["l0"]["f"] < 1))
    dys = np.zeros_like(ys)
    dys[:, -1] = 1.0
    layer.backward(dys)
    dhs = layer.dhs_
    assert len(dhs) == 4 and dhs[2].shape == (2, 5, 4)
    # top forward layer: dL/dh_T is exactly the output gradient at the last step
    np.testing.assert_allclose(dhs[2][:, -1], dys[:, -1, :4])
    assert np.all(dhs[3][:, :-1] == 0)  # reverse direction: the last step is its first, nothing flows later


@pytest.mark.parametrize("xs, message", [
    (np.ones((5, 3)), "add the batch axis"),
    (np.ones((2, 5, 7)), "axis 2 (features) has size 7"),
    (np.ones((2, 5, 3), dtype=np.int64), "Embedding"),
    (np.ones((0, 5, 3)), "empty axis"),
])
def test_bad_input_shapes_name_the_axis(xs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LSTM(3, 4, rng=0).forward(xs)


def test_bad_state_mask_gradient_and_step_inputs_say_what_is_wrong():
    from rnnkit.errors import UserError

    layer = GRU(3, 4, num_layers=2, rng=0)
    xs = np.ones((2, 5, 3))
    cases = [
        (lambda: layer.forward(xs, state=(np.zeros((2, 3, 4)),)), r"axis 1: batch"),
        (lambda: layer.forward(xs, state=(np.zeros((2, 4)),)), r"state\[0\]\[None\]"),
        (lambda: layer.forward(xs, state=(None,)), "is None"),
        (lambda: LSTM(3, 4, rng=0).forward(xs, state=np.zeros((1, 2, 4))), r"tuple of 2 arrays \(h, c\)"),
        (lambda: layer.forward(xs, mask=np.ones((5, 2))), "mask must have shape"),
        (lambda: layer.forward(xs, mask=np.array([5, 3])), "lengths"),
        (lambda: layer.forward(xs, mask=np.full((2, 5), 0.5)), "booleans or 0/1"),
        (lambda: GRU(3, 4, bidirectional=True, rng=0).step(np.ones((1, 3))), "bidirectional"),
        (lambda: layer.step(np.ones((1, 5))), r"\(batch, 3\)"),
        (lambda: layer.step(np.ones((1, 3)), projected=True), r"\(batch, 12\)"),
        (lambda: layer.step(np.ones((1, 3), dtype=np.int64)), "Embedding"),
        (lambda: GRU(3, 4, dtype=np.int32), "float type"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message):
            call()
    ys, _ = layer.forward(xs)
    for bad, message in [(np.ones((2, 5, 1)), r"axis 2: features"), (np.ones((2, 4, 4)), r"axis 1: time"),
                         (np.ones((2, 4)), r"\(2, 5, 4\)")]:
        with pytest.raises(UserError, match=message):
            layer.backward(bad)
    with pytest.raises(UserError, match="dstate"):
        layer.backward(ys, (np.ones((2, 4)),))
    with pytest.warns(UserWarning, match="num_layers=1"):
        GRU(3, 4, dropout=0.3, rng=0)


def test_same_seed_same_weights_and_explicit_rng():
    a, b = LSTM(3, 4, rng=11), LSTM(3, 4, rng=np.random.default_rng(11))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_reset_before_gru_differs_from_reset_after_and_refuses_torch_names():
    xs = np.random.default_rng(14).standard_normal((2, 4, 3))
    after, before = make("gru"), make("gru_reset_before")
    assert set(after.params) == set(before.params)
    before.load_state_dict(after.state_dict())
    assert not np.allclose(after.forward(xs)[0], before.forward(xs)[0])
    with pytest.raises(NotImplementedError, match="reset_after=True"):
        before.torch_state_dict()


def test_float32_backward_flushes_vanishing_gradients_below_1e30_float64_keeps_them():
    """Denormals make x86 arithmetic many times slower; float32 gradients below 1e-30 are set to zero."""
    rng = np.random.default_rng(18)
    xs = rng.standard_normal((2, 60, 3))
    w = np.zeros((2, 60, 4))
    w[:, -1] = 1.0  # only the last output matters: the gradient reaching step 0 has vanished
    grads = {}
    for dtype in (np.float32, np.float64):
        layer = ElmanRNN(3, 4, dtype=dtype, rng=0)
        layer.params["l0.W_h"] *= 0.05
        layer.forward(xs.astype(dtype))
        _, (dh0,) = layer.backward(w.astype(dtype))
        grads[dtype] = (dh0, layer.grads["l0.W_x"].copy())
    assert 0 < np.abs(grads[np.float64][0]).max() < 1e-30
    assert not grads[np.float32][0].any()
    np.testing.assert_allclose(grads[np.float32][1], grads[np.float64][1], rtol=1e-4, atol=1e-7)
