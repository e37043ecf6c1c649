"""LSTM core: one layer, one direction, feature-major, its time loop shared by a team of threads
(the layout and the team are described in :mod:`rnnkit.nn.recurrent.fast.featuremajor`); fast form of
:class:`rnnkit.nn.recurrent.reference.LSTMCell`."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast.base import freeze
from rnnkit.nn.recurrent.fast.featuremajor import FeatureMajorCore


class LSTMCore(FeatureMajorCore):
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
    Internally each member's gate rows are in the order g, i, f, o: one tanh block, then the three sigmoids.
    """

    gates = ("i", "f", "g", "o")
    order = (2, 0, 1, 3)
    n_state = 2

    def __init__(self, input_size, hidden_size, *, forget_bias: float | None = 1.0, dtype=np.float32, rng):
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        H = hidden_size
        if forget_bias is not None:
            self.params["b_x"][H:2 * H] = forget_bias
            self.params["b_h"][H:2 * H] = 0.0
        # advance(): sigmoid(a) = 0.5 tanh(0.5 a) + 0.5 and tanh(a) share one tanh call over all 4H columns
        self._scale = np.full(4 * H, 0.5, dtype=self.dtype)
        self._scale[2 * H:3 * H] = 1.0
        self._shift = np.full(4 * H, 0.5, dtype=self.dtype)
        self._shift[2 * H:3 * H] = 0.0

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False, projected=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        parts, m = self.start_forward(xs, state, mask, projected, {"cs": (T + 1, H, B), "tanh_cs": (T, H, B)})
        w = self._work
        w["cs"][0] = state[1].T
        self.run(len(parts), self._forward_member, parts, xs, m)
        return self.finish_forward(parts, xs, (w["hs"][T].T.copy(), w["cs"][T].T.copy()))

    def _forward_member(self, k, sync, parts, xs, m):
        lo, hi = parts[k]
        n, T = hi - lo, xs.shape[0]
        p, w = self.params, self._work
        WhT, WxT, bias = self.member_weights(lo, hi, p["b_x"] + p["b_h"])
        # the i, f, o pre-activations are halved up front (recurrent weights and input projections), so
        # that one tanh call covers all four gates and two more finish the sigmoids
        WhT[n:] *= 0.5
        xg = w["xg"][:, 4 * lo:4 * hi]
        self.project_inputs(lo, hi, xs, WxT, bias, slice(n, 4 * n), xg)
        hs, cs, tanh_cs = w["hs"], w["cs"][:, lo:hi], w["tanh_cs"][:, lo:hi]
        tmp, tmp_n = w[f"tmp{k}"], w[f"tmpn{k}"]
        for t in range(T):
            gt = xg[t]
            np.matmul(WhT, hs[t], out=tmp)
            gt += tmp
            np.tanh(gt, out=gt)  # g, and tanh(a / 2) for i, f, o
            s = gt[n:]
            s *= 0.5
            s += 0.5
            c = cs[t + 1]
            np.multiply(gt[2 * n:3 * n], cs[t], out=c)
            np.multiply(gt[n:2 * n], gt[:n], out=tmp_n)
            c += tmp_n
            np.tanh(c, out=tanh_cs[t])
            h = hs[t + 1, lo:hi]
            np.multiply(gt[3 * n:], tanh_cs[t], out=h)
            if m is not None:
                freeze(c, cs[t], m[t])
                freeze(h, hs[t, lo:hi], m[t])
            sync()  # every unit of h_{t+1} is written

    # -- backward ---------------------------------------------------------------------------------
    def backward_buffers(self, T, B):
        H = self.hidden_size
        return {"dg": (T, 4 * H, B), "A": (T, H, B)}

    def _backward_member(self, k, sync, parts, xs, m, dys, dstate, dxs, dstate0, T):
        lo, hi = parts[k]
        n = hi - lo
        B = dxs.shape[-2]
        w = self._work
        xg, dg_all = w["xg"][:, 4 * lo:4 * hi], w["dg"]
        dg, A, tanh_cs = dg_all[:, 4 * lo:4 * hi], w["A"][:, lo:hi], w["tanh_cs"][:, lo:hi]
        Wp = self.recurrent_rows(lo, hi, parts)
        # what needs the forward alone, for all steps at once:
        #   A  = o (1 - tanh(c')^2)                 so that dL/dc' += dL/dh' * A
        #   dg = [i (1 - g^2), g i (1 - i), c f (1 - f), tanh(c') o (1 - o)]
        # which the loop multiplies by dL/dc' (g, i, f rows) and dL/dh' (o rows).
        g, i, f, o = xg[:, :n], xg[:, n:2 * n], xg[:, 2 * n:3 * n], xg[:, 3 * n:]
        np.square(tanh_cs, out=A)
        np.subtract(1, A, out=A)
        A *= o
        np.square(g, out=dg[:, :n])
        np.subtract(1, dg[:, :n], out=dg[:, :n])
        dg[:, :n] *= i
        np.subtract(1, xg[:, n:], out=dg[:, n:])
        dg[:, n:] *= xg[:, n:]
        dg[:, n:2 * n] *= g
        dg[:, 2 * n:3 * n] *= w["cs"][:T, lo:hi]
        dg[:, 3 * n:] *= tanh_cs
        # the reverse loop
        g_h, g_c = self.state_gradient(0, lo, hi, dys, dstate, m), self.state_gradient(1, lo, hi, dys, dstate, m)
        tmp_n, projected = w[f"tmpn{k}"], self._projected
        for t in range(T - 1, -1, -1):
            dh = g_h.at(t)  # dL/dh_t: from the output at t and from step t+1
            dc = g_c.at(t)
            np.multiply(dh, A[t], out=tmp_n)
            dc += tmp_n  # dL/dc_t
            d = dg[t]
            d3 = d[:3 * n].reshape(3, n, B)
            d3 *= dc  # g, i, f rows
            d[3 * n:] *= dh  # o rows
            dc *= f[t]  # dL/dc_{t-1} through c' = f c + i g
            if projected:
                self.write_projected(dxs, t, lo, hi, d.reshape(4, n, B))
            sync()  # the gate gradients of every unit at step t are final
            np.matmul(Wp, dg_all[t], out=g_h.next)  # dL/dh_{t-1} of my units
            g_h.done(t)
            g_c.done(t)
        dstate0[0][:, lo:hi] = g_h.next.T
        dstate0[1][:, lo:hi] = g_c.next.T
        self.weight_grads(k, lo, hi, xs, dg, dxs)  # the same gate gradients on both sides

    # -- generation -------------------------------------------------------------------------------
    def add_input_bias(self, xw, projected):
        if projected:
            super().add_input_bias(xw, projected)
        else:  # the biases summed first, as earlier versions did (the same sampled text, bit for bit)
            xw += self.params["b_x"] + self.params["b_h"]

    def step_buffers(self, batch_size):
        H = self.hidden_size
        gt = np.empty((batch_size, 4 * H), dtype=self.dtype)  # i, f, g, o (PyTorch's order)
        # scale and shift as (B, 4H), the shape of gt: NumPy's same-shape loop is ~2x faster than broadcasting
        return {"gt": gt, "i": gt[:, :H], "f": gt[:, H:2 * H], "g": gt[:, 2 * H:3 * H], "o": gt[:, 3 * H:],
                "ig": np.empty((batch_size, H), dtype=self.dtype),
                "scale": np.tile(self._scale, (batch_size, 1)), "shift": np.tile(self._shift, (batch_size, 1))}

    def advance(self, xb, state, work):
        h, c = state
        gt, ig, scale = work["gt"], work["ig"], work["scale"]
        np.matmul(h, self.params["W_h"], out=gt)
        gt += xb
        # one tanh for the four gates: sigmoid(a) = 0.5 tanh(0.5 a) + 0.5 on the i, f, o columns
        gt *= scale
        np.tanh(gt, out=gt)
        gt *= scale
        gt += work["shift"]
        np.multiply(work["f"], c, out=c)  # c' = f c + i g
        np.multiply(work["i"], work["g"], out=ig)
        c += ig
        np.tanh(c, out=h)  # h' = o tanh(c')
        h *= work["o"]
        return h
