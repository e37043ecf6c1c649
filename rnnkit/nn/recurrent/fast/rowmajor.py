"""The row-major strategy, with one background thread: the Elman, Jordan and reset-before GRU cores.

Every step reads and writes one contiguous (B, .) block of time-major arrays. The input projections of all
T steps are large GEMMs done in chunks ahead of the loop, the weight and input gradients large GEMMs over
the steps the reverse loop has finished, and the factors of the backward pass that need the forward alone
are computed while the forward loop goes on: all of that on one background thread (:mod:`.background`),
so it overlaps the sequential loop on the second core. The cells write only their loops and ``prepare``.
The plain equations these loops compute are in :mod:`rnnkit.nn.recurrent.reference`.
"""
from __future__ import annotations

from concurrent.futures import Future, wait

import numpy as np

from rnnkit.nn.recurrent.fast.background import run_in_background
from rnnkit.nn.recurrent.fast.base import FastCore

CHUNK_ROWS = 512  # rows (T*B) per chunk of background work: large enough for an efficient GEMM


class RowMajorCore(FastCore):
    """A fast core whose large GEMMs run on the background thread (``overlap``; see the module docstring).

    ``threads=1`` on the layer turns ``overlap`` off: everything inline on the calling thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.overlap = True  # large GEMMs and backward preparation on the background thread
        self._jobs: list[Future] = []  # every background job of this core not yet waited for
        self._input_jobs: dict[int, Future] = {}
        self._T = self._prepared_to = 0
        self._mask = None

    def use_threads(self, threads):
        """None: background thread on, BLAS as the caller set it; 1: all inline, one BLAS thread; N >= 2:
        the background thread and N - 1 BLAS threads."""
        self.overlap = threads is None or threads > 1
        return None if threads is None else max(1, threads - 1)

    # -- the forward's input side, and work handed to the background thread --------------------------
    def begin(self, xs, fused_bias, mask, training, projected, backward_buffers):
        """Start a forward: the input projections xs W_x + bias of all T steps, (T, B, G*H).

        Done in chunks of :data:`CHUNK_ROWS` rows: the first now, the rest on the background thread ahead of
        the loop (``input_ready(t)`` waits for step t's chunk). With ``training``, finished steps are also
        handed to ``prepare`` (``step_done(t)``), which computes the factors of the backward pass that depend
        on the forward alone, so backward starts with them ready."""
        self.drain()
        T, B, _ = xs.shape
        W_x = self.params["W_x"]
        GH = W_x.shape[1]
        xg = self.buffer("xg", (T, B, GH))
        for name, shape in backward_buffers.items():  # allocated here, on the calling thread
            self.buffer(name, shape)

        def rows(lo, hi):
            if projected:
                np.add(xs[lo:hi], fused_bias, out=xg[lo:hi])
            else:
                np.matmul(xs[lo:hi].reshape(-1, xs.shape[2]), W_x, out=xg[lo:hi].reshape(-1, GH))
                xg[lo:hi] += fused_bias

        chunk = max(1, CHUNK_ROWS // B)
        self._xs, self._T, self._chunk, self._mask, self._projected = xs, T, chunk, mask, projected
        self._prepare_on = bool(training and self.overlap)
        self._prepared_to = 0
        if self.overlap and T > chunk:
            rows(0, chunk)
            for lo in range(chunk, T, chunk):
                job = self.background(rows, lo, min(lo + chunk, T))
                if job is not None:
                    self._input_jobs[lo] = job
        else:
            rows(0, T)
        return xg

    def input_ready(self, t: int) -> None:
        """Before forward step t reads its input projection."""
        job = self._input_jobs.pop(t, None)
        if job is not None:
            job.result()

    def step_done(self, t: int) -> None:
        """After forward step t: a finished chunk goes to ``prepare`` on the background thread."""
        if self._prepare_on and (t + 1 - self._prepared_to >= self._chunk or t + 1 == self._T):
            self.background(self.prepare, self._prepared_to, t + 1)
            self._prepared_to = t + 1

    def prepared(self) -> None:
        """At the start of backward: the forward-only factors of every step are ready (computed now if not)."""
        if self._prepared_to < 0:
            raise RuntimeError("backward was already called for this forward (it consumes the forward's "
                               "buffers); run forward again, or sum the output gradients into one backward")
        complete = self._prepare_on and self._prepared_to == self._T
        self.drain()
        if not complete:
            self.prepare(0, self._T)
        self._prepared_to = -1  # consumed: backward overwrites these buffers

    def background(self, fn, *args) -> Future | None:
        """Run ``fn(*args)`` on the background thread (inline when ``overlap`` is off), remembered for drain()."""
        if not self.overlap:
            fn(*args)
            return None
        job = run_in_background(fn, *args)
        if job is not None:
            self._jobs.append(job)
        return job

    def drain(self) -> None:
        """Wait for every background job of this core (before its buffers are reused); then raise the first
        failure among them, if any. The layer stays usable after a failure."""
        jobs, self._jobs, self._input_jobs = self._jobs, [], {}
        wait(jobs)
        for job in jobs:
            if job.exception() is not None:
                raise job.exception()

    def backward(self, dys, dstate):
        """See :meth:`FastCore.backward`. If the loop is interrupted, the background jobs it started are
        waited for before the exception goes on, so no gradient is written after it."""
        try:
            return super().backward(dys, dstate)
        except BaseException:
            jobs, self._jobs, self._input_jobs = self._jobs, [], {}
            wait(jobs)
            raise

    def prepare(self, lo: int, hi: int) -> None:  # pragma: no cover - interface
        """Backward factors of steps lo..hi-1 that depend on the forward only (in the backward buffers)."""
        raise NotImplementedError

    def weight_grads(self, products) -> "WeightGradients":
        """Start the after-the-loop gradients; see :class:`WeightGradients`. ``products[0]`` is the input side."""
        return WeightGradients(self, products)

    def gate_values(self) -> dict[str, np.ndarray]:
        gates = self._work.get("xg")
        if gates is None or len(self.gates) < 2:
            return {}
        H = self.hidden_size
        return {name: gates[:, :, k * H:(k + 1) * H] for k, name in enumerate(self.gates)}


class WeightGradients:
    """The gradients that need no time loop, computed as soon as the reverse loop has finished their steps.

    ``products`` is a list of ``(inputs (T, B, I), douts (T, B, O), weight name, bias name[, columns])``:
    for each, dW[:, columns] += sum_t inputs_t^T douts_t[..., columns] and db[columns] += sum_t douts_t. The
    first entry is the input side, which also gives dxs = douts W_x^T (for projected input: dxs = douts, and
    no dW_x). The reverse loop calls :meth:`ready` with each finished step; every ``CHUNK_ROWS`` rows a chunk
    goes to the background thread (inline with ``overlap`` off). Chunks are fixed by T and B and run in
    order, so results are bit-identical from run to run.
    """

    def __init__(self, core: RowMajorCore, products):
        self.core, self.products = core, products
        T, B, _ = products[0][0].shape
        self.dxs = core.input_grad(T, B, core._projected)
        self.high, self.chunk = T, max(1, CHUNK_ROWS // B)

    def ready(self, t: int) -> None:
        """Steps t..T-1 are final."""
        if self.high - t >= self.chunk:
            self._submit(t, self.high)
            self.high = t

    def finish(self) -> np.ndarray:
        """Wait for every chunk; returns dxs (T, B, D)."""
        if self.high > 0:
            self._submit(0, self.high)
        self.core.drain()
        return self.dxs

    def _submit(self, lo: int, hi: int) -> None:
        self.core.background(self._rows, lo, hi)

    def _rows(self, lo: int, hi: int) -> None:
        grads, W_x, projected = self.core.grads, self.core.params["W_x"], self.core._projected
        for k, (inputs, douts, w_name, b_name, *cols) in enumerate(self.products):
            cols = cols[0] if cols else slice(None)  # a block of the weight's columns, or all of them
            d2 = douts[lo:hi, :, cols].reshape(-1, douts[:1, :1, cols].shape[2])
            if not (k == 0 and projected):
                grads[w_name][:, cols] += weight_grad(inputs[lo:hi].reshape(-1, inputs.shape[2]), d2)
            grads[b_name][cols] += d2.sum(axis=0)
        dgx = self.products[0][1]
        if projected:  # the gradient of x W_x is that of the pre-activations it enters
            self.dxs[lo:hi] = dgx[lo:hi]
        else:
            np.matmul(dgx[lo:hi].reshape(-1, dgx.shape[2]), W_x.T, out=self.dxs[lo:hi].reshape(-1, W_x.shape[0]))


def weight_grad(inputs: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """inputs.T @ dout over all T*B rows, computed as (dout.T @ inputs).T: OpenBLAS runs this orientation
    1.1-1.3x faster for (T*B, H) x (T*B, G*H) (measured at T*B=3200, H=256 and 512)."""
    return (dout.T @ inputs).T
