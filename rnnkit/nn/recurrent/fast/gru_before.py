"""GRU core in the form of Cho et al. (2014), reset before the recurrent product; fast form of
:class:`rnnkit.nn.recurrent.reference.GRUResetBeforeCell`, row-major with the background thread (``rowmajor``)."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast.base import StateGradient, freeze, outputs, sigmoid_, transposed
from rnnkit.nn.recurrent.fast.rowmajor import RowMajorCore


class GRUResetBeforeCore(RowMajorCore):
    """GRU in the form of Cho et al. (2014), the reset gate applied *before* the recurrent product:

        r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)
        z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)
        n  = tanh(x W_xn + b_xn + (r * h) W_hn + b_hn)
        h' = (1 - z) * n + z * h

    Same parameters and gate order as :class:`~rnnkit.nn.recurrent.fast.gru.GRUCore`; two recurrent GEMMs
    per step instead of one (the second needs r). PyTorch has no such layer, so its weights do not port to
    ``torch.nn.GRU``. It runs on the row-major strategy (:mod:`~rnnkit.nn.recurrent.fast.rowmajor`), with its
    background thread.
    """

    gates = ("r", "z", "n")

    def forward(self, xs, state, mask=None, training=False, projected=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        W_h, b_h = self.params["W_h"], self.params["b_h"]
        W_hrz, W_hn = W_h[:, :2 * H], W_h[:, 2 * H:]
        gates = self.begin(xs, self.params["b_x"] + b_h, mask, training, projected, {"dgx": (T, B, 3 * H)})
        rh = self.buffer("rh", (T, B, H))  # r * h, the input of W_hn
        hs = self.buffer("hs", (T + 1, B, H))
        tmp_rz = self.buffer("tmp_rz", (B, 2 * H))
        tmp_h = self.buffer("tmp_h", (B, H))
        hs[0] = state[0]
        for t in range(T):
            self.input_ready(t)
            gt = gates[t]
            np.matmul(hs[t], W_hrz, out=tmp_rz)
            rz = gt[:, :2 * H]
            rz += tmp_rz
            sigmoid_(rz)
            z, n = gt[:, H:2 * H], gt[:, 2 * H:]
            np.multiply(gt[:, :H], hs[t], out=rh[t])
            np.matmul(rh[t], W_hn, out=tmp_h)
            n += tmp_h
            np.tanh(n, out=n)
            np.subtract(hs[t], n, out=tmp_h)
            tmp_h *= z
            np.add(n, tmp_h, out=hs[t + 1])
            if mask is not None:
                freeze(hs[t + 1], hs[t], mask[t])
            self.step_done(t)
        return outputs(hs[1:], mask), (hs[T].copy(),)

    def prepare(self, lo, hi):
        """Forward-only factors for steps lo..hi-1, in dgx = [P_r, P_z, P_n]:
            d pre_n = dh' (1 - z)(1 - n^2)     = dh' P_n
            d pre_z = dh' (h - n) z (1 - z)    = dh' P_z
            d pre_r = d(r h) h r (1 - r)       = d(r h) P_r,  with d(r h) = d pre_n W_hn^T"""
        w = self._work
        gates, h_prev = w["xg"][lo:hi], w["hs"][lo:hi]
        H = self.hidden_size
        r, z, n = gates[:, :, :H], gates[:, :, H:2 * H], gates[:, :, 2 * H:]
        P = w["dgx"][lo:hi].reshape(hi - lo, gates.shape[1], 3, H)
        np.subtract(1, z, out=P[:, :, 2])
        P[:, :, 2] *= 1 - np.square(n)
        np.subtract(h_prev, n, out=P[:, :, 1])
        P[:, :, 1] *= z
        P[:, :, 1] *= 1 - z
        np.subtract(1, r, out=P[:, :, 0])
        P[:, :, 0] *= r
        P[:, :, 0] *= h_prev

    def backward_loop(self, dys, dstate):
        self.prepared()
        w, mask = self._work, self._mask
        gates, hs, rh, dgx = w["xg"], w["hs"], w["rh"], w["dgx"]
        T, B, H3 = gates.shape
        H = H3 // 3
        W_h = self.params["W_h"]
        W_hrz_T, W_hn_T = transposed(W_h[:, :2 * H]), transposed(W_h[:, 2 * H:])
        r, z = gates[:, :, :H], gates[:, :, H:2 * H]
        P = dgx.reshape(T, B, 3, H)
        g_h = StateGradient(dys, dstate[0], (B, H), self.dtype, mask, self.start_record(T, B))
        drh = np.empty((B, H), self.dtype)
        tmp_h = self.buffer("tmp_h", (B, H))
        later = self.weight_grads([(self._xs, dgx, "W_x", "b_x"),
                                   (hs[:-1], dgx, "W_h", "b_h", slice(0, 2 * H)),
                                   (rh, dgx, "W_h", "b_h", slice(2 * H, 3 * H))])
        for t in range(T - 1, -1, -1):
            dh = g_h.at(t)
            Pt = P[t]
            Pt[:, 2] *= dh                 # d pre_n
            Pt[:, 1] *= dh                 # d pre_z
            np.matmul(Pt[:, 2], W_hn_T, out=drh)
            Pt[:, 0] *= drh                # d pre_r
            # h' = (1 - z) n + z h, with h also inside r * h and in the r, z products
            np.matmul(dgx[t, :, :2 * H], W_hrz_T, out=g_h.next)
            np.multiply(dh, z[t], out=tmp_h)
            g_h.next += tmp_h
            np.multiply(drh, r[t], out=tmp_h)
            g_h.next += tmp_h
            g_h.done(t)
            later.ready(t)
        return later.finish(), (g_h.next,)

    def step_buffers(self, batch_size):
        H = self.hidden_size
        rz = np.empty((batch_size, 2 * H), dtype=self.dtype)
        return {"rz": rz, "r": rz[:, :H], "z": rz[:, H:], "rh": np.empty((batch_size, H), dtype=self.dtype),
                "n": np.empty((batch_size, H), dtype=self.dtype)}

    def advance(self, xb, state, work):
        (h,) = state
        H = self.hidden_size
        W_h = self.params["W_h"]
        rz, rh, n = work["rz"], work["rh"], work["n"]
        np.matmul(h, W_h[:, :2 * H], out=rz)
        rz += xb[:, :2 * H]
        sigmoid_(rz)
        np.multiply(work["r"], h, out=rh)  # n = tanh(x W_xn + (r * h) W_hn + b_n)
        np.matmul(rh, W_h[:, 2 * H:], out=n)
        n += xb[:, 2 * H:]
        np.tanh(n, out=n)
        h -= n  # h' = (1 - z) n + z h = (h - n) z + n
        h *= work["z"]
        h += n
        return h
