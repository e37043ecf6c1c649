"""LSTM core: one layer, one direction, feature-major, its time loop shared by a team of threads.

Layout. Inside the core every step is stored feature-major: gates (T, 4H, B), states (T+1, H, B). The
per-step product is then W_h^T (4H, H) times h_t (H, B), an orientation OpenBLAS runs ~1.35x faster than
h_t (B, H) times W_h (measured at B=32, H=384), and each member's share of a step is one contiguous block
(a (4H, T*B) layout with strided steps made the element-wise work 2-3x slower: every row of a step landed
on its own page). The gate rows are kept permuted: member k of
the team (see :mod:`rnnkit.nn.recurrent.team`) owns hidden units [lo, hi) and the 4 (hi - lo) rows
g, i, f, o of those units, contiguous, so its forward step is one GEMM with its own weight rows, the
element-wise update of its units and one barrier; its backward step multiplies its own gate gradients and,
after the barrier, computes dL/dh of its units from the gate gradients of all units. The parameters keep
PyTorch's layout and gate order (i, f, g, o); the permuted copies are rebuilt from them at every call.
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent import team
from rnnkit.nn.recurrent.core import Core, flush_tiny, freeze, outputs
from rnnkit.nn.recurrent.tokens import TokenSteps, token_sums

ORDER = (2, 0, 1, 3)  # internal gate blocks g, i, f, o, as indices into PyTorch's (i, f, g, o)
MIN_UNITS = 48  # automatic team size: at least this many hidden units per member
MIN_WORK = 4096  # ... and batch * hidden at least this (below, the barrier costs more than it saves)

_controller = None


def _blas_limit_one():
    """Context manager: BLAS single-threaded while a team runs (two members x two BLAS threads would
    oversubscribe the cores). threadpoolctl's controller is built once (~6 us per use afterwards)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


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

    ``threads`` (class or instance attribute) is the team size for forward and backward: None chooses it
    from the cores available and the problem size (one member for small layers); 1 runs on the calling
    thread alone. Results are deterministic for a given team size.
    """

    gates = ("i", "f", "g", "o")
    n_state = 2
    threads: int | None = None
    takes_tokens = True

    def __init__(self, input_size, hidden_size, *, forget_bias: float | None = 1.0, dtype=np.float32, rng):
        super().__init__(input_size, hidden_size, dtype=dtype, rng=rng)
        H = hidden_size
        if forget_bias is not None:
            self.params["b_x"][H:2 * H] = forget_bias
            self.params["b_h"][H:2 * H] = 0.0
        # step(): sigmoid(a) = 0.5 tanh(0.5 a) + 0.5 and tanh(a) share one tanh call over all 4H columns
        self._scale = np.full(4 * H, 0.5, dtype=self.dtype)
        self._scale[2 * H:3 * H] = 1.0
        self._shift = np.full(4 * H, 0.5, dtype=self.dtype)
        self._shift[2 * H:3 * H] = 0.0
        self._fw = None  # what backward needs from the last forward; None once consumed

    # -- the team ---------------------------------------------------------------------------------
    def team_size(self, batch_size: int) -> int:
        H = self.hidden_size
        if self.threads is not None:
            return max(1, min(int(self.threads), H))
        if batch_size * H < MIN_WORK:
            return 1
        return max(1, min(team.available_cores(), 4, H // MIN_UNITS))

    def _run(self, size, fn, *args):
        if size == 1:
            fn(0, team.no_sync, *args)
            return
        with _blas_limit_one():
            team.run(size, fn, *args)

    def _columns(self, lo: int, hi: int):
        """(internal block j, PyTorch columns) for the units lo..hi-1 of each gate."""
        H = self.hidden_size
        return [(j, slice(g * H + lo, g * H + hi)) for j, g in enumerate(ORDER)]

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False):
        self.drain()
        T, B, D = xs.shape
        H = self.hidden_size
        size = self.team_size(B)
        parts = team.shares(H, size)
        for name, shape in (("xg", (T, 4 * H, B)), ("hs", (T + 1, H, B)), ("cs", (T + 1, H, B)),
                            ("tanh_cs", (T, H, B)), ("WhT", (4 * H, H)), ("WxT", (4 * H, D))):
            self.buffer(name, shape)
        for k, (lo, hi) in enumerate(parts):
            self.buffer(f"tmp{k}", (4 * (hi - lo), B))
            self.buffer(f"tmpn{k}", (hi - lo, B))
        w = self._work
        w["hs"][0] = state[0].T
        w["cs"][0] = state[1].T
        m = None if mask is None else mask.reshape(T, 1, B)
        self._fw = None
        self._run(size, self._forward_member, parts, xs, m)
        self._fw = (parts, xs, mask)
        self._parts = parts  # kept after backward (which leaves the gates intact) for gate_values()
        ys = np.ascontiguousarray(w["hs"][1:].transpose(0, 2, 1))
        return outputs(ys, mask), (w["hs"][T].T.copy(), w["cs"][T].T.copy())

    def _forward_member(self, k, sync, parts, xs, m):
        lo, hi = parts[k]
        n = hi - lo
        T = xs.shape[0]
        p, w = self.params, self._work
        rows = slice(4 * lo, 4 * hi)
        WhT, WxT, xg = w["WhT"][rows], w["WxT"][rows], w["xg"][:, rows]
        fused_bias = p["b_x"] + p["b_h"]
        bias = np.empty((4 * n, 1), self.dtype)
        for j, cols in self._columns(lo, hi):
            blk = slice(j * n, (j + 1) * n)
            WhT[blk] = p["W_h"][:, cols].T
            WxT[blk] = p["W_x"][:, cols].T
            bias[blk, 0] = fused_bias[cols]
        # sigmoid(a) = 0.5 tanh(a / 2) + 0.5: the i, f, o rows of the pre-activations are halved up front
        # (in the recurrent weights and the input projections; exact in binary), so that one tanh call
        # covers all four gates and two more calls finish the sigmoids
        WhT[n:] *= 0.5
        if isinstance(xs, TokenSteps):  # the projection of each token, then a lookup per step
            table = WxT @ xs.table.T
            table += bias
            table[n:] *= 0.5
            for t in range(T):
                np.take(table, xs.ids[t], axis=1, out=xg[t], mode="clip")
        else:
            np.matmul(WxT, xs.transpose(0, 2, 1), out=xg)  # input projections of all T steps, (T, 4n, B)
            xg += bias
            xg[:, n:] *= 0.5
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
    def backward_loop(self, dys, dstate):
        if self._fw is None:
            raise RuntimeError("backward was already called for this forward (it consumes the forward's "
                               "buffers); run forward again, or sum the output gradients into one backward")
        parts, xs, mask = self._fw
        self._fw = None
        T, B, D = xs.shape
        H = self.hidden_size
        self.buffer("dg", (T, 4 * H, B))
        self.buffer("A", (T, H, B))
        self.buffer("Wh_p", (H, 4 * H))
        self.buffer("h_cat", (H, T * B))
        tokens = isinstance(xs, TokenSteps)
        if tokens:  # the gradient of the projected table, (V, 4H) in PyTorch's column order
            dxs = np.empty((xs.table.shape[0], 4 * H), dtype=self.dtype)
        else:
            dxs = np.empty((T, B, D), dtype=self.dtype)
        dstate0 = (np.empty((B, H), dtype=self.dtype), np.empty((B, H), dtype=self.dtype))
        dstate = (None, None) if dstate is None else dstate
        record = self.start_record(T, B)
        dys = None if dys is None else (dys if mask is None else dys * mask)
        m = None if mask is None else mask.reshape(T, 1, B)
        self._run(len(parts), self._backward_member, parts, xs, m, dys, dstate, dxs, dstate0, record)
        if tokens:  # projected table = table @ W_x: its gradient goes to W_x and to the table
            self.grads["W_x"] += xs.table.T @ dxs
            return dxs @ self.params["W_x"].T, dstate0
        return dxs, dstate0

    def _backward_member(self, k, sync, parts, xs, m, dys, dstate, dxs, dstate0, record):
        lo, hi = parts[k]
        n, H = hi - lo, self.hidden_size
        T, B, D = xs.shape
        w, p, grads = self._work, self.params, self.grads
        rows = slice(4 * lo, 4 * hi)
        xg, dg_all = w["xg"][:, rows], w["dg"]
        dg, A, tanh_cs = dg_all[:, rows], w["A"][:, lo:hi], w["tanh_cs"][:, lo:hi]
        Wp = w["Wh_p"][lo:hi]  # W_h rows of my units, columns in the internal (permuted) order of all units
        for lo2, hi2 in parts:
            n2 = hi2 - lo2
            for j, cols in self._columns(lo2, hi2):
                Wp[:, 4 * lo2 + j * n2:4 * lo2 + (j + 1) * n2] = p["W_h"][lo:hi, cols]
        # my rows of the states as one (n, T*B) matrix for the weight gradient (read by all after a sync)
        w["h_cat"][lo:hi].reshape(n, T, B)[...] = w["hs"][:T, lo:hi].transpose(1, 0, 2)
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
        dh = np.zeros((n, B), self.dtype) if dstate[0] is None else dstate[0][:, lo:hi].T.astype(self.dtype)
        dc = np.zeros((n, B), self.dtype) if dstate[1] is None else dstate[1][:, lo:hi].T.astype(self.dtype)
        now, tmp_n = np.empty((n, B), self.dtype), w[f"tmpn{k}"]
        carry_h = carry_c = None
        if m is not None:
            carry_h, carry_c = np.empty_like(dh), np.empty_like(dc)
        dy = None if dys is None else dys[:, :, lo:hi].transpose(0, 2, 1)  # (T, n, B) view
        for t in range(T - 1, -1, -1):
            if dy is None:
                now[...] = dh
            else:
                np.add(dy[t], dh, out=now)  # dL/dh_t: from the output at t and from step t+1
            if record is not None:
                record[t, :, lo:hi] = now.T
            if m is not None:  # past a sequence's end the gradient passes straight to the previous state
                np.multiply(now, 1 - m[t], out=carry_h)
                now *= m[t]
                np.multiply(dc, 1 - m[t], out=carry_c)
                dc *= m[t]
            np.multiply(now, A[t], out=tmp_n)
            dc += tmp_n  # dL/dc_t
            d = dg[t]
            d3 = d[:3 * n].reshape(3, n, B)
            d3 *= dc  # g, i, f rows
            d[3 * n:] *= now  # o rows
            dc *= f[t]  # dL/dc_{t-1} through c' = f c + i g
            sync()  # the gate gradients of every unit at step t are final
            np.matmul(Wp, dg_all[t], out=dh)  # dL/dh_{t-1} of my units
            if m is not None:
                dh += carry_h
                dc += carry_c
            if t % 4 == 0:
                flush_tiny(dh)
                flush_tiny(dc)
        dstate0[0][:, lo:hi] = dh.T
        dstate0[1][:, lo:hi] = dc.T
        # weight gradients of my gate rows: single GEMMs over all T*B columns
        dg_cat = np.ascontiguousarray(dg.transpose(1, 0, 2)).reshape(4 * n, T * B)
        dWhT = dg_cat @ w["h_cat"].T
        db = dg_cat.sum(axis=1)
        if isinstance(xs, TokenSteps):  # gradient of my columns of the projected table (dxs is (V, 4H))
            dtab = token_sums(dg_cat, xs.ids.reshape(-1), xs.table.shape[0])
            for j, cols in self._columns(lo, hi):
                dxs[:, cols] = dtab[j * n:(j + 1) * n].T
        else:
            dWxT = dg_cat @ xs.reshape(T * B, D)
            for j, cols in self._columns(lo, hi):
                grads["W_x"][:, cols] += dWxT[j * n:(j + 1) * n].T
            # input gradients, split by time steps (all gate rows are final since the loop's last sync)
            t_lo, t_hi = team.shares(T, len(parts))[k]
            if t_hi > t_lo:
                np.matmul(dg_all[t_lo:t_hi].transpose(0, 2, 1), w["WxT"], out=dxs[t_lo:t_hi])
        for j, cols in self._columns(lo, hi):
            blk = slice(j * n, (j + 1) * n)
            grads["W_h"][:, cols] += dWhT[blk].T
            grads["b_x"][cols] += db[blk]
            grads["b_h"][cols] += db[blk]

    # -- generation and introspection ------------------------------------------------------------
    def step(self, x, state, projected=False):
        h, c = state
        H = self.hidden_size
        p = self.params
        gt = x + p["b_x"] + p["b_h"] if projected else x @ p["W_x"] + (p["b_x"] + p["b_h"])
        gt += h @ p["W_h"]
        gt *= self._scale
        np.tanh(gt, out=gt)
        gt *= self._scale
        gt += self._shift
        c = gt[:, H:2 * H] * c
        c += gt[:, :H] * gt[:, 2 * H:3 * H]
        h = np.tanh(c)
        h *= gt[:, 3 * H:]
        return h, (h, c)

    def gate_values(self) -> dict[str, np.ndarray]:
        """Gate activations of the last forward, (T, B, H) per gate, in PyTorch's order."""
        xg, parts = self._work.get("xg"), getattr(self, "_parts", None)
        if xg is None or parts is None:
            return {}
        out = {}
        for torch_index, name in enumerate(self.gates):
            j = ORDER.index(torch_index)
            blocks = [xg[:, 4 * lo + j * (hi - lo):4 * lo + (j + 1) * (hi - lo)] for lo, hi in parts]
            out[name] = np.concatenate(blocks, axis=1).transpose(0, 2, 1)  # (T, B, H)
        return out
