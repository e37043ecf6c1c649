"""Gradient-flow diagnostics against values computed independently: the explicit Jacobian product of
the Elman equations, finite differences through ``step()`` for LSTM/GRU/Jordan, and hand counts."""
import warnings

import numpy as np
import pytest

from rnnkit import diagnostics as D
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN

B, T, DIN, H = 2, 5, 3, 4


@pytest.fixture
def xs():
    return np.random.default_rng(0).normal(size=(B, T, DIN))


def _states(layer, xs):
    """States after every step, by stepping the layer one step at a time (no backward involved)."""
    state, out = None, []
    for t in range(xs.shape[1]):
        _, state = layer.step(xs[:, t], state)
        out.append(tuple(s.copy() for s in state))
    return out


def _fd_jacobian(layer, xs, eps=1e-6):
    """J[b, t, j, i] = d s_T[j] / d h_t[i] by central differences through step(), cell c_t held fixed.

    For Jordan the carried state is y, not h, so h_t is perturbed by re-deriving y_t from it."""
    states = _states(layer, xs)
    Tn = xs.shape[1]
    S = states[-1][0].shape[-1]
    J = np.zeros((xs.shape[0], Tn, S, H))
    for t in range(Tn):
        for i in range(H):
            ends = []
            for sign in (1, -1):
                if isinstance(layer, JordanRNN):
                    # y_t = tanh(h_t W_o + b_o): rebuild h_t from the inputs, then perturb it
                    core = layer.cores[0]
                    p = core.params
                    y_prev = states[t - 1][0][0] if t else np.zeros_like(states[0][0][0])
                    h = np.tanh(xs[:, t] @ p["W_x"] + p["b_x"] + p["b_h"] + y_prev @ p["W_h"])
                    h[:, i] += sign * eps
                    state = (np.tanh(h @ p["W_o"] + p["b_o"])[None],)
                else:
                    state = tuple(s.copy() for s in states[t])
                    state[0][0, :, i] += sign * eps
                for s in range(t + 1, Tn):
                    _, state = layer.step(xs[:, s], state)
                ends.append(state[0][0])
            J[:, t, :, i] = (ends[0] - ends[1]) / (2 * eps)
    return J


def test_elman_jacobian_equals_explicit_product(xs):
    layer = ElmanRNN(DIN, H, dtype=np.float64, rng=1)
    W = layer.params["l0.W_h"] * 3  # large weights: a product far from zero and identity
    layer.params["l0.W_h"][...] = W
    (J,) = D.state_jacobians(layer, xs)
    hs, _ = layer.forward(xs)
    assert J.shape == (B, T, H, H)
    for b in range(B):
        M = np.eye(H)  # d h_T / d h_t, built from h_{s} = tanh(x W_x + h_{s-1} W_h + b)
        for t in range(T - 1, -1, -1):
            np.testing.assert_allclose(J[b, t], M, rtol=1e-10, atol=1e-12)
            M = M @ np.diag(1 - hs[b, t] ** 2) @ W.T
    norms = D.jacobian_norms(layer, xs)[0]
    want = np.mean([[np.linalg.norm(J[b, t], 2) for t in range(T)] for b in range(B)], axis=0)
    np.testing.assert_allclose(norms, want, rtol=1e-10)
    fro = D.jacobian_norms(layer, xs, ord="fro")[0]
    np.testing.assert_allclose(fro, np.linalg.norm(J, axis=(2, 3)).mean(0), rtol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: LSTM(DIN, H, dtype=np.float64, rng=2),
    lambda: GRU(DIN, H, dtype=np.float64, rng=3),
    lambda: JordanRNN(DIN, H, 3, dtype=np.float64, rng=4),
], ids=["lstm", "gru", "jordan"])
def test_gated_and_jordan_jacobians_match_finite_differences(make, xs):
    layer = make()
    (J,) = D.state_jacobians(layer, xs)
    np.testing.assert_allclose(J, _fd_jacobian(layer, xs), rtol=1e-6, atol=1e-9)


