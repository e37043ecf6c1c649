"""GRU cores, one layer, one direction: reset-after feature-major on a team of threads (``teamcore``), reset-before
row-major with the background thread (``core``). The plain equations: :mod:`rnnkit.nn.recurrent.reference`."""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.core import Core, StateGradient, flush_tiny, freeze, outputs, sigmoid_, transposed
from rnnkit.nn.recurrent.teamcore import TeamCore


class GRUCore(TeamCore):
    """Gated recurrent unit (Cho et al. 2014) in the PyTorch/cuDNN form ("reset after").

    Gate order r, z, n in blocks of H columns of ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b_x``, ``b_h`` (3H,):

        r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)     reset gate
        z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)     update gate
        n  = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))  candidate
        h' = (1 - z) * n + z * h

    State (h,), (B, H). The reset gate acts after the recurrent product, so ``b_hn`` stays inside it: this is
    what lets one GEMM per step serve all three gates. Feature-major and run by a team of threads, like
    the LSTM (see :mod:`rnnkit.nn.recurrent.teamcore`).
    """

    gates = ("r", "z", "n")
    order = (0, 1, 2)

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        parts, m = self.start_forward(xs, state, mask, {"hg": (T, 3 * H, B)})  # hg: h W_h + b_h, every step
        self.run(len(parts), self._forward_member, parts, xs, m)
        return self.finish_forward(parts, xs, mask, (self._work["hs"][T].T.copy(),))

    def _forward_member(self, k, sync, parts, xs, m):
        lo, hi = parts[k]
        n, T = hi - lo, xs.shape[0]
        p, w = self.params, self._work
        WhT, WxT, bias = self.member_weights(lo, hi, p["b_x"])
        xg, hg = w["xg"][:, 3 * lo:3 * hi], w["hg"][:, 3 * lo:3 * hi]
        # r and z pre-activations halved up front (sigmoid(a) = 0.5 tanh(a / 2) + 0.5), both sides
        self.project_inputs(xs, WxT, bias, slice(0, 2 * n), xg)
        WhT[:2 * n] *= 0.5
        for j, cols in self.columns(lo, hi):  # hg starts as b_h; each step adds h W_h
            hg[:, j * n:(j + 1) * n] = p["b_h"][cols, None] * (0.5 if j < 2 else 1.0)
        hs = w["hs"]
        tmp, tmp_n = w[f"tmp{k}"], w[f"tmpn{k}"]
        for t in range(T):
            gt, hgt = xg[t], hg[t]
            np.matmul(WhT, hs[t], out=tmp)
            hgt += tmp
            rz = gt[:2 * n]
            rz += hgt[:2 * n]
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

    def _backward_member(self, k, sync, parts, xs, m, dys, dstate, dxs, dstate0, record):
        lo, hi = parts[k]
        n = hi - lo
        T, B, _ = xs.shape
        w = self._work
        # the h-side gate gradients overwrite h W_h + b_h, whose last reader is the r rows' factor below:
        # one (T, 3H, B) array less at the peak
        xg, dgh_all = w["xg"][:, 3 * lo:3 * hi], w["hg"]
        dgh, dpn = dgh_all[:, 3 * lo:3 * hi], w["dpn"][:, lo:hi]
        hn = dgh[:, 2 * n:]  # h W_hn + b_hn until overwritten
        Wp = self.recurrent_rows(lo, hi, parts)
        self.copy_states(k, lo, hi, T)
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
        dh = self.initial_grad(dstate[0], lo, hi, B)
        now, direct = np.empty((n, B), self.dtype), w[f"tmpn{k}"]
        carry = np.empty_like(dh) if m is not None else None
        dy = None if dys is None else dys[:, :, lo:hi].transpose(0, 2, 1)  # (T, n, B) view
        for t in range(T - 1, -1, -1):
            if dy is None:
                now[...] = dh
            else:
                np.add(dy[t], dh, out=now)  # dL/dh_t: from the output at t and from step t+1
            if record is not None:
                record[t, :, lo:hi] = now.T
            if m is not None:  # past a sequence's end the gradient passes straight to the previous state
                np.multiply(now, 1 - m[t], out=carry)
                now *= m[t]
            d, dn = dgh[t], dpn[t]
            dn *= now  # d pre_n
            d[n:2 * n] *= now  # d pre_z
            d[:n] *= dn  # d pre_r
            np.multiply(dn, r[t], out=d[2 * n:])  # the h side of n: d (h W_hn + b_hn)
            np.multiply(now, z[t], out=direct)  # h' = (1 - z) n + z h: the direct path
            sync()  # the h-side gate gradients of every unit at step t are final
            np.matmul(Wp, dgh_all[t], out=dh)  # dL/dh_{t-1} of my units through the gates
            dh += direct
            if m is not None:
                dh += carry
            if t % 4 == 0:
                flush_tiny(dh)
        dstate0[0][:, lo:hi] = dh.T
        # a copy even when T = 1 (where the transpose is already contiguous): its n rows are overwritten
        # below while other members may still read the shared gate gradients of step 0
        dg_cat = dgh.transpose(1, 0, 2).copy().reshape(3 * n, T * B)
        self.h_side_grads(lo, hi, dg_cat)
        # the x side: the same r and z rows, d pre_n (not times r) for n, in place of the h side's n rows
        dg_cat[2 * n:].reshape(n, T, B)[...] = dpn.transpose(1, 0, 2)
        self.x_side_grads(k, lo, hi, xs, dg_cat, dxs)

    # -- generation -------------------------------------------------------------------------------
    def step(self, x, state, projected=False):
        (h,) = state
        H = self.hidden_size
        p = self.params
        gt = x + p["b_x"] if projected else x @ p["W_x"] + p["b_x"]
        hgt = h @ p["W_h"]
        hgt += p["b_h"]
        rz = sigmoid_(gt[:, :2 * H] + hgt[:, :2 * H])
        n = hgt[:, 2 * H:] * rz[:, :H]
        n += gt[:, 2 * H:]
        np.tanh(n, out=n)
        h = (h - n) * rz[:, H:]
        h += n
        return h, (h,)


