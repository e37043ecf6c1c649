"""The shared machinery of one recurrent layer in one direction (a "core").

A core works time-major, ``xs`` of shape (T, B, D), because each time step then reads one contiguous (B, .)
block. What every cell shares lives here: parameters in PyTorch's layout, the input projections of all T
steps as large GEMMs outside the time loop, the weight and input gradients as large GEMMs over the steps the
reverse loop has finished, reusable work buffers (no allocation inside the time loop), the mask arithmetic
that freezes the state past the end of a sequence, and one background thread that runs the large GEMMs while
the sequential loop runs (NumPy releases the GIL in BLAS). The Elman, Jordan and reset-before GRU cores
write only their time loops. The LSTM and (reset-after) GRU cores keep the parameters, buffers and state
bookkeeping of this class but run their own feature-major loops, shared by a team of threads (``teamcore``,
``team``) instead of the background thread. A backward inverts the last forward, once. The plain equations
these loops compute are in :mod:`rnnkit.nn.recurrent.reference`.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from rnnkit.nn.base import Layer

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit-background")
        return _POOL


def _forget_pool_in_child() -> None:
    """A forked child has no copy of the worker thread: it must start its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_in_background(fn, *args) -> Future | None:
    """Queue ``fn(*args)`` on the background thread; at interpreter exit (pool shut down) run it now, None."""
    try:
        return _pool().submit(fn, *args)
    except RuntimeError:
        fn(*args)
        return None


class Core(Layer):
    """One layer, one direction. Subclasses set ``gates`` and implement the forward and backward loops.

    Parameters (PyTorch layout transposed, so ``x @ W_x`` is the projection):
    ``W_x`` (D, G*H), ``W_h`` (R, G*H), ``b_x`` and ``b_h`` (G*H,), where G is the number of gate blocks and
    R the size of what is fed back (H, or the output size for a Jordan core). Two biases, as in PyTorch, so
    weights port both ways exactly.
    """

    gates: tuple[str, ...] = ("h",)
    n_state = 1  # how many arrays the state has: LSTM 2 (h, c), the others 1
    overlap = True  # large GEMMs and backward preparation on the background thread, during the loops
    takes_tokens = False  # forward accepts TokenSteps (see rnnkit.nn.recurrent.tokens) and returns their gradient

    def __init__(self, input_size: int, hidden_size: int, *, feedback_size: int | None = None,
                 dtype=np.float32, rng: np.random.Generator):
        super().__init__(dtype)
        G, H = len(self.gates), hidden_size
        R = hidden_size if feedback_size is None else feedback_size
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / np.sqrt(H)  # PyTorch's default U(-1/sqrt(H), 1/sqrt(H))
        self.add_param("W_x", rng.uniform(-bound, bound, (input_size, G * H)))
        self.add_param("W_h", rng.uniform(-bound, bound, (R, G * H)))
        self.add_param("b_x", rng.uniform(-bound, bound, G * H))
        self.add_param("b_h", rng.uniform(-bound, bound, G * H))
        self.record_dh = False
        self.dh_record_ = None  # (T, B, H) total dL/dh_t of the last backward, when record_dh is set
        self._work: dict[str, np.ndarray] = {}
        self._jobs: list[Future] = []  # every background job of this core not yet waited for
        self._input_jobs: dict[int, Future] = {}
        self._T = self._prepared_to = 0

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * self.n_state

    # -- work buffers ---------------------------------------------------------------------------
    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A scratch array kept between calls; reallocated only when the shape changes."""
        arr = self._work.get(name)
        if arr is None or arr.shape != shape:
            arr = np.empty(shape, dtype=self.dtype)
            self._work[name] = arr
        return arr

    # -- the forward's input side, and work handed to the background thread --------------------------
    def begin(self, xs: np.ndarray, fused_bias: np.ndarray, prepare_backward: bool,
              backward_buffers: dict[str, tuple[int, ...]]) -> np.ndarray:
        """Start a forward: the input projections xs W_x + bias of all T steps, (T, B, G*H).

        Done in chunks of :data:`CHUNK_ROWS` rows: the first now, the rest on the background thread ahead of
        the loop (``input_ready(t)`` waits for step t's chunk). With ``prepare_backward`` (a training
        forward), finished steps are also handed to ``prepare`` (``step_done(t)``), which computes the
        factors of the backward pass that depend on the forward alone, so backward starts with them ready.
        """
        self.drain()
        T, B, D = xs.shape
        W_x = self.params["W_x"]
        GH = W_x.shape[1]
        xg = self.buffer("xg", (T, B, GH))
        for name, shape in backward_buffers.items():  # allocated here, on the calling thread
            self.buffer(name, shape)

        def rows(lo, hi):
            np.matmul(xs[lo:hi].reshape(-1, D), W_x, out=xg[lo:hi].reshape(-1, GH))
            xg[lo:hi] += fused_bias

        chunk = max(1, CHUNK_ROWS // B)
        self._xs, self._T, self._chunk = xs, T, chunk
        self._prepare_on = bool(prepare_backward and self.overlap)
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
        """dys (T, B, O) or None, dstate tuple of (B, S) or None -> (dxs (T, B, D), dstate0 tuple).

        Accumulates into ``grads``. If the loop is interrupted, the background jobs it started are waited for
        before the exception goes on, so no gradient is written after it."""
        try:
            return self.backward_loop(dys, dstate)
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

    def start_record(self, T: int, B: int) -> np.ndarray | None:
        if not self.record_dh:
            self.dh_record_ = None
            return None
        self.dh_record_ = np.empty((T, B, self.hidden_size), dtype=self.dtype)
        return self.dh_record_

    # -- interface for subclasses -----------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False):  # pragma: no cover - interface
        """xs (T, B, D), state tuple of (B, S) arrays, mask (T, B, 1) of 0/1 or None; ``training`` says a
        backward will follow (its preparation then overlaps the loop).

        Returns (outputs (T, B, O) — zero where masked —, final state tuple of new arrays)."""
        raise NotImplementedError

    def backward_loop(self, dys, dstate):  # pragma: no cover - interface
        """The cell's reverse loop; see :meth:`backward`."""
        raise NotImplementedError

    def step(self, x, state, projected: bool = False):  # pragma: no cover - interface
        """One step for generation: x (B, D) (or its projection, (B, G*H)) -> (y, new state tuple)."""
        raise NotImplementedError

    def gate_values(self) -> dict[str, np.ndarray]:
        """Gate activations of the last forward, time-major (T, B, H) per gate; empty for ungated cells."""
        gates = self._work.get("xg")
        if gates is None or len(self.gates) < 2:
            return {}
        H = self.hidden_size
        return {name: gates[:, :, k * H:(k + 1) * H] for k, name in enumerate(self.gates)}