def test_two_layer_jacobian_follows_each_layers_own_recurrence(xs):
    two = ElmanRNN(DIN, H, num_layers=2, dtype=np.float64, rng=5)
    J0, J1 = D.state_jacobians(two, xs)
    # layer 0 alone is an ElmanRNN with the same weights
    one = ElmanRNN(DIN, H, dtype=np.float64, rng=6)
    for k in ("W_x", "W_h", "b_x", "b_h"):
        one.params[f"l0.{k}"][...] = two.params[f"l0.{k}"]
    np.testing.assert_allclose(J0, D.state_jacobians(one, xs)[0], rtol=1e-12)
    # layer 1 sees layer 0's outputs as fixed inputs
    hs0, _ = one.forward(xs)
    top = ElmanRNN(H, H, dtype=np.float64, rng=7)
    for k in ("W_x", "W_h", "b_x", "b_h"):
        top.params[f"l0.{k}"][...] = two.params[f"l1.{k}"]
    np.testing.assert_allclose(J1, D.state_jacobians(top, hs0)[0], rtol=1e-12)


def test_dh_norms_match_finite_differences_of_a_weighted_loss(xs):
    layer = LSTM(DIN, H, dtype=np.float64, rng=8)
    w = np.random.default_rng(1).normal(size=(B, T, H))  # L = sum(w * ys)
    got = D.dh_norms_for(layer, xs, w)[0]
    states, eps = _states(layer, xs), 1e-6

    def loss_from(t, state):
        total = np.sum(w[:, t] * state[0][0])  # y_t = h_t
        for s in range(t + 1, T):
            y, state = layer.step(xs[:, s], state)
            total += np.sum(w[:, s] * y)
        return total

    want = []
    for t in range(T):
        g = np.zeros((B, H))
        for i in range(H):
            for b in range(B):  # perturb one row's h_t[i], c_t held fixed
                p = tuple(s.copy() for s in states[t])
                m = tuple(s.copy() for s in states[t])
                p[0][0, b, i] += eps
                m[0][0, b, i] -= eps
                g[b, i] = (loss_from(t, p) - loss_from(t, m)) / (2 * eps)
        want.append(np.linalg.norm(g))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_diagnostics_leave_gradients_and_flag_untouched(xs):
    layer = GRU(DIN, H, dtype=np.float64, rng=9)
    for g in layer.grads.values():
        g[...] = 7.0
    D.state_jacobians(layer, xs)
    D.dh_norms_for(layer, xs, np.ones((B, T, H)))
    assert all((g == 7.0).all() for g in layer.grads.values())
    assert layer.record_dh is False


def test_vanishing_elman_versus_lstm():
    xs = np.random.default_rng(2).normal(size=(4, 60, 2))
    elman = ElmanRNN(2, 16, dtype=np.float64, rng=0)
    elman.params["l0.W_h"][...] *= 0.3
    lstm = LSTM(2, 16, dtype=np.float64, rng=0)
    lstm.params["l0.b_x"][16:32] = 4.0  # forget gates open
    e = D.jacobian_norms(elman, xs)[0]
    s = D.jacobian_norms(lstm, xs)[0]
    assert e[0] < 1e-6 * e[-1] and s[0] > 1e3 * e[0]
    assert D.flow_warning(D.early_late_ratio(e)).startswith("vanishing")


def test_ratio_and_warnings():
    assert D.early_late_ratio(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0]), frac=0.2) == pytest.approx(1.5 / 9.5)
    assert D.early_late_ratio(np.zeros(5)) == 0.0
    assert D.flow_warning(0.5) is None
    assert "vanishing" in D.flow_warning(1e-5)
    assert "exploding" in D.flow_warning(1e5)
    assert "exploding" in D.flow_warning(float("nan"))


def test_param_grad_norms():
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    n = D.param_grad_norms(grads)
    assert n == {"a": 5.0, "b": 12.0, "total": 13.0}


def test_gate_saturation_counts(xs):
    layer = LSTM(DIN, H, num_layers=2, dtype=np.float64, rng=10)
    layer.params["l1.b_x"][H:2 * H] = 5.0  # layer 1 forget gate pushed above 0.9
    layer.forward(xs * 3)
    acts = layer.gate_activations()
    sat = D.gate_saturation(layer)
    assert set(sat) == {"l0", "l1"} and set(sat["l0"]) == {"i", "f", "g", "o"}
    for name, gates in acts.items():
        for gate, a in gates.items():
            v = (a + 1) / 2 if gate == "g" else a
            assert sat[name][gate]["left"] == pytest.approx(np.mean(v < 0.1))
            assert sat[name][gate]["right"] == pytest.approx(np.mean(v > 0.9))
    assert sat["l1"]["f"]["right"] > 0.9
    gru = GRU(DIN, H, rng=0)
    gru.forward(xs.astype(np.float32))
    assert set(D.gate_saturation(gru)["l0"]) == {"r", "z", "n"}


