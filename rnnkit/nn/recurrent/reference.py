"""The reference cells: Elman, Jordan, LSTM and GRU (both reset forms) as plain NumPy, one time step each.

Start reading the engine here. ``forward(x, state) -> (y, new_state, cache)`` and ``backward(dy, dstate,
cache) -> (dx, dstate_prev)``; each group of backward lines names the forward line it inverts. Their time
loop (BPTT, masks) is :mod:`rnnkit.nn.recurrent.bptt`; the fast kernels are proven equal to these.
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.activations import sigmoid  # 1 / (1 + exp(-a)), as 0.5 (1 + tanh(a / 2)): no overflow
from rnnkit.nn.base import Layer


class Cell(Layer):
    """One step of a recurrent cell, batch-first: x (B, D), every state array (B, S).

    Parameters in PyTorch's layout transposed (``x @ W_x`` is the projection), G gate blocks of H columns:
    ``W_x`` (D, G*H), ``W_h`` (R, G*H), ``b_x`` and ``b_h`` (G*H,), R = H (the output size for Jordan).
    ``backward`` adds the step's parameter gradients into ``grads`` (``+=``) and returns (dx, dstate_prev);
    ``dy`` is the gradient of the step's output y, ``dstate`` that of its new state (from step t+1).
    """

    gates: tuple[str, ...] = ("h",)
    n_state = 1
    output_is_hidden = True  # y is h, so dL/dh = dy + dstate[0] (Jordan: False; it keeps its dL/dh in dh_)

    def __init__(self, input_size, hidden_size, *, feedback_size=None, dtype=np.float32, rng):
        super().__init__(dtype)
        G, H = len(self.gates), hidden_size
        R = hidden_size if feedback_size is None else feedback_size
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / np.sqrt(H)  # PyTorch's default U(-1/sqrt(H), 1/sqrt(H)), drawn in the fast cores' order
        self.add_param("W_x", rng.uniform(-bound, bound, (input_size, G * H)))
        self.add_param("W_h", rng.uniform(-bound, bound, (R, G * H)))
        self.add_param("b_x", rng.uniform(-bound, bound, G * H))
        self.add_param("b_h", rng.uniform(-bound, bound, G * H))

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def project(self, x, xw=None):
        """x W_x + b_x, (B, G*H); ``xw`` given means x W_x is already known (a projected embedding row)."""
        return (x @ self.params["W_x"] if xw is None else xw) + self.params["b_x"]

    def input_grads(self, x, da_x):
        """Inverse of  a_x = x W_x + b_x:  dW_x and db_x, then dx. With x None the step was given
        xw = x W_x (a projected input): its gradient is da_x itself, and there is no dW_x."""
        g = self.grads
        g["b_x"] += da_x.sum(axis=0)
        if x is None:
            return da_x
        g["W_x"] += x.T @ da_x
        return da_x @ self.params["W_x"].T

    def add_grads(self, x, h, da_x, da_h):
        """Inverse of  a_x = x W_x + b_x  and  a_h = h W_h + b_h:  parameter gradients, then (dx, dh)."""
        g = self.grads
        g["W_h"] += h.T @ da_h
        g["b_h"] += da_h.sum(axis=0)
        return self.input_grads(x, da_x), da_h @ self.params["W_h"].T

    def gate_values(self, cache) -> dict:
        """The gate activations kept in a step's cache, name -> (B, H); none for ungated cells."""
        return {}


class ElmanCell(Cell):
    """Elman RNN (PyTorch's ``nn.RNN``):  h' = act(x W_x + b_x + h W_h + b_h),  act = tanh or relu.

    ``W_x`` (D, H), ``W_h`` (H, H), ``b_x``, ``b_h`` (H,). State (h,); the output is h'.
    """

    def __init__(self, input_size, hidden_size, *, nonlinearity="tanh", dtype=np.float32, rng):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        self.nonlinearity = nonlinearity

    def forward(self, x, state, xw=None):
        (h,) = state
        a = self.project(x, xw) + h @ self.params["W_h"] + self.params["b_h"]   # (B, H)
        h_new = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0)
        return h_new, (h_new,), (x, h, h_new)

    def backward(self, dy, dstate, cache):
        x, h, h_new = cache
        dh_new = dy + dstate[0]                     # h' is both the output and the next state
        if self.nonlinearity == "tanh":             # h_new = act(a)
            da = dh_new * (1 - h_new ** 2)
        else:
            da = dh_new * (h_new > 0)
        dx, dh = self.add_grads(x, h, da, da)       # a = x W_x + b_x + h W_h + b_h
        return dx, (dh,)


