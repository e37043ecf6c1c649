"""The forecasting networks: a recurrent encoder (LSTM, GRU, Elman, Jordan) or a windowed feed-forward
network, and a Gaussian head giving a mean and a log standard deviation for each step ahead.

Shapes: inputs ``xs`` (B, L, D) over the lookback window, future covariates ``fut`` (B, K, F) over the K
output steps (K = horizon for the direct strategy, 1 for recursive), outputs ``mu`` and ``log_sigma``
(B, K). A linear "highway" from the last ``highway`` values of the target to ``mu`` (as in LSTNet) lets the
network learn the linear part at once (with one season plus one step it can express both the naive and the
seasonal-naive forecast exactly) and spend its hidden units on the rest.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.nn.base import Layer, as_rng

CELLS = ("lstm", "gru", "elman", "jordan", "mlp")
LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 5.0


class ForecastNet(Layer):
    """Encoder (recurrent layer or MLP over the flattened window) -> Dense head -> (mu, log_sigma).
    ``threads``: the recurrent encoder's ``threads=`` (see :class:`rnnkit.nn.recurrent.RecurrentLayer`)."""

    def __init__(self, cell: str, input_size: int, lookback: int, out_steps: int, future_size: int = 0,
                 hidden_size: int = 32, num_layers: int = 1, highway: int = 0, dtype=np.float32,
                 rng=None, threads: int | None = None):
        super().__init__(dtype)
        from rnnkit.nn.layers import Dense

        rng = as_rng(rng)
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        self.cell, self.lookback, self.out_steps = cell, lookback, out_steps
        self.input_size, self.future_size, self.highway = input_size, future_size, highway
        if cell == "mlp":
            self.encoder = self.add_child("enc", Dense(lookback * input_size, hidden_size, dtype, rng))
            enc_size = hidden_size
        else:
            from rnnkit.nn import recurrent

            kw = dict(num_layers=num_layers, return_sequences=False, dtype=dtype, rng=rng, threads=threads)
            if cell == "jordan":
                self.encoder = recurrent.JordanRNN(input_size, hidden_size, hidden_size, **kw)
            else:
                klass = {"lstm": recurrent.LSTM, "gru": recurrent.GRU, "elman": recurrent.ElmanRNN}[cell]
                self.encoder = klass(input_size, hidden_size, **kw)
            self.add_child("enc", self.encoder)
            enc_size = hidden_size
        self.head = self.add_child("head", Dense(enc_size + out_steps * future_size, 2 * out_steps, dtype, rng))
        # start with small outputs: forecasts near "no change" and a unit spread
        self.head.params["W"][...] *= 0.1
        self.highway = int(min(highway, lookback))
        if self.highway:
            self.skip = self.add_child("skip", Dense(self.highway, out_steps, dtype, rng))
            self.skip.params["W"][...] = 0.0

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, xs, fut=None, training: bool = False):
        B, L, D = xs.shape
        xs = xs.astype(self.dtype, copy=False)
        if self.cell == "mlp":
            a = self.encoder.forward(xs.reshape(B, L * D), training)
            h = np.tanh(a)
            self._h = h
        else:
            h, _ = self.encoder.forward(xs, training=training)
        parts = [h]
        if self.future_size:
            parts.append(fut.astype(self.dtype, copy=False).reshape(B, -1))
        out = self.head.forward(np.concatenate(parts, axis=1) if len(parts) > 1 else h, training)
        K = self.out_steps
        mu = out[:, :K]
        if self.highway:
            mu = mu + self.skip.forward(np.ascontiguousarray(xs[:, L - self.highway:, 0]), training)
        raw = out[:, K:]
        log_sigma = np.clip(raw, LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        self._clip_mask = (raw > LOG_SIGMA_MIN) & (raw < LOG_SIGMA_MAX)
        self._shape = (B, L, D)
        return mu, log_sigma

    # -- backward --------------------------------------------------------------------------------
    def backward(self, dmu, dlog_sigma):
        B, L, D = self._shape
        if self.highway:
            self.skip.backward(dmu)  # input gradient not needed: inputs are data
        dout = np.concatenate([dmu, dlog_sigma * self._clip_mask], axis=1).astype(self.dtype)
        dparts = self.head.backward(dout)
        dh = np.ascontiguousarray(dparts[:, : dparts.shape[1] - self.out_steps * self.future_size])
        if self.cell == "mlp":
            # h = tanh(a)
            da = dh * (1.0 - self._h ** 2)
            self.encoder.backward(da)
        else:
            self.encoder.backward(dh)


def gaussian_loss(mu, log_sigma, target):
    """Squared error for the mean plus Gaussian NLL for the spread (with the mean held fixed).

    Returns (loss, dmu, dlog_sigma). Training the mean by squared error keeps point forecasts as good as a
    plain regression network; the NLL term then fits log_sigma to the size of the errors.
    """
    N = target.size
    r = target - mu
    inv_var = np.exp(-2.0 * log_sigma)
    mse = float(np.mean(r ** 2))
    nll = float(np.mean(log_sigma + 0.5 * r ** 2 * inv_var)) + 0.5 * math.log(2 * math.pi)
    dmu = (-2.0 / N) * r
    dlog_sigma = (1.0 - r ** 2 * inv_var) / N
    return mse + nll, dmu.astype(mu.dtype), dlog_sigma.astype(mu.dtype)