class GRUResetBeforeCore(Core):
    """GRU in the form of Cho et al. (2014), the reset gate applied *before* the recurrent product:

        r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)
        z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)
        n  = tanh(x W_xn + b_xn + (r * h) W_hn + b_hn)
        h' = (1 - z) * n + z * h

    Same parameters and gate order as :class:`GRUCore`; two recurrent GEMMs per step instead of one (the
    second needs r). PyTorch has no such layer, so its weights do not port to ``torch.nn.GRU``. It runs on
    the row-major machinery of :class:`~rnnkit.nn.recurrent.core.Core` (with its background thread).
    """

    gates = ("r", "z", "n")

    def forward(self, xs, state, mask=None, training=False):
        T, B, _ = xs.shape
        H = self.hidden_size
        W_h, b_h = self.params["W_h"], self.params["b_h"]
        W_hrz, W_hn = W_h[:, :2 * H], W_h[:, 2 * H:]
        gates = self.begin(xs, self.params["b_x"] + b_h, training, {"dgx": (T, B, 3 * H)})
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
        self._mask = mask
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
        g_h = StateGradient(dys, None if dstate is None else dstate[0], (B, H), self.dtype, mask)
        drh = np.empty((B, H), self.dtype)
        tmp_h = self.buffer("tmp_h", (B, H))
        record = self.start_record(T, B)
        later = self.weight_grads([(self._xs, dgx, "W_x", "b_x"),
                                   (hs[:-1], dgx, "W_h", "b_h", slice(0, 2 * H)),
                                   (rh, dgx, "W_h", "b_h", slice(2 * H, 3 * H))])
        for t in range(T - 1, -1, -1):
            dh = g_h.at(t, record)
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

    def step(self, x, state, projected=False):
        (h,) = state
        H = self.hidden_size
        p = self.params
        gt = x + p["b_x"] if projected else x @ p["W_x"] + p["b_x"]
        gt += p["b_h"]
        rz = gt[:, :2 * H]
        rz += h @ p["W_h"][:, :2 * H]
        sigmoid_(rz)
        n = gt[:, 2 * H:]
        n += (gt[:, :H] * h) @ p["W_h"][:, 2 * H:]
        np.tanh(n, out=n)
        h = (h - n) * gt[:, H:2 * H]
        h += n
        return h, (h,)