class JordanCell(Cell):
    """Jordan RNN: the previous *output* is fed back (Jordan 1986).

        h = tanh(x W_x + b_x + y W_h + b_h)      hidden, (B, H)
        y' = out(h W_o + b_o)                    output and next state, (B, O)

    ``W_x`` (D, H), ``W_h`` (O, H), ``b_x``, ``b_h`` (H,), ``W_o`` (H, O), ``b_o`` (O,); ``out`` is tanh,
    sigmoid or identity. State (y,). After backward, ``dh_`` holds dL/dh of that step (for ``record_dh``).
    """

    output_is_hidden = False

    def __init__(self, input_size, hidden_size, *, output_size, output_activation="tanh", dtype=np.float32,
                 rng):
        if output_activation not in ("tanh", "sigmoid", "identity"):
            raise ValueError(f"output_activation must be one of ('tanh', 'sigmoid', 'identity'), got "
                             f"{output_activation!r}")
        super().__init__(input_size, hidden_size, feedback_size=output_size, dtype=dtype, rng=rng)
        bound = 1.0 / np.sqrt(hidden_size)
        self.add_param("W_o", rng.uniform(-bound, bound, (hidden_size, output_size)))
        self.add_param("b_o", rng.uniform(-bound, bound, output_size))
        self.output_activation = output_activation

    @property
    def output_size(self) -> int:
        return self.params["W_o"].shape[1]

    def forward(self, x, state, xw=None):
        (y,) = state
        p = self.params
        h = np.tanh(self.project(x, xw) + y @ p["W_h"] + p["b_h"])    # (B, H)
        o = h @ p["W_o"] + p["b_o"]                                     # (B, O)
        y_new = {"tanh": np.tanh, "sigmoid": sigmoid, "identity": np.positive}[self.output_activation](o)
        return y_new, (y_new,), (x, y, h, y_new)

    def backward(self, dy, dstate, cache):
        x, y, h, y_new = cache
        p, g = self.params, self.grads
        dy_new = dy + dstate[0]                         # y' is both the output and the next state
        if self.output_activation == "tanh":           # y' = out(o)
            do = dy_new * (1 - y_new ** 2)
        elif self.output_activation == "sigmoid":
            do = dy_new * y_new * (1 - y_new)
        else:
            do = dy_new
        g["W_o"] += h.T @ do                            # o = h W_o + b_o
        g["b_o"] += do.sum(axis=0)
        dh = self.dh_ = do @ p["W_o"].T
        da = dh * (1 - h ** 2)                          # h = tanh(a)
        dx, dy_prev = self.add_grads(x, y, da, da)      # a = x W_x + b_x + y W_h + b_h
        return dx, (dy_prev,)


class LSTMCell(Cell):
    """LSTM with a forget gate (PyTorch's equations). Gate order i, f, g, o in blocks of H columns:

        a = x W_x + b_x + h W_h + b_h                    (B, 4H)
        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
        c' = f * c + i * g
        h' = o * tanh(c')

    ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b_x``, ``b_h`` (4H,). State (h, c); the output is h'. The forget
    gate's bias starts at ``forget_bias`` (in ``b_x``, with ``b_h``'s block at 0); None keeps PyTorch's init.
    """

    gates = ("i", "f", "g", "o")
    n_state = 2

    def __init__(self, input_size, hidden_size, *, forget_bias=1.0, dtype=np.float32, rng):
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        H = hidden_size
        if forget_bias is not None:
            self.params["b_x"][H:2 * H] = forget_bias
            self.params["b_h"][H:2 * H] = 0.0

    def forward(self, x, state, xw=None):
        h, c = state
        H = self.hidden_size
        a = self.project(x, xw) + h @ self.params["W_h"] + self.params["b_h"]   # (B, 4H)
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        return h_new, (h_new, c_new), (x, h, c, i, f, g, o, tanh_c)

    def backward(self, dy, dstate, cache):
        x, h, c, i, f, g, o, tanh_c = cache
        dh_new = dy + dstate[0]                         # h' is both the output and the next state
        do = dh_new * tanh_c                            # h' = o * tanh(c')
        dc_new = dstate[1] + dh_new * o * (1 - tanh_c ** 2)   # (c' also goes on to the next step)
        df, dc = dc_new * c, dc_new * f                 # c' = f * c + i * g
        di, dg = dc_new * g, dc_new * i
        da = np.concatenate([di * i * (1 - i),          # i = sigmoid(a_i)
                             df * f * (1 - f),          # f = sigmoid(a_f)
                             dg * (1 - g ** 2),         # g = tanh(a_g)
                             do * o * (1 - o)], axis=1)  # o = sigmoid(a_o)
        dx, dh = self.add_grads(x, h, da, da)           # a = x W_x + b_x + h W_h + b_h
        return dx, (dh, dc)

    def gate_values(self, cache):
        return dict(zip(self.gates, cache[3:7]))


