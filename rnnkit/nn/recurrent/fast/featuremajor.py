"""The feature-major strategy, run by a team of threads: the LSTM and the (reset-after) GRU cores.

Layout. Every step is stored feature-major: gate pre-activations (T, G*H, B), states (T+1, H, B). The
per-step product is then W_h^T (G*H, H) times h_t (H, B), an orientation OpenBLAS runs ~1.35x faster than
h_t (B, H) times W_h (measured at B=32, H=384), and each member's share of a step is one contiguous block
(a (G*H, T*B) layout with strided steps made the element-wise work 2-3x slower: every row of a step landed
on its own page).

Team. Member k of the team (:mod:`.team`) owns hidden units [lo, hi) and the G (hi - lo) gate rows of those
units, contiguous, in the cell's internal gate ``order``. Its forward step is one GEMM with its own weight
rows, the element-wise update of its units and one barrier; its backward step multiplies its own gate
gradients and, after the barrier, computes dL/dh of its units from the gate gradients of all units; its
weight gradients follow the loop. The parameters keep PyTorch's layout and gate order; the permuted copies
are rebuilt from them at every call (a few hundred microseconds).
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.recurrent.fast import team
from rnnkit.nn.recurrent.fast.base import FastCore, StateGradient, outputs
from rnnkit.nn.recurrent.threads import blas_limit

MIN_UNITS = 48  # automatic team size: at least this many hidden units per member
MIN_WORK = 4096  # ... and batch * hidden at least this (below, the barrier costs more than it saves)
CHUNK_COLUMNS = 512  # steps*B per chunk of the weight gradients: enough for an efficient GEMM, and in cache


class FeatureMajorCore(FastCore):
    """A fast core whose loops run feature-major on a team of threads (see the module docstring).

    ``threads`` is the team size, from the layer's ``threads=``: None chooses it from the cores available and
    the problem size (one member for small layers); 1 runs on the calling thread alone. Results are
    deterministic for a given team size. Subclasses set ``order`` (internal gate blocks as indices into
    PyTorch's gate order) and write ``_forward_member`` and ``_backward_member``.
    """

    order: tuple[int, ...] = (0,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads: int | None = None
        self._fw = None  # what backward needs from the last forward; None once consumed
        self._parts = None  # the split of the last forward, kept for gate_values()
        self._mask = None

    # -- the team ---------------------------------------------------------------------------------
    def use_threads(self, threads):
        """A team of ``threads`` members (None: automatic), each calling BLAS single-threaded."""
        self.threads = threads
        return None if threads is None else 1

    def team_size(self, batch_size: int) -> int:
        H = self.hidden_size
        if self.threads is not None:
            return max(1, min(int(self.threads), H))
        if batch_size * H < MIN_WORK:
            return 1
        return max(1, min(team.available_cores(), 4, H // MIN_UNITS))

    def run(self, size: int, fn, *args) -> None:
        if size == 1:
            fn(0, team.no_sync, *args)
            return
        # BLAS single-threaded in the members (two members x two BLAS threads would oversubscribe the
        # cores); one team at a time also keeps that setting consistent
        with team.LOCK, blas_limit(1):
            team.run(size, fn, *args)

    def columns(self, lo: int, hi: int):
        """(internal block j, PyTorch columns) for the units lo..hi-1 of each gate."""
        H = self.hidden_size
        return [(j, slice(g * H + lo, g * H + hi)) for j, g in enumerate(self.order)]

    # -- forward ----------------------------------------------------------------------------------
    def start_forward(self, xs, state, mask, projected, buffers: dict[str, tuple[int, ...]]):
        """Size the team, allocate the buffers (here, on the calling thread), write the initial state.
        Returns the split [(lo, hi) per member] and the mask as (T, 1, B) (or None)."""
        T, B, D = xs.shape
        H, G = self.hidden_size, len(self.gates)
        parts = team.shares(H, self.team_size(B))
        shapes = {"xg": (T, G * H, B), "hs": (T + 1, H, B), "WhT": (G * H, H), "WxT": (G * H, self.input_size),
                  **buffers}
        for name, shape in shapes.items():
            self.buffer(name, shape)
        for k, (lo, hi) in enumerate(parts):
            self.buffer(f"tmp{k}", (G * (hi - lo), B))
            self.buffer(f"tmpn{k}", (hi - lo, B))
        self._work["hs"][0] = state[0].T
        self._fw = self._parts = None  # set again when this forward completes
        self._mask, self._projected = mask, projected
        return parts, None if mask is None else mask.reshape(T, 1, B)

    def member_weights(self, lo: int, hi: int, x_bias: np.ndarray):
        """This member's rows of W_h^T and W_x^T, and of ``x_bias`` (a (G*H,) bias in PyTorch's order) as a
        column: (WhT (G n, H), WxT (G n, D), bias (G n, 1))."""
        w, p = self._work, self.params
        n = hi - lo
        rows = slice(len(self.gates) * lo, len(self.gates) * hi)
        WhT, WxT = w["WhT"][rows], w["WxT"][rows]
        bias = np.empty((len(self.gates) * n, 1), self.dtype)
        for j, cols in self.columns(lo, hi):
            blk = slice(j * n, (j + 1) * n)
            WhT[blk] = p["W_h"][:, cols].T
            WxT[blk] = p["W_x"][:, cols].T
            bias[blk, 0] = x_bias[cols]
        return WhT, WxT, bias

    def project_inputs(self, lo, hi, xs, WxT, bias, halve: slice, xg) -> None:
        """xg (T, G n, B) = W_x^T x_t + bias for every step, the rows ``halve`` halved (the sigmoid gates:
        sigmoid(a) = 0.5 tanh(a / 2) + 0.5, and halving is exact in binary). Projected input: its columns
        of this member, transposed."""
        if self._projected:
            n = hi - lo
            for j, cols in self.columns(lo, hi):
                np.copyto(xg[:, j * n:(j + 1) * n], xs[:, :, cols].transpose(0, 2, 1))
        else:
            np.matmul(WxT, xs.transpose(0, 2, 1), out=xg)
        xg += bias
        xg[:, halve] *= 0.5

    def finish_forward(self, parts, xs, final_state):
        self._fw = (parts, None if self._projected else xs, xs.shape)  # projected input: not needed again
        self._parts = parts
        ys = np.ascontiguousarray(self._work["hs"][1:].transpose(0, 2, 1))
        return outputs(ys, self._mask), final_state

    # -- backward ---------------------------------------------------------------------------------
    def backward_buffers(self, T: int, B: int) -> dict[str, tuple[int, ...]]:  # pragma: no cover
        """The cell's own backward buffers, name -> shape."""
        raise NotImplementedError

    def backward_loop(self, dys, dstate):
        """Allocate, then run ``_backward_member(k, sync, parts, xs, m, dys, dstate, dxs, dstate0)`` on the
        team; see the cells for the member functions."""
        if self._fw is None:
            raise RuntimeError("backward was already called for this forward (it consumes the forward's "
                               "buffers); run forward again, or sum the output gradients into one backward")
        (parts, xs, (T, B, _)), self._fw = self._fw, None
        H, G = self.hidden_size, len(self.gates)
        for name, shape in {"Wh_p": (H, G * H), **self.backward_buffers(T, B)}.items():
            self.buffer(name, shape)
        if self._projected:  # written column block by column block
            dxs = self.input_grad(T, B, True)
        else:  # one (T, B, D) partial sum per member
            dxs = np.empty((len(parts), T, B, self.input_size), dtype=self.dtype)
        dstate0 = tuple(np.empty((B, H), dtype=self.dtype) for _ in range(self.n_state))
        self.start_record(T, B)
        m = None if self._mask is None else self._mask.reshape(T, 1, B)
        self.run(len(parts), self._backward_member, parts, xs, m, dys, dstate, dxs, dstate0, T)
        if not self._projected:
            dxs = dxs.sum(axis=0) if dxs.shape[0] > 1 else dxs[0]
        return dxs, dstate0

    def state_gradient(self, j: int, lo: int, hi: int, dys, dstate, m) -> StateGradient:
        """The reverse-loop bookkeeping of state j (0: h, records dL/dh) for this member's units, in its
        (n, B) layout."""
        B = self._work["hs"].shape[2]
        dy = None if dys is None or j else dys[:, :, lo:hi].transpose(0, 2, 1)  # (T, n, B) view
        d0 = None if dstate[j] is None else dstate[j][:, lo:hi].T
        record = None
        if j == 0 and self.dh_record_ is not None:
            record = self.dh_record_[:, :, lo:hi].transpose(0, 2, 1)
        return StateGradient(dy, d0, (hi - lo, B), self.dtype, m, record, in_place=dy is None and j > 0)

    def recurrent_rows(self, lo: int, hi: int, parts) -> np.ndarray:
        """W_h rows of my units with the columns in the internal (permuted) order of all units, (n, G*H)."""
        w, p, G = self._work, self.params, len(self.gates)
        Wp = w["Wh_p"][lo:hi]
        for lo2, hi2 in parts:
            n2 = hi2 - lo2
            for j, cols in self.columns(lo2, hi2):
                Wp[:, G * lo2 + j * n2:G * lo2 + (j + 1) * n2] = p["W_h"][lo:hi, cols]
        return Wp

    def write_projected(self, dxs, t: int, lo: int, hi: int, blocks) -> None:
        """Projected input: the x-side gate gradients of my units at step t, one (n, B) block per internal
        gate, are my columns of dxs[t] (B, G*H). Written in the reverse loop, while they are in cache."""
        for (j, cols), block in zip(self.columns(lo, hi), blocks):
            dxs[t][:, cols] = block.T

    def weight_grads(self, k: int, lo: int, hi: int, xs, dg: np.ndarray, dxs, x_rows=None) -> None:
        """After the reverse loop: accumulate dW_h, db_h, db_x and dW_x of my gate rows from their gradients
        dg (T, G n, B), and write my share of the input gradient into dxs (projected input: no dW_x, and dxs
        was written by the reverse loop). ``x_rows`` (T, n, B), if given, replaces the last gate block on the
        x side (the GRU's candidate, whose h side is multiplied by r). Done in chunks of steps copied to
        (G n, steps*B): GEMMs over all T*B rows without a second (T, G*H, B) array at the peak."""
        grads, p, w, n, G = self.grads, self.params, self._work, hi - lo, len(self.gates)
        T, _, B = dg.shape
        steps = max(1, CHUNK_COLUMNS // B)
        cat = self.buffer(f"cat{k}", (G * n, min(steps, T) * B))
        h_cat = self.buffer(f"hcat{k}", (p["W_h"].shape[0], min(steps, T) * B))
        dWhT = np.zeros((G * n, p["W_h"].shape[0]), self.dtype)
        db_h, db_x = np.zeros(G * n, self.dtype), np.zeros(G * n, self.dtype)
        dWxT = None if self._projected else np.zeros((G * n, self.input_size), self.dtype)
        WxT = w["WxT"][G * lo:G * hi]
        for t0 in range(0, T, steps):
            t1 = min(t0 + steps, T)
            c, h = cat[:, :(t1 - t0) * B], h_cat[:, :(t1 - t0) * B]
            c.reshape(G * n, t1 - t0, B)[...] = dg[t0:t1].transpose(1, 0, 2)
            h.reshape(-1, t1 - t0, B)[...] = w["hs"][t0:t1].transpose(1, 0, 2)  # h_{t-1} of every unit
            dWhT += c @ h.T  # a_h = h W_h + b_h
            db_h += c.sum(axis=1)
            if x_rows is not None:
                c[(G - 1) * n:].reshape(n, t1 - t0, B)[...] = x_rows[t0:t1].transpose(1, 0, 2)
            db_x += c.sum(axis=1)  # a_x = x W_x + b_x
            if not self._projected:  # (projected input: the reverse loop wrote dxs, see write_projected)
                dWxT += c @ xs[t0:t1].reshape(-1, self.input_size)
                np.matmul(c.T, WxT, out=dxs[k, t0:t1].reshape(-1, self.input_size))
        for j, cols in self.columns(lo, hi):
            blk = slice(j * n, (j + 1) * n)
            grads["W_h"][:, cols] += dWhT[blk].T
            grads["b_h"][cols] += db_h[blk]
            grads["b_x"][cols] += db_x[blk]
            if dWxT is not None:
                grads["W_x"][:, cols] += dWxT[blk].T

    # -- introspection ----------------------------------------------------------------------------
    def gate_values(self) -> dict[str, np.ndarray]:
        """Gate activations of the last forward, (T, B, H) per gate, in PyTorch's order."""
        xg, parts = self._work.get("xg"), self._parts
        if xg is None or parts is None:
            return {}
        G, out = len(self.gates), {}
        for torch_index, name in enumerate(self.gates):
            j = self.order.index(torch_index)
            blocks = [xg[:, G * lo + j * (hi - lo):G * lo + (j + 1) * (hi - lo)] for lo, hi in parts]
            out[name] = np.concatenate(blocks, axis=1).transpose(0, 2, 1)  # (T, B, H)
        return out