def test_gradient_monitor_records_columns_and_warns_once():
    layer = ElmanRNN(2, 8, dtype=np.float64, rng=0)
    layer.params["l0.W_h"][...] *= 0.1
    mon = D.GradientMonitor(layer)
    assert layer.record_dh is True
    xs = np.random.default_rng(0).normal(size=(3, 80, 2))
    dys = np.zeros((3, 80, 8))
    dys[:, -1] = 1.0  # loss at the last step only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2):
            layer.zero_grad()
            layer.forward(xs)
            layer.backward(dys)
            row = mon.record(step)
    assert row["dh_ratio"] < 1e-3 and row["grad_norm"] > 0
    assert {"grad_norm/l0.W_h", "grad_norm/l0.W_x", "dh_first", "dh_last"} <= set(row)
    assert row["grad_norm"] == pytest.approx(D.param_grad_norms(layer.grads)["total"])
    assert len(caught) == 1 and "vanishing" in str(caught[0].message)
    assert len(mon.warnings_) == 1
    assert D.GradientMonitor(layer, every=5).record(3) == {}


@pytest.mark.filterwarnings("ignore:step")
def test_monitor_wraps_a_fit_train_step():
    from rnnkit.nn.layers import Dense
    from rnnkit.nn.losses import mse
    from rnnkit.nn.optim import Adam
    from rnnkit.train import fit

    rnn = ElmanRNN(2, 8, return_sequences=False, rng=0)
    head = Dense(8, 1, rng=1)
    model = type("M", (), {})()
    model.params = {**{f"rnn.{k}": v for k, v in rnn.params.items()}, "W": head.params["W"], "b": head.params["b"]}
    model.grads = {**{f"rnn.{k}": v for k, v in rnn.grads.items()}, "W": head.grads["W"], "b": head.grads["b"]}
    model.zero_grad = lambda: [g.fill(0) for g in model.grads.values()]
    rng = np.random.default_rng(0)

    def train_step(batch):
        xs, ys = batch
        h, _ = rnn.forward(xs, training=True)
        loss, dout = mse(head.forward(h), ys)
        rnn.backward(head.backward(dout))
        return loss

    mon = D.GradientMonitor(rnn, every=2, prefix="rnn.")
    batches = lambda step: (rng.normal(size=(4, 12, 2)).astype(np.float32), rng.normal(size=(4, 1)).astype(np.float32))
    hist = fit(model, Adam(model.params, lr=1e-3), mon.wrap(train_step), batches, steps=6, log_every=3, clip=None)
    rows = hist.train
    assert len(rows) == 2
    assert {"dh_ratio", "dh_first", "dh_last", "grad_norm/rnn.l0.W_h", "grad_norm", "loss"} <= set(rows[0])
    assert all(np.isfinite(r["dh_ratio"]) and r["dh_ratio"] > 0 for r in rows)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_jacobians_match_pytorch_autograd(kind, xs):
    torch = pytest.importorskip("torch")
    layer = (LSTM if kind == "lstm" else GRU)(DIN, H, dtype=np.float64, rng=11)
    (J,) = D.state_jacobians(layer, xs)
    sd = {k.replace("_l0", ""): torch.from_numpy(v) for k, v in layer.torch_state_dict().items()}
    cell = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(DIN, H, dtype=torch.float64)
    cell.load_state_dict(sd)
    x = torch.from_numpy(xs)
    with torch.no_grad():  # states along the sequence
        h = torch.zeros(B, H, dtype=torch.float64)
        c = torch.zeros(B, H, dtype=torch.float64)
        hs, cs = [], []
        for t in range(T):
            h, c = cell(x[:, t], (h, c)) if kind == "lstm" else (cell(x[:, t], h), c)
            hs.append(h)
            cs.append(c)

    for t in range(T):
        def h_T(h_t, t=t):
            h, c = h_t, cs[t]  # the cell state at t is held fixed
            for s in range(t + 1, T):
                h, c = cell(x[:, s], (h, c)) if kind == "lstm" else (cell(x[:, s], h), c)
            return h
        jac = torch.autograd.functional.jacobian(h_T, hs[t])  # (B, H, B, H)
        want = torch.stack([jac[b, :, b, :] for b in range(B)]).numpy()
        np.testing.assert_allclose(J[:, t], want, rtol=1e-9, atol=1e-12)