class GRUCell(Cell):
    """GRU in the PyTorch/cuDNN form, the reset gate applied *after* the recurrent product. Gates r, z, n:

        a_x = x W_x + b_x,   a_h = h W_h + b_h            (B, 3H) each
        r = sigmoid(a_xr + a_hr),   z = sigmoid(a_xz + a_hz)
        n = tanh(a_xn + r * a_hn)
        h' = (1 - z) * n + z * h

    ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b_x``, ``b_h`` (3H,). State (h,); the output is h'.
    """

    gates = ("r", "z", "n")

    def forward(self, x, state, xw=None):
        (h,) = state
        H = self.hidden_size
        a_x = self.project(x, xw)                                    # (B, 3H)
        a_h = h @ self.params["W_h"] + self.params["b_h"]            # (B, 3H)
        r = sigmoid(a_x[:, :H] + a_h[:, :H])
        z = sigmoid(a_x[:, H:2 * H] + a_h[:, H:2 * H])
        a_hn = a_h[:, 2 * H:]
        n = np.tanh(a_x[:, 2 * H:] + r * a_hn)
        h_new = (1 - z) * n + z * h
        return h_new, (h_new,), (x, h, r, z, n, a_hn)

    def backward(self, dy, dstate, cache):
        x, h, r, z, n, a_hn = cache
        dh_new = dy + dstate[0]                     # h' is both the output and the next state
        dn = dh_new * (1 - z)                       # h' = (1 - z) * n + z * h
        dz = dh_new * (h - n)
        dh_direct = dh_new * z
        da_n = dn * (1 - n ** 2)                    # n = tanh(a_xn + r * a_hn)
        dr, da_hn = da_n * a_hn, da_n * r
        da_r = dr * r * (1 - r)                     # r = sigmoid(a_xr + a_hr)
        da_z = dz * z * (1 - z)                     # z = sigmoid(a_xz + a_hz)
        dx, dh = self.add_grads(x, h,               # a_x = x W_x + b_x,  a_h = h W_h + b_h
                                np.concatenate([da_r, da_z, da_n], axis=1),
                                np.concatenate([da_r, da_z, da_hn], axis=1))
        return dx, (dh + dh_direct,)

    def gate_values(self, cache):
        return dict(zip(self.gates, cache[2:5]))


class GRUResetBeforeCell(Cell):
    """GRU as in Cho et al. (2014), the reset gate applied *before* the recurrent product. Gates r, z, n:

        a_x = x W_x + b_x                                  (B, 3H)
        r = sigmoid(a_xr + h W_hr + b_hr),   z = sigmoid(a_xz + h W_hz + b_hz)
        n = tanh(a_xn + (r * h) W_hn + b_hn)
        h' = (1 - z) * n + z * h

    Same parameters and shapes as :class:`GRUCell` (W_hr, W_hz, W_hn are the column blocks of ``W_h``).
    """

    gates = ("r", "z", "n")

    def forward(self, x, state, xw=None):
        (h,) = state
        H = self.hidden_size
        W_h, b_h = self.params["W_h"], self.params["b_h"]
        a_x = self.project(x, xw)                                          # (B, 3H)
        a_rz = a_x[:, :2 * H] + h @ W_h[:, :2 * H] + b_h[:2 * H]           # (B, 2H)
        r, z = sigmoid(a_rz[:, :H]), sigmoid(a_rz[:, H:])
        rh = r * h
        n = np.tanh(a_x[:, 2 * H:] + rh @ W_h[:, 2 * H:] + b_h[2 * H:])
        h_new = (1 - z) * n + z * h
        return h_new, (h_new,), (x, h, r, z, n, rh)

    def backward(self, dy, dstate, cache):
        x, h, r, z, n, rh = cache
        H = self.hidden_size
        p, g = self.params, self.grads
        dh_new = dy + dstate[0]                     # h' is both the output and the next state
        dn = dh_new * (1 - z)                       # h' = (1 - z) * n + z * h
        dz = dh_new * (h - n)
        dh = dh_new * z
        da_n = dn * (1 - n ** 2)                    # n = tanh(a_xn + (r * h) W_hn + b_hn)
        g["W_h"][:, 2 * H:] += rh.T @ da_n
        g["b_h"][2 * H:] += da_n.sum(axis=0)
        drh = da_n @ p["W_h"][:, 2 * H:].T
        dr = drh * h                                # rh = r * h
        dh += drh * r
        da_rz = np.concatenate([dr * r * (1 - r),   # r = sigmoid(a_rz[:, :H])
                                dz * z * (1 - z)],  # z = sigmoid(a_rz[:, H:])
                               axis=1)
        g["W_h"][:, :2 * H] += h.T @ da_rz          # a_rz = a_x[:, :2H] + h W_h[:, :2H] + b_h[:2H]
        g["b_h"][:2 * H] += da_rz.sum(axis=0)
        dh += da_rz @ p["W_h"][:, :2 * H].T
        da_x = np.concatenate([da_rz, da_n], axis=1)
        return self.input_grads(x, da_x), (dh,)     # a_x = x W_x + b_x

    def gate_values(self, cache):
        return dict(zip(self.gates, cache[2:5]))
