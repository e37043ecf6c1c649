"""LSTM core: one layer, one direction, with its fused forward loop and hand-derived BPTT."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.core import Core, StateGradient, freeze, outputs, transposed


class LSTMCore(Core):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate; PyTorch's equations).

    Gate order i, f, g, o in blocks of H columns of ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b_x``, ``b_h`` (4H,):

        i = sigmoid(x W_xi + b_xi + h W_hi + b_hi)      input gate
        f = sigmoid(x W_xf + b_xf + h W_hf + b_hf)      forget gate
        g = tanh(x W_xg + b_xg + h W_hg + b_hg)         candidate
        o = sigmoid(x W_xo + b_xo + h W_ho + b_ho)      output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    State (h, c), each (B, H). The forget gate's bias starts at ``forget_bias`` (1.0 by default) so that a
    fresh cell keeps its memory; None keeps PyTorch's initialisation (uniform, like every other bias).
    """

    gates = ("i", "f", "g", "o")
    n_state = 2

    def __init__(self, input_size, hidden_size, *, forget_bias: float | None = 1.0, dtype=np.float32, rng):
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        H = hidden_size
        if forget_bias is not None:
            self.params["b_x"][H:2 * H] = forget_bias
            self.params["b_h"][H:2 * H] = 0.0
        # sigmoid(a) = 0.5 tanh(0.5 a) + 0.5 and tanh(a) share one tanh call over all 4H columns
        self._scale = np.full(4 * H, 0.5, dtype=self.dtype)
        self._scale[2 * H:3 * H] = 1.0
        self._shift = np.full(4 * H, 0.5, dtype=self.dtype)
        self._shift[2 * H:3 * H] = 0.0

    def _activate(self, gt: np.ndarray) -> None:
        """(B, 4H) pre-activations -> [sigmoid i, sigmoid f, tanh g, sigmoid o], in place."""
        gt *= self._scale
        np.tanh(gt, out=gt)
        gt *= self._scale
        gt += self._shift

    def forward(self, xs, state, mask=None, training=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        W_h = self.params["W_h"]
        gates = self.begin(xs, self.params["b_x"] + self.params["b_h"], training,
                           {"A": (T, B, H), "dg": (T, B, 4 * H)})  # (T, B, 4H)
        hs = self.buffer("hs", (T + 1, B, H))
        cs = self.buffer("cs", (T + 1, B, H))
        tanh_cs = self.buffer("tanh_cs", (T, B, H))
        tmp = self.buffer("tmp", (B, 4 * H))
        tmp_h = self.buffer("tmp_h", (B, H))
        hs[0], cs[0] = state
        for t in range(T):
            self.input_ready(t)
            gt = gates[t]
            np.matmul(hs[t], W_h, out=tmp)
            gt += tmp
            self._activate(gt)
            i, f, g, o = gt[:, :H], gt[:, H:2 * H], gt[:, 2 * H:3 * H], gt[:, 3 * H:]
            c = cs[t + 1]
            np.multiply(f, cs[t], out=c)
            np.multiply(i, g, out=tmp_h)
            c += tmp_h
            np.tanh(c, out=tanh_cs[t])
            np.multiply(o, tanh_cs[t], out=hs[t + 1])
            if mask is not None:
                freeze(c, cs[t], mask[t])
                freeze(hs[t + 1], hs[t], mask[t])
            self.step_done(t)
        self._mask = mask
        return outputs(hs[1:], mask), (hs[T].copy(), cs[T].copy())

    def prepare(self, lo, hi):
        """What backward needs from the forward alone, for steps lo..hi-1:
            A  = o * (1 - tanh(c')^2)        so that dL/dc' += dh' * A
            dg = [g, c, i, tanh(c')] * [sig'(i), sig'(f), tanh'(g), sig'(o)]
        which the reverse loop turns into the gate gradients by multiplying with dc' (i, f, g) and dh' (o)."""
        w = self._work
        gates, cs, tanh_cs = w["xg"][lo:hi], w["cs"][lo:hi], w["tanh_cs"][lo:hi]
        n, B, H4 = gates.shape
        H = H4 // 4
        g4 = gates.reshape(n, B, 4, H)
        i, f, g, o = g4[:, :, 0], g4[:, :, 1], g4[:, :, 2], g4[:, :, 3]
        A = w["A"][lo:hi]
        np.square(tanh_cs, out=A)
        np.subtract(1, A, out=A)
        A *= o
        dg = w["dg"][lo:hi]
        np.subtract(1, gates, out=dg)  # (1 - a) times a for sigmoids, times (1 + a) for tanh
        dg4 = dg.reshape(n, B, 4, H)
        dg4[:, :, 0] *= i
        dg4[:, :, 1] *= f
        dg4[:, :, 2] *= g + 1
        dg4[:, :, 3] *= o
        dg4[:, :, 0] *= g
        dg4[:, :, 1] *= cs
        dg4[:, :, 2] *= i
        dg4[:, :, 3] *= tanh_cs

    def backward_loop(self, dys, dstate):
        self.prepared()
        w, mask = self._work, self._mask
        gates, hs, A, dg = w["xg"], w["hs"], w["A"], w["dg"]
        T, B, H4 = gates.shape
        H = H4 // 4
        W_hT = transposed(self.params["W_h"])
        f = gates.reshape(T, B, 4, H)[:, :, 1]
        dg4 = dg.reshape(T, B, 4, H)
        dstate = (None, None) if dstate is None else dstate
        g_h = StateGradient(dys, dstate[0], (B, H), self.dtype, mask)
        g_c = StateGradient(None, dstate[1], (B, H), self.dtype, mask, in_place=True)
        tmp_h = self.buffer("tmp_h", (B, H))
        record = self.start_record(T, B)
        later = self.weight_grads([(self._xs, dg, "W_x", "b_x"), (hs[:-1], dg, "W_h", "b_h")])
        for t in range(T - 1, -1, -1):
            dh, dc = g_h.at(t, record), g_c.at(t)  # dL/dh_t, dL/dc_t: from the output at t and from t+1
            # c' = f*c + i*g ; h' = o*tanh(c')
            np.multiply(dh, A[t], out=tmp_h)
            dc += tmp_h
            dg4[t, :, :3] *= dc[:, None, :]
            dg4[t, :, 3] *= dh
            dc *= f[t]
            # gates = x W_x + h W_h + b
            np.matmul(dg[t], W_hT, out=g_h.next)
            g_h.done(t)
            g_c.done(t)
            later.ready(t)
        return later.finish(), (g_h.next, g_c.next)

    def step(self, x, state, projected=False):
        h, c = state
        H = self.hidden_size
        p = self.params
        gt = x + p["b_x"] + p["b_h"] if projected else x @ p["W_x"] + (p["b_x"] + p["b_h"])
        gt += h @ p["W_h"]
        self._activate(gt)
        c = gt[:, H:2 * H] * c
        c += gt[:, :H] * gt[:, 2 * H:3 * H]
        h = np.tanh(c)
        h *= gt[:, 3 * H:]
        return h, (h, c)