CHUNK_ROWS = 512  # rows (T*B) per chunk of background work: large enough for an efficient GEMM


class WeightGradients:
    """The gradients that need no time loop, computed as soon as the reverse loop has finished their steps.

    ``products`` is a list of ``(inputs (T, B, I), douts (T, B, O), weight name, bias name[, columns])``:
    for each, dW[:, columns] += sum_t inputs_t^T douts_t[..., columns] and db[columns] += sum_t douts_t; the first entry is the input side, which also
    gives dxs = douts W_x^T. The reverse loop calls :meth:`ready` with each finished step; every ``rows``
    rows (T*B) a chunk goes to a single background thread (NumPy releases the GIL in BLAS calls), so these
    GEMMs overlap the sequential loop on the second core. With ``core.overlap`` off they run inline. Chunks
    are fixed by T and B and run in order, so results are bit-identical from run to run.
    """

    def __init__(self, core: Core, products):
        self.core, self.products = core, products
        xs = products[0][0]
        T, B, D = xs.shape
        self.dxs = np.empty((T, B, D), dtype=core.dtype)
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
        grads, W_x = self.core.grads, self.core.params["W_x"]
        for inputs, douts, w_name, b_name, *cols in self.products:
            cols = cols[0] if cols else slice(None)  # a block of the weight's columns, or all of them
            i2 = inputs[lo:hi].reshape(-1, inputs.shape[2])
            d2 = douts[lo:hi, :, cols].reshape(-1, douts[:1, :1, cols].shape[2])
            grads[w_name][:, cols] += weight_grad(i2, d2)
            grads[b_name][cols] += d2.sum(axis=0)
        dgx = self.products[0][1]
        np.matmul(dgx[lo:hi].reshape(-1, dgx.shape[2]), W_x.T, out=self.dxs[lo:hi].reshape(-1, W_x.shape[0]))


