"""The gradient checker itself: it passes correct layers, catches wrong ones, handles the recurrent form."""
import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer
from rnnkit.nn.gradcheck import check_loss, gradcheck, numeric_grad, relative_error
from rnnkit.nn.layers import Dense


class TinyRNN(Layer):
    """h_t = tanh(x_t W + h_{t-1} U): a minimal recurrent layer in the (ys, state) form, for the checker."""

    def __init__(self, D, H, rng, bug=None):
        super().__init__(np.float64)
        self.W = self.add_param("W", rng.standard_normal((D, H)) * 0.5)
        self.U = self.add_param("U", rng.standard_normal((H, H)) * 0.5)
        self.bug = bug

    def forward(self, xs, state=None, mask=None, training=False):
        B, T, _ = xs.shape
        h = np.zeros((B, self.U.shape[0])) if state is None else state[0]
        self.xs, self.h0, hs = xs, h, []
        for t in range(T):
            h = np.tanh(xs[:, t] @ self.W + h @ self.U)
            hs.append(h)
        self.hs = np.stack(hs, axis=1)
        return self.hs, (h,)

    def backward(self, dys, dstate=None):
        B, T, H = self.hs.shape
        dxs = np.zeros_like(self.xs)
        dh = np.zeros((B, H)) if dstate is None or self.bug == "ignore_dstate" else dstate[0].copy()
        for t in reversed(range(T)):
            dh = dh + dys[:, t]
            da = dh * (1 - self.hs[:, t] ** 2)
            h_prev = self.hs[:, t - 1] if t else self.h0
            self.grads["W"] += self.xs[:, t].T @ da
            self.grads["U"] += h_prev.T @ da
            dxs[:, t] = da @ self.W.T
            dh = da @ self.U.T
        return dxs, (dh,)


def test_recurrent_form_checks_params_input_and_state():
    rng = np.random.default_rng(0)
    layer = TinyRNN(3, 4, rng)
    xs, h0 = rng.standard_normal((2, 3, 3)), rng.standard_normal((1, 2, 4))[0]
    res = gradcheck(layer, xs, state=(h0,), rng=rng)
    assert set(res) == {"W", "U", "input", "state[0]"}
    assert res.passed(1e-6), res


def test_catches_ignored_final_state_gradient():
    """The random weighting covers the final state too, so dropping dstate is caught."""
    rng = np.random.default_rng(1)
    layer = TinyRNN(3, 4, rng, bug="ignore_dstate")
    res = gradcheck(layer, rng.standard_normal((2, 3, 3)), state=(rng.standard_normal((2, 4)),), rng=rng)
    assert not res.passed(1e-6)
    assert {"W", "U"} <= set(res.failures())


class ScaledWrong(Dense):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] *= 1.001  # a 0.1% error must not pass
        return dx


def test_catches_small_parameter_error():
    rng = np.random.default_rng(2)
    res = gradcheck(ScaledWrong(3, 2, dtype=np.float64, rng=rng), rng.standard_normal((4, 3)), rng=rng)
    assert res.failures(1e-6).keys() == {"b"}
    assert res["W"] < 1e-8 and res.max_error == res["b"]


def test_max_checks_samples_elements():
    rng = np.random.default_rng(3)
    res = gradcheck(Dense(20, 10, dtype=np.float64, rng=rng), rng.standard_normal((3, 20)), rng=rng, max_checks=15)
    assert res.passed(1e-6), res


def test_refuses_float32_layer():
    with pytest.raises(UserError, match="float64"):
        gradcheck(Dense(2, 2), np.zeros((1, 2)))


def test_relative_error_definition():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert relative_error([1.0], [-1.0]) == pytest.approx(1.0)
    assert relative_error([3.0, 4.0], [3.0, 4.0 + 1e-5]) == pytest.approx(1e-5 / 10, rel=1e-3)


def test_numeric_grad_and_check_loss():
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(numeric_grad(lambda: float(np.sum(x ** 3)), x), 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 0.5])  # restored

    def wrong(a):
        return float(np.sum(a ** 2)), a  # true gradient is 2a
    assert not check_loss(wrong, (x,)).passed()
    assert check_loss(lambda a: (float(np.sum(a ** 2)), 2 * a), (x,)).passed()
