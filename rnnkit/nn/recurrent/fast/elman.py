"""Elman core: the simple recurrent network, hidden state fed back (Elman 1990); fast form of
:class:`rnnkit.nn.recurrent.reference.ElmanCell`, row-major with the background thread (``rowmajor``)."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast.base import StateGradient, freeze, outputs, transposed
from rnnkit.nn.recurrent.fast.rowmajor import RowMajorCore


class ElmanCore(RowMajorCore):
    """Elman RNN (PyTorch's ``nn.RNN``):

        h' = act(x W_x + b_x + h W_h + b_h),   act = tanh (default) or relu

    ``W_x`` (D, H), ``W_h`` (H, H), ``b_x``, ``b_h`` (H,). State (h,), (B, H).
    """

    gates = ("h",)

    def __init__(self, input_size, hidden_size, *, nonlinearity: str = "tanh", dtype=np.float32, rng):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        self.nonlinearity = nonlinearity

    def _act(self, a):
        if self.nonlinearity == "tanh":
            np.tanh(a, out=a)
        else:
            np.maximum(a, 0, out=a)
        return a

    def forward(self, xs, state, mask=None, training=False, projected=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        W_h = self.params["W_h"]
        pre = self.begin(xs, self.params["b_x"] + self.params["b_h"], mask, training, projected,  # (T, B, H)
                         {"dpre": (T, B, H)})
        hs = self.buffer("hs", (T + 1, B, H))
        tmp_h = self.buffer("tmp_h", (B, H))
        hs[0] = state[0]
        for t in range(T):
            self.input_ready(t)
            np.matmul(hs[t], W_h, out=tmp_h)
            self._act(np.add(pre[t], tmp_h, out=hs[t + 1]))
            if mask is not None:
                freeze(hs[t + 1], hs[t], mask[t])
            self.step_done(t)
        return outputs(hs[1:], mask), (hs[T].copy(),)

    def prepare(self, lo, hi):
        """act'(pre) of steps lo..hi-1 from their outputs; dpre_t = dh_t * act'_t becomes the gate gradient."""
        h, dpre = self._work["hs"][lo + 1:hi + 1], self._work["dpre"][lo:hi]
        if self.nonlinearity == "tanh":
            np.square(h, out=dpre)
            np.subtract(1, dpre, out=dpre)
        else:
            np.greater(h, 0, out=dpre, casting="unsafe")

    def backward_loop(self, dys, dstate):
        self.prepared()
        hs, dpre, mask = self._work["hs"], self._work["dpre"], self._mask
        T1, B, H = hs.shape
        T = T1 - 1
        W_hT = transposed(self.params["W_h"])
        g_h = StateGradient(dys, dstate[0], (B, H), self.dtype, mask, self.start_record(T, B))
        later = self.weight_grads([(self._xs, dpre, "W_x", "b_x"), (hs[:-1], dpre, "W_h", "b_h")])
        for t in range(T - 1, -1, -1):
            dh = g_h.at(t)
            dpre[t] *= dh
            np.matmul(dpre[t], W_hT, out=g_h.next)
            g_h.done(t)
            later.ready(t)
        return later.finish(), (g_h.next,)

    def step_buffers(self, batch_size):
        return {"a": np.empty((batch_size, self.hidden_size), dtype=self.dtype)}

    def advance(self, xb, state, work):
        (h,) = state
        a = work["a"]
        np.matmul(h, self.params["W_h"], out=a)
        a += xb
        if self.nonlinearity == "tanh":  # h' = act(x W_x + b_x + h W_h + b_h), written into h
            np.tanh(a, out=h)
        else:
            np.maximum(a, 0, out=h)
        return h