class StateGradient:
    """One state's gradient flowing back through the reverse loop, with the bookkeeping every cell shares.

    ``at(t)`` gives dL/d(state_t): the output gradient at t (zero where masked) plus what came back from
    step t+1, recorded if asked, and split by the mask (past a sequence's end the gradient goes straight
    on to the previous state: the inverse of :func:`freeze`). The cell then writes the gradient for step
    t-1 into ``next`` and calls ``done(t)``, which adds that straight-through part and, in float32, flushes
    values below 1e-30 every fourth step (see :func:`flush_tiny`). With ``in_place`` (no output gradient,
    like the LSTM cell state) ``at`` returns ``next`` itself, which the cell then updates in place.
    """

    def __init__(self, dys, dstate, shape, dtype, mask, in_place: bool = False):
        self.dys = dys * mask if dys is not None and mask is not None else dys
        self.next = np.zeros(shape, dtype) if dstate is None else dstate.astype(dtype)
        self.now = self.next if in_place else np.empty_like(self.next)
        self.mask = mask
        self.carry = np.empty_like(self.next) if mask is not None else None

    def at(self, t: int, record: np.ndarray | None = None) -> np.ndarray:
        if self.dys is not None:
            np.add(self.dys[t], self.next, out=self.now)
        elif self.now is not self.next:
            self.now[...] = self.next
        if record is not None:
            record[t] = self.now
        if self.mask is not None:
            split_masked(self.now, self.mask[t], self.carry)
        return self.now

    def done(self, t: int) -> None:
        if self.mask is not None:
            self.next += self.carry
        if t % 4 == 0:
            flush_tiny(self.next)


# -- masks: past a sequence's end the state is frozen ------------------------------------------------
def freeze(new: np.ndarray, prev: np.ndarray, m: np.ndarray) -> None:
    """In place: new = m * new + (1 - m) * prev, with m in {0, 1} of shape (B, 1)."""
    new -= prev
    new *= m
    new += prev


def split_masked(d: np.ndarray, m: np.ndarray, carry: np.ndarray) -> None:
    """Inverse of :func:`freeze`: ``carry`` gets (1 - m) * d (it flows to the previous state), d keeps m * d."""
    np.multiply(d, 1 - m, out=carry)
    d *= m


def outputs(states: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What a core emits: its states, zeroed where the mask says the sequence has ended."""
    return states if mask is None else states * mask


def weight_grad(inputs: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """inputs.T @ dout over all T*B rows, computed as (dout.T @ inputs).T: OpenBLAS runs this orientation
    1.1-1.3x faster for (T*B, H) x (T*B, G*H) (measured at T*B=3200, H=256 and 512)."""
    return (dout.T @ inputs).T


FLUSH_BELOW = 1e-30  # float32 gradients below this are set to zero in the reverse loop (see flush_tiny)


def flush_tiny(a: np.ndarray) -> None:
    """In place, float32 only: zero the entries with |a| < 1e-30.

    A vanishing gradient shrinks geometrically through the reverse loop until it turns denormal, and x86
    arithmetic on denormals is many times slower (measured: a float32 Jordan backward at T=100, H=64 took
    4x as long as in float64). Values this small carry no information for a float32 model; float64 layers
    keep every value, so use float64 to see a gradient below 1e-30."""
    if a.dtype == np.float32:
        np.copyto(a, 0, where=np.abs(a) < FLUSH_BELOW)


def transposed(w: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of w.T: the per-step backward GEMM ``d @ W.T`` runs ~1.5x faster in OpenBLAS on
    a contiguous right operand than on the transposed view (measured at B=32, H=128..512)."""
    return np.ascontiguousarray(w.T)


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """In-place logistic sigmoid, as 0.5 * tanh(0.5 a) + 0.5 (stable for any a, and one transcendental)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a
