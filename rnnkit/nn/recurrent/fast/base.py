"""What every fast core shares, whichever strategy runs its time loop: the parameters in PyTorch's layout,
reusable work buffers, the preamble of the reverse loop (:class:`StateGradient`), the mask arithmetic and a
few in-place helpers. The two strategies build on it side by side: ``rowmajor`` and ``featuremajor``.
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.base import Layer


class FastCore(Layer):
    """One layer, one direction, time-major: ``xs`` (T, B, D), each state array (B, S).

    Parameters (PyTorch's layout transposed, so ``x @ W_x`` is the projection): ``W_x`` (D, G*H), ``W_h``
    (R, G*H), ``b_x`` and ``b_h`` (G*H,), G gate blocks, R the size fed back (H; a Jordan core's output
    size). Two biases, as in PyTorch, so weights port both ways exactly.

    ``forward(xs, state, mask, training, projected)``: with ``projected`` the input is already ``x @ W_x``,
    (T, B, G*H), and ``backward`` returns the gradient of that instead of dxs (no dW_x). A backward inverts
    the last forward, once. Subclasses (a strategy, then a cell) write the loops.
    """

    gates: tuple[str, ...] = ("h",)
    n_state = 1  # arrays in the state: LSTM 2 (h, c), the others 1

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

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * self.n_state

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A scratch array kept between calls; reallocated only when the shape changes."""
        arr = self._work.get(name)
        if arr is None or arr.shape != shape:
            arr = np.empty(shape, dtype=self.dtype)
            self._work[name] = arr
        return arr

    def start_record(self, T: int, B: int) -> np.ndarray | None:
        """Where backward records dL/dh_t when ``record_dh`` is set, (T, B, H); else None."""
        self.dh_record_ = np.empty((T, B, self.hidden_size), dtype=self.dtype) if self.record_dh else None
        return self.dh_record_

    def input_grad(self, T: int, B: int, projected: bool) -> np.ndarray:
        """The array backward returns: (T, B, D); for projected input (T, B, G*H) as a time-major view of a
        batch-first array, so that the layer's batch-first copy of this large array costs nothing."""
        if projected:
            return np.empty((B, T, self.params["W_x"].shape[1]), dtype=self.dtype).transpose(1, 0, 2)
        return np.empty((T, B, self.input_size), dtype=self.dtype)

    def backward(self, dys, dstate):
        """dys (T, B, O) or None, dstate tuple of (B, S) (entries may be None) -> (dxs, dstate0 tuple).

        Accumulates into ``grads``. The output gradient past a sequence's end is zeroed here, once."""
        mask = self._mask
        if dys is not None and mask is not None:
            dys = dys * mask
        dstate = (None,) * self.n_state if dstate is None else tuple(dstate)
        return self.backward_loop(dys, dstate)

    # -- what a cell writes ---------------------------------------------------------------------
    def forward(self, xs, state, mask=None, training=False, projected=False):  # pragma: no cover
        """xs (T, B, D) (or (T, B, G*H) projected), state tuple of (B, S), mask (T, B, 1) of 0/1 or None;
        ``training`` says a backward will follow. Returns (outputs (T, B, O), zero where masked; final
        state tuple of new arrays)."""
        raise NotImplementedError

    def backward_loop(self, dys, dstate):  # pragma: no cover - interface
        raise NotImplementedError

    # -- one step (generation, streaming) ------------------------------------------------------------
    def step(self, x, state, projected: bool = False):
        """One step for generation: x (B, D) (or x W_x, (B, G*H)) -> (y, new state tuple of new arrays)."""
        xb = np.array(x, dtype=self.dtype) if projected else x @ self.params["W_x"]
        self.add_input_bias(xb, projected)
        state = tuple(np.array(s, dtype=self.dtype) for s in state)
        return self.advance(xb, state, self.step_buffers(xb.shape[0])), state

    def add_input_bias(self, xw: np.ndarray, projected: bool) -> None:
        """In place: x W_x (B, G*H) (or a table of it, (V, G*H)) plus the biases ``advance`` expects in its
        input; it adds the rest itself. Here b_x, then b_h (in this order: the sampled text stays the same
        bit for bit as in earlier versions)."""
        xw += self.params["b_x"]
        xw += self.params["b_h"]

    def step_buffers(self, batch_size: int) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        """The scratch arrays ``advance`` writes into, for ``batch_size`` rows (and views of them)."""
        raise NotImplementedError

    def advance(self, xb, state, work) -> np.ndarray:  # pragma: no cover - interface
        """One step in place, allocating nothing: ``xb`` (B, G*H) is x W_x with :meth:`add_input_bias`;
        ``state`` a tuple of (B, S) arrays, overwritten with the next state; ``work`` from
        :meth:`step_buffers`. Returns the output y (B, O) (the new h itself, or a buffer of ``work``): the
        hot loop of a character sampler (:class:`rnnkit.tasks.text_sampling.Stepper`)."""
        raise NotImplementedError

    def use_threads(self, threads: int | None) -> int | None:  # pragma: no cover - interface
        """Take the layer's ``threads=`` setting; return the BLAS threads for the layer's calls (None: leave
        BLAS as the caller set it)."""
        raise NotImplementedError

    def gate_values(self) -> dict[str, np.ndarray]:
        """Gate activations of the last forward, (T, B, H) per gate; empty for ungated cells."""
        return {}


class StateGradient:
    """The preamble of every reverse loop: one state's gradient flowing back, step by step.

    ``at(t)`` gives dL/d(state_t): the output gradient at t (already zero where masked) plus what came back
    from step t+1, recorded if asked, and split by the mask (past a sequence's end the gradient goes
    straight on to the previous state: the inverse of :func:`freeze`). The cell then writes the gradient for
    step t-1 into ``next`` and calls ``done(t)``, which adds that straight-through part and, in float32,
    flushes values below 1e-30 every fourth step (see :func:`flush_tiny`). With ``in_place`` (no output
    gradient, like the LSTM's cell state) ``at`` returns ``next`` itself, which the cell updates in place.

    Any layout: ``dys`` (T, *shape) or None, ``dstate`` of ``shape`` or None, ``mask`` (T, *m) broadcasting
    against ``shape`` or None, ``record`` (T, *shape) (a view is fine) or None.
    """

    def __init__(self, dys, dstate, shape, dtype, mask, record=None, in_place: bool = False):
        self.dys, self.mask, self.record = dys, mask, record
        self.next = np.zeros(shape, dtype) if dstate is None else np.array(dstate, dtype=dtype)
        self.now = self.next if in_place else np.empty_like(self.next)
        self.carry = np.empty_like(self.next) if mask is not None else None

    def at(self, t: int) -> np.ndarray:
        if self.dys is not None:
            np.add(self.dys[t], self.next, out=self.now)
        elif self.now is not self.next:
            self.now[...] = self.next
        if self.record is not None:
            self.record[t] = self.now
        if self.mask is not None:
            np.multiply(self.now, 1 - self.mask[t], out=self.carry)
            self.now *= self.mask[t]
        return self.now

    def done(self, t: int) -> None:
        if self.mask is not None:
            self.next += self.carry
        if t % 4 == 0:
            flush_tiny(self.next)


# -- masks: past a sequence's end the state is frozen ------------------------------------------------
def freeze(new: np.ndarray, prev: np.ndarray, m: np.ndarray) -> None:
    """In place: new = m * new + (1 - m) * prev, with m in {0, 1} broadcasting against new."""
    new -= prev
    new *= m
    new += prev


def outputs(states: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """What a core emits: its states, zeroed where the mask says the sequence has ended."""
    return states if mask is None else states * mask


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
