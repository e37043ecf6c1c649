"""Recurrent layers against PyTorch 2.13: golden values (no torch needed) and full parity (torch needed).

Parity: weights ported from torch with ``load_torch_state_dict`` (and back with ``torch_state_dict``), then
outputs, final states and every gradient (parameters, inputs, initial states) compared.
"""
import numpy as np
import pytest

from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN

CLASSES = {"lstm": LSTM, "gru": GRU, "elman": ElmanRNN}
TORCH_NAMES = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN"}


def fixed(shape, offset):
    """A fixed, non-constant pattern: a swapped gate block or a transposed matrix changes the result."""
    n = int(np.prod(shape))
    return 0.3 * np.sin(0.7 * np.arange(n) + offset).reshape(shape)


# Computed once with torch 2.13 (float64) from the same fixed weights, input and output weighting:
# loss = sum(w * ys); y at the last step of row 0, row 0 of d loss / d weight_hh_l0, d loss / d xs[1, 0].
GOLDEN = {
    "lstm": ([-0.068779119359, 0.072614850066, 0.201206291609, 0.099175811384],
             [0.001138708216, 0.015673224909, 0.014236816504, 0.022867346677],
             [0.138873926764, 0.063849141589, -0.041204892547]),
    "gru": ([0.006678061549, 0.168832211791, 0.43763526177, 0.31953975961],
            [0.003041414311, 0.006152302253, 0.005360821757, 0.007781752281],
            [0.219750417824, 0.120033378589, -0.03613723417]),
    "elman": ([0.149853273898, 0.299394685218, 0.761241326639, -0.312677646761],
              [-0.87656604362, -0.785794613869, -0.381473755564, -0.593412331497],
              [-0.042113176097, -0.181512564568, -0.235543757711]),
}


@pytest.mark.parametrize("kind", GOLDEN)
def test_golden_values_from_a_fixed_initialisation(kind):
    layer = CLASSES[kind](3, 4, dtype=np.float64, rng=0)
    names = sorted(layer.torch_state_dict())  # bias_hh, bias_ih, weight_hh, weight_ih: offsets 0..3
    state = {name: fixed(layer.torch_state_dict()[name].shape, j) for j, name in enumerate(names)}
    layer.load_torch_state_dict(state)
    xs = np.cos(0.5 * np.arange(24)).reshape(2, 4, 3)
    w = np.sin(1.3 * np.arange(32)).reshape(2, 4, 4)
    ys, _ = layer.forward(xs)
    dxs, _ = layer.backward(w)
    y_last, dW_hh_row0, dx_first = GOLDEN[kind]
    np.testing.assert_allclose(ys[0, -1], y_last, atol=1e-11)
    np.testing.assert_allclose(layer.torch_state_dict(grads=True)["weight_hh_l0"][0], dW_hh_row0, atol=1e-11)
    np.testing.assert_allclose(dxs[1, 0], dx_first, atol=1e-11)


# -- parity with torch ---------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def run_torch(module, xs, state, w, w_state, mask_lengths=None):
    torch = _torch()
    x = torch.tensor(xs, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    ys, final = module(x, st if len(st) == 2 else st[0])
    final = final if isinstance(final, tuple) else (final,)
    loss = (torch.tensor(w) * ys).sum() + sum((torch.tensor(ws) * f).sum() for ws, f in zip(w_state, final))
    module.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return ys.detach().numpy(), [f.detach().numpy() for f in final], x.grad.numpy(), [s.grad.numpy() for s in st], grads


CASES = [(kind, L, bi) for kind in CLASSES for L in (1, 2) for bi in (False, True)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-8), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("kind, num_layers, bidirectional", CASES)
def test_parity_with_torch(kind, num_layers, bidirectional, dtype, tol):
    check_parity(kind, num_layers, bidirectional, dtype, tol)


@pytest.mark.parametrize("kind, options", [("lstm", {}), ("gru", {}), ("elman", {"nonlinearity": "relu"})])
def test_parity_with_torch_through_the_background_chunks(kind, options, monkeypatch):
    """The same comparison after a training forward: for Elman (with ReLU) the input projection, backward
    preparation and weight gradients cut into 2-step chunks on the background thread; LSTM and GRU run
    their team engine (whose team sizes are compared in test_recurrent_team)."""
    import rnnkit.nn.recurrent.fast.rowmajor as core

    monkeypatch.setattr(core, "CHUNK_ROWS", 6)
    check_parity(kind, 2, True, np.float64, 1e-8, training=True, **options)


def check_parity(kind, num_layers, bidirectional, dtype, tol, training=False, threads=None, **options):
    torch = _torch()
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    module = getattr(torch.nn, TORCH_NAMES[kind])(5, 6, num_layers=num_layers, bidirectional=bidirectional,
                                                  batch_first=True, **options).to(tdtype)
    layer = CLASSES[kind](5, 6, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, rng=0,
                          threads=threads, **options)
    layer.load_torch_state_dict(module.state_dict())
    rng = np.random.default_rng(1)
    B, T = 3, 7
    xs = rng.standard_normal((B, T, 5)).astype(dtype)
    state = tuple(rng.standard_normal(s.shape).astype(dtype) for s in layer.initial_state(B))
    ys, final = layer.forward(xs, state, training=training)
    w = rng.standard_normal(ys.shape).astype(dtype)
    w_state = tuple(rng.standard_normal(s.shape).astype(dtype) for s in final)
    layer.zero_grad()
    dxs, dstate0 = layer.backward(w, w_state)
    t_ys, t_final, t_dx, t_dstate, t_grads = run_torch(module, xs, state, w, w_state)

    def close(a, b, what):
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a - b).max()) / scale
        assert err <= tol, f"{what}: max error {err:.2e} > {tol:.0e}"

    close(ys, t_ys, "outputs")
    for j in range(len(final)):
        close(final[j], t_final[j], f"final state[{j}]")
        close(dstate0[j], t_dstate[j], f"d initial state[{j}]")
    close(dxs, t_dx, "d inputs")
    ours = layer.torch_state_dict(grads=True)
    assert set(ours) == set(t_grads)
    for name in t_grads:
        close(ours[name], t_grads[name], f"d {name}")


