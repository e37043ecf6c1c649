"""GRU core (reset after, PyTorch's form): one layer, one direction, feature-major, its time loop shared by a
team of threads (:mod:`rnnkit.nn.recurrent.fast.featuremajor`); fast form of
:class:`rnnkit.nn.recurrent.reference.GRUCell`. The reset-before form is in ``gru_before``."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast.base import freeze
from rnnkit.nn.recurrent.fast.featuremajor import FeatureMajorCore


class GRUCore(FeatureMajorCore):
    """Gated recurrent unit (Cho et al. 2014) in the PyTorch/cuDNN form ("reset after").

    Gate order r, z, n in blocks of H columns of ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b_x``, ``b_h`` (3H,):

        r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)     reset gate
        z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)     update gate
        n  = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))  candidate
        h' = (1 - z) * n + z * h

    State (h,), (B, H). The reset gate acts after the recurrent product, so ``b_hn`` stays inside it: this is
    what lets one GEMM per step serve all three gates. Feature-major and run by a team of threads, like
    the LSTM (see :mod:`rnnkit.nn.recurrent.fast.featuremajor`).
    """

    gates = ("r", "z", "n")
    order = (0, 1, 2)

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False, projected=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        parts, m = self.start_forward(xs, state, mask, projected, {"hg": (T, 3 * H, B)})  # hg: h W_h (+ b_hn)
        self.run(len(parts), self._forward_member, parts, xs, m)
        return self.finish_forward(parts, xs, (self._work["hs"][T].T.copy(),))

    def _forward_member(self, k, sync, parts, xs, m):
        lo, hi = parts[k]
        n, T = hi - lo, xs.shape[0]
        p, w = self.params, self._work
        # the x side carries b_h of r and z too (added once for all steps); b_hn stays on the h side, inside
        # r * (h W_hn + b_hn), added to my n rows at each step
        H = self.hidden_size
        x_bias = p["b_x"].copy()
        x_bias[:2 * H] += p["b_h"][:2 * H]
        WhT, WxT, bias = self.member_weights(lo, hi, x_bias)
        xg, hg = w["xg"][:, 3 * lo:3 * hi], w["hg"][:, 3 * lo:3 * hi]
        # r and z pre-activations halved up front (sigmoid(a) = 0.5 tanh(a / 2) + 0.5), both sides
        self.project_inputs(lo, hi, xs, WxT, bias, slice(0, 2 * n), xg)
        WhT[:2 * n] *= 0.5
        b_hn = np.repeat(p["b_h"][2 * H + lo:2 * H + hi, None], xs.shape[1], axis=1)  # (n, B): a same-shape add
        hs = w["hs"]
        tmp_n = w[f"tmpn{k}"]
        for t in range(T):
            gt, hgt = xg[t], hg[t]
            np.matmul(WhT, hs[t], out=hgt)  # h W_h of my rows (r and z halved); backward reads the n rows
            rz = gt[:2 * n]
            rz += hgt[:2 * n]
            hgt[2 * n:] += b_hn
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            r, z, c = gt[:n], gt[n:2 * n], gt[2 * n:]
            np.multiply(r, hgt[2 * n:], out=tmp_n)
            c += tmp_n
            np.tanh(c, out=c)
            # h' = n + z * (h - n)
            h = hs[t + 1, lo:hi]
            np.subtract(hs[t, lo:hi], c, out=tmp_n)
            tmp_n *= z
            np.add(c, tmp_n, out=h)
            if m is not None:
                freeze(h, hs[t, lo:hi], m[t])
            sync()  # every unit of h_{t+1} is written

    # -- backward ---------------------------------------------------------------------------------
    def backward_buffers(self, T, B):
        return {"dpn": (T, self.hidden_size, B)}  # the h-side gate gradients reuse "hg"

    def _backward_member(self, k, sync, parts, xs, m, dys, dstate, dxs, dstate0, T):
        lo, hi = parts[k]
        n = hi - lo
        B = dxs.shape[-2]
        w = self._work
        # the h-side gate gradients overwrite h W_h + b_h, whose last reader is the r rows' factor below:
        # one (T, 3H, B) array less at the peak
        xg, dgh_all = w["xg"][:, 3 * lo:3 * hi], w["hg"]
        dgh, dpn = dgh_all[:, 3 * lo:3 * hi], w["dpn"][:, lo:hi]
        hn = dgh[:, 2 * n:]  # h W_hn + b_hn until overwritten
        Wp = self.recurrent_rows(lo, hi, parts)
        # what needs the forward alone, for all steps at once (dh' = dL/dh'):
        #   d pre_n = dh' (1 - z)(1 - n^2)               = dh' P_n       (dpn)
        #   d pre_z = dh' (h - n) z (1 - z)              = dh' P_z       (z rows of dgh)
        #   d pre_r = d pre_n (h W_hn + b_hn) r (1 - r)  = d pre_n P_r   (r rows of dgh)
        r, z, c = xg[:, :n], xg[:, n:2 * n], xg[:, 2 * n:]
        np.subtract(1, r, out=dgh[:, :n])  # P_r first: it is the last use of h W_hn + b_hn
        dgh[:, :n] *= r
        dgh[:, :n] *= hn
        one_minus = dgh[:, 2 * n:]  # scratch until the loop writes the n rows
        np.square(c, out=dpn)
        np.subtract(1, dpn, out=dpn)
        np.subtract(1, z, out=one_minus)
        dpn *= one_minus
        np.subtract(w["hs"][:T, lo:hi], c, out=dgh[:, n:2 * n])
        dgh[:, n:2 * n] *= z
        dgh[:, n:2 * n] *= one_minus
        # the reverse loop
        g_h = self.state_gradient(0, lo, hi, dys, dstate, m)
        direct, projected = w[f"tmpn{k}"], self._projected
        for t in range(T - 1, -1, -1):
            dh = g_h.at(t)  # dL/dh_t: from the output at t and from step t+1
            d, dn = dgh[t], dpn[t]
            dn *= dh  # d pre_n
            d[n:2 * n] *= dh  # d pre_z
            d[:n] *= dn  # d pre_r
            np.multiply(dn, r[t], out=d[2 * n:])  # the h side of n: d (h W_hn + b_hn)
            np.multiply(dh, z[t], out=direct)  # h' = (1 - z) n + z h: the direct path
            if projected:  # the x side: r and z rows as on the h side, d pre_n for n
                self.write_projected(dxs, t, lo, hi, (d[:n], d[n:2 * n], dn))
            sync()  # the h-side gate gradients of every unit at step t are final
            np.matmul(Wp, dgh_all[t], out=g_h.next)  # dL/dh_{t-1} of my units through the gates
            g_h.next += direct
            g_h.done(t)
        dstate0[0][:, lo:hi] = g_h.next.T
        # the x side: the same r and z rows, d pre_n (not times r) for n, in place of the h side's n rows
        self.weight_grads(k, lo, hi, xs, dgh, dxs, x_rows=dpn)

    # -- generation -------------------------------------------------------------------------------
    def add_input_bias(self, xw, projected):
        xw += self.params["b_x"]  # b_h goes with h W_h: b_hn sits inside r * (h W_hn + b_hn)

    def step_buffers(self, batch_size):
        H = self.hidden_size
        hg = np.empty((batch_size, 3 * H), dtype=self.dtype)  # h W_h + b_h
        rz = np.empty((batch_size, 2 * H), dtype=self.dtype)
        # b_h and 0.5 as (B, ...) arrays, the shapes they meet: NumPy's same-shape loop is ~2x faster
        return {"hg": hg, "hg_rz": hg[:, :2 * H], "hg_n": hg[:, 2 * H:], "rz": rz, "r": rz[:, :H], "z": rz[:, H:],
                "n": np.empty((batch_size, H), dtype=self.dtype), "b_h": np.tile(self.params["b_h"], (batch_size, 1)),
                "half": np.full((batch_size, 2 * H), 0.5, dtype=self.dtype)}

    def advance(self, xb, state, work):
        (h,) = state
        H = self.hidden_size
        hg, rz, n, half = work["hg"], work["rz"], work["n"], work["half"]
        np.matmul(h, self.params["W_h"], out=hg)
        hg += work["b_h"]  # a copy of b_h: step_buffers are made again for new weights
        np.add(xb[:, :2 * H], work["hg_rz"], out=rz)
        rz *= half  # sigmoid(a) = 0.5 tanh(0.5 a) + 0.5
        np.tanh(rz, out=rz)
        rz *= half
        rz += half
        np.multiply(work["hg_n"], work["r"], out=n)  # n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
        n += xb[:, 2 * H:]
        np.tanh(n, out=n)
        h -= n  # h' = (1 - z) n + z h = (h - n) z + n
        h *= work["z"]
        h += n
        return h
