"""The reference time loop: one layer, one direction, run over a reference cell (``reference``) step by step.

Forward keeps every step's cache; backward walks the steps in reverse (backpropagation through time). Past a
sequence's end (mask 0) the state is carried over and the output is zero. This is what ``engine="reference"``
runs in place of a fast core, with the same interface (time-major ``xs`` (T, B, D), state tuples of (B, S)).
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.base import Layer


class ReferenceCore(Layer):
    """Runs ``cell(input_size, hidden_size, dtype=, rng=, **options)`` over time; its params are the cell's."""

    def __init__(self, input_size, hidden_size, *, cell, dtype=np.float32, rng, **options):
        super().__init__(dtype)
        self.cell = cell(input_size, hidden_size, dtype=dtype, rng=rng, **options)
        self.params, self.grads = self.cell.params, self.cell.grads  # the same dicts, not copies
        self.input_size, self.hidden_size = input_size, hidden_size
        self.gates, self.n_state = self.cell.gates, self.cell.n_state
        self.record_dh = False
        self.dh_record_ = None  # (T, B, H) total dL/dh_t of the last backward, when record_dh is set
        self._caches = self._mask = None
        self._gates: list[dict] = []

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size,) * self.n_state

    def use_threads(self, threads):
        """No threads of its own: ``threads`` BLAS threads (None: BLAS as the caller set it)."""
        return threads

    def forward(self, xs, state, mask=None, training=False, projected=False):
        """xs (T, B, D) (or x W_x, (T, B, G*H), when ``projected``), state tuple of (B, S), mask (T, B, 1) of
        0/1 or None -> (ys (T, B, O), final state)."""
        ys, caches = [], []
        for t in range(xs.shape[0]):
            if projected:
                y, new_state, cache = self.cell.forward(None, state, xw=xs[t])
            else:
                y, new_state, cache = self.cell.forward(xs[t], state)
            if mask is not None:  # past a sequence's end: the state is frozen and the output is zero
                m = mask[t]
                new_state = tuple(m * s_new + (1 - m) * s for s_new, s in zip(new_state, state))
                y = m * y
            ys.append(y)
            caches.append(cache)
            state = new_state
        self._caches, self._mask, self._batch = caches, mask, xs.shape[1]
        self._gates = [self.cell.gate_values(c) for c in caches]
        return np.stack(ys), tuple(np.array(s, dtype=self.dtype) for s in state)

    def backward(self, dys, dstate):
        """dys (T, B, O) or None, dstate tuple of (B, S) (entries may be None) -> (dxs (T, B, D), dstate0).

        Adds into ``grads``; consumes the forward's caches."""
        if self._caches is None:
            raise RuntimeError("backward was already called for this forward (it consumes the forward's "
                               "caches); run forward again, or sum the output gradients into one backward")
        caches, mask = self._caches, self._mask
        self._caches = None
        T = len(caches)
        B = self._batch
        ds = tuple(np.zeros((B, size), self.dtype) if dstate is None or dstate[j] is None
                   else np.array(dstate[j], dtype=self.dtype) for j, size in enumerate(self.state_sizes))
        record = np.empty((T, B, self.hidden_size), self.dtype) if self.record_dh else None
        dxs = []
        for t in range(T - 1, -1, -1):
            dy = np.zeros((B, self.output_size), self.dtype) if dys is None else dys[t]
            m = None if mask is None else mask[t]
            if m is not None:
                dy = m * dy  # the output past a sequence's end is zero
            if record is not None and self.cell.output_is_hidden:
                record[t] = dy + ds[0]
            if m is not None:  # inverse of the freeze: (1 - m) of the state's gradient skips the step
                skip = tuple((1 - m) * d for d in ds)
                ds = tuple(m * d for d in ds)
            dx, ds = self.cell.backward(dy, ds, caches[t])
            if record is not None and not self.cell.output_is_hidden:  # Jordan: the cell's dL/dh
                record[t] = self.cell.dh_
            if m is not None:
                ds = tuple(d + s for d, s in zip(ds, skip))
            dxs.append(dx)
        self.dh_record_ = record
        return np.stack(dxs[::-1]), ds

    def step(self, x, state, projected=False):
        """One step for generation: x (B, D) (or its projection x W_x, (B, G*H)) -> (y, new state)."""
        y, new_state, _ = self.cell.forward(None if projected else x, state, xw=x if projected else None)
        return y, new_state

    def gate_values(self) -> dict[str, np.ndarray]:
        """Gate activations of the last forward, (T, B, H) per gate; empty for ungated cells."""
        if not self._gates or not self._gates[0]:
            return {}
        return {name: np.stack([g[name] for g in self._gates]) for name in self.gates}