@pytest.mark.parametrize("kind", CLASSES)
def test_weights_round_trip_both_ways_exactly(kind):
    torch = _torch()
    layer = CLASSES[kind](4, 5, num_layers=2, bidirectional=True, dtype=np.float64, rng=3)
    module = getattr(torch.nn, TORCH_NAMES[kind])(4, 5, num_layers=2, bidirectional=True,
                                                  batch_first=True).double()
    module.load_state_dict({k: torch.tensor(v) for k, v in layer.torch_state_dict().items()})
    xs = np.random.default_rng(0).standard_normal((2, 3, 4))
    ys, _ = layer.forward(xs)
    np.testing.assert_array_equal(ys.shape, (2, 3, 10))
    np.testing.assert_allclose(module(torch.tensor(xs))[0].detach().numpy(), ys, rtol=1e-12, atol=1e-13)
    back = CLASSES[kind](4, 5, num_layers=2, bidirectional=True, dtype=np.float64, rng=99)
    back.load_torch_state_dict(module.state_dict())
    for k in layer.params:
        np.testing.assert_array_equal(back.params[k], layer.params[k])


@pytest.mark.parametrize("kind", CLASSES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_batch_matches_torch_running_each_sequence_alone(kind, bidirectional):
    torch = _torch()
    torch.manual_seed(1)
    module = getattr(torch.nn, TORCH_NAMES[kind])(3, 4, num_layers=2, bidirectional=bidirectional,
                                                  batch_first=True).double()
    layer = CLASSES[kind](3, 4, num_layers=2, bidirectional=bidirectional, dtype=np.float64, rng=0)
    layer.load_torch_state_dict(module.state_dict())
    rng = np.random.default_rng(2)
    lengths = [5, 2, 3]
    xs = rng.standard_normal((3, 5, 3))
    mask = np.arange(5)[None] < np.array(lengths)[:, None]
    w = rng.standard_normal((3, 5, layer.output_size)) * mask[..., None]
    layer.zero_grad()
    ys, final = layer.forward(xs, mask=mask)
    dxs, _ = layer.backward(w)
    grads = {k: np.zeros_like(v) for k, v in layer.torch_state_dict(grads=True).items()}
    for b, n in enumerate(lengths):
        x = torch.tensor(xs[b:b + 1, :n], requires_grad=True)
        y, h = module(x)
        module.zero_grad()
        (torch.tensor(w[b:b + 1, :n]) * y).sum().backward()
        np.testing.assert_allclose(ys[b, :n], y[0].detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dxs[b, :n], x.grad[0].numpy(), rtol=1e-10, atol=1e-12)
        h = h[0] if isinstance(h, tuple) else h
        np.testing.assert_allclose(final[0][:, b], h[:, 0].detach().numpy(), rtol=1e-10, atol=1e-12)
        for k, p in module.named_parameters():
            grads[k] += p.grad.numpy()
    for k, g in layer.torch_state_dict(grads=True).items():
        np.testing.assert_allclose(g, grads[k], rtol=1e-9, atol=1e-12)
