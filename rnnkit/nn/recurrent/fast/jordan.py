"""Jordan core: the network's previous *output* is fed back, not its hidden state (Jordan 1986); fast form of
:class:`rnnkit.nn.recurrent.reference.JordanCell`, row-major with the background thread (``rowmajor``)."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast.base import StateGradient, freeze, outputs, transposed
from rnnkit.nn.recurrent.fast.rowmajor import RowMajorCore

_OUTPUT_ACTIVATIONS = ("tanh", "sigmoid", "identity")


class JordanCore(RowMajorCore):
    """Jordan RNN:

        h_t = tanh(x_t W_x + b_x + y_{t-1} W_h + b_h)     hidden, (B, H)
        y_t = out(h_t W_o + b_o)                           output, (B, O), fed back at t+1

    ``W_x`` (D, H), ``W_h`` (O, H), ``b_x``, ``b_h`` (H,), ``W_o`` (H, O), ``b_o`` (O,);
    ``out`` is tanh (default), sigmoid or identity. State (y_prev,), (B, O).
    """

    gates = ("h",)

    def __init__(self, input_size, hidden_size, *, output_size: int, output_activation: str = "tanh",
                 dtype=np.float32, rng):
        if output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {_OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        super().__init__(input_size, hidden_size, feedback_size=output_size, dtype=dtype, rng=rng)
        bound = 1.0 / np.sqrt(hidden_size)
        self.add_param("W_o", rng.uniform(-bound, bound, (hidden_size, output_size)))
        self.add_param("b_o", rng.uniform(-bound, bound, output_size))
        self.output_activation = output_activation
        self._output_size = output_size

    @property
    def output_size(self) -> int:
        return self._output_size

    @property
    def state_sizes(self):
        return (self._output_size,)

    def _out(self, a):
        if self.output_activation == "tanh":
            np.tanh(a, out=a)
        elif self.output_activation == "sigmoid":
            a *= 0.5
            np.tanh(a, out=a)
            a *= 0.5
            a += 0.5
        return a

    def forward(self, xs, state, mask=None, training=False, projected=False):
        T, B, _ = xs.shape
        O = self._output_size
        p = self.params
        hid = self.begin(xs, p["b_x"] + p["b_h"], mask, training, projected,  # (T, B, H), becomes h_t in place
                         {"dpo": (T, B, O), "dpre": (T, B, self.hidden_size)})
        ys = self.buffer("ys", (T + 1, B, O))
        tmp_h = self.buffer("tmp_h", (B, hid.shape[2]))
        ys[0] = state[0]
        for t in range(T):
            self.input_ready(t)
            np.matmul(ys[t], p["W_h"], out=tmp_h)
            hid[t] += tmp_h
            np.tanh(hid[t], out=hid[t])
            np.matmul(hid[t], p["W_o"], out=ys[t + 1])
            ys[t + 1] += p["b_o"]
            self._out(ys[t + 1])
            if mask is not None:
                freeze(ys[t + 1], ys[t], mask[t])
            self.step_done(t)
        return outputs(ys[1:], mask), (ys[T].copy(),)

    def prepare(self, lo, hi):
        """out'(.) of steps lo..hi-1 from their outputs, and tanh'(.) from their hidden values."""
        w = self._work
        y, dpo = w["ys"][lo + 1:hi + 1], w["dpo"][lo:hi]
        if self.output_activation == "tanh":
            np.square(y, out=dpo)
            np.subtract(1, dpo, out=dpo)
        elif self.output_activation == "sigmoid":
            np.subtract(1, y, out=dpo)
            dpo *= y
        else:
            dpo.fill(1)
        dpre = w["dpre"][lo:hi]
        np.square(w["xg"][lo:hi], out=dpre)
        np.subtract(1, dpre, out=dpre)

    def backward_loop(self, dys, dstate):
        self.prepared()
        w, mask = self._work, self._mask
        hid, ys, dpo, dpre = w["xg"], w["ys"], w["dpo"], w["dpre"]
        T, B, H = hid.shape
        O = self._output_size
        W_hT, W_oT = transposed(self.params["W_h"]), transposed(self.params["W_o"])
        g_y = StateGradient(dys, dstate[0], (B, O), self.dtype, mask)
        dh = np.empty((B, H), self.dtype)
        record = self.start_record(T, B)
        later = self.weight_grads([(self._xs, dpre, "W_x", "b_x"), (ys[:-1], dpre, "W_h", "b_h"),
                                   (hid, dpo, "W_o", "b_o")])
        for t in range(T - 1, -1, -1):
            dy = g_y.at(t)
            dpo[t] *= dy                          # y = out(h W_o + b_o)
            np.matmul(dpo[t], W_oT, out=dh)
            if record is not None:
                record[t] = dh
            dpre[t] *= dh                         # h = tanh(x W_x + y_prev W_h + b)
            np.matmul(dpre[t], W_hT, out=g_y.next)
            g_y.done(t)
            later.ready(t)
        return later.finish(), (g_y.next,)

    def step_buffers(self, batch_size):
        return {"a": np.empty((batch_size, self.hidden_size), dtype=self.dtype)}

    def advance(self, xb, state, work):
        (y,) = state
        p = self.params
        a = work["a"]
        np.matmul(y, p["W_h"], out=a)
        a += xb
        np.tanh(a, out=a)
        np.matmul(a, p["W_o"], out=y)  # y = out(h W_o + b_o), fed back
        y += p["b_o"]
        self._out(y)
        return y
