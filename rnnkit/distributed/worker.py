"""One data-parallel text worker (a Ray actor): a replica of the model and its optimizer, and the rows of the
training streams it owns, with their truncated-BPTT state. Each ``step`` first applies the previous update
(the clipped, averaged gradient the driver applied, so the weights stay identical), then returns its
gradient as one flat NumPy array with its loss and token count. This module does not import Ray."""
from __future__ import annotations

import math
import os
import socket
import time

import numpy as np

from rnnkit.nn.losses import softmax_cross_entropy
from rnnkit.nn.optim import Adam


def flat_views(flat: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views of a flat vector shaped like ``like`` (same key order), without copying."""
    out, i = {}, 0
    for k, a in like.items():
        out[k] = flat[i:i + a.size].reshape(a.shape)
        i += a.size
    return out


def flatten(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """All arrays of a dict, in key order, in one contiguous vector: one object to exchange per step."""
    return np.concatenate([a.ravel() for a in arrays.values()])


class TextWorker:
    """Rows ``xs (B_k, L)`` and targets ``ys`` of the streams, read ``seq_len`` columns per step."""

    def __init__(self, rank: int, vocab_size: int, arch: dict, xs: np.ndarray, ys: np.ndarray, seq_len: int,
                 lr: float, weight_decay: float, seed: int, threads: int | None):
        from threadpoolctl import threadpool_limits

        from rnnkit.tasks.text_model import build_model

        threadpool_limits(limits=threads or 1)  # one CPU per actor: BLAS and the layer team stay on it
        self.rank, self.seed, self.seq_len = rank, seed, int(seq_len)
        self.xs, self.ys = xs, ys  # read-only views from the object store; only sliced
        self.num_chunks = xs.shape[1] // self.seq_len
        self.model = build_model(vocab_size, arch, rng=seed)
        self.model.rnn.threads = threads or 1
        self.optimizer = Adam(self.model.params, lr=lr, weight_decay=weight_decay)
        self.state = self.model.initial_state(xs.shape[0])

    def info(self) -> dict:
        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "rows": int(self.xs.shape[0])}

    def sync(self, params: np.ndarray, optim_arrays: np.ndarray, optim_scalars: dict, state: tuple | None) -> None:
        """Overwrite weights, optimizer moments and (unless None) the carried state: at the start, and after
        the driver restored an earlier state."""
        for k, v in flat_views(params, self.model.params).items():
            self.model.params[k][...] = v
        arrays, _ = self.optimizer.state_dict()
        self.optimizer.load_state_dict(flat_views(optim_arrays, arrays), optim_scalars)
        if state is not None:
            self.state = tuple(np.array(s) for s in state)

    def get_state(self) -> tuple:
        return self.state

    def step(self, step: int, update: np.ndarray | None, lr: float, reset_state: bool):
        """Apply ``update`` (None: nothing to apply) at ``lr``, then the forward/backward of chunk ``step``.

        Returns ``(flat gradient, mean loss, tokens, compute seconds)``; the gradient is the mean over this
        worker's tokens (the driver weights it by ``tokens``).
        """
        t0 = time.perf_counter()
        model = self.model
        if update is not None:
            self.optimizer.lr = lr
            self.optimizer.step(flat_views(update, model.grads))
        k = step % self.num_chunks
        if reset_state or k == 0:  # a new epoch, or the driver saw a non-finite loss last step
            self.state = model.initial_state(self.xs.shape[0])
        if model.dropout:  # masks from (seed, step, rank): a resumed run draws the same ones
            model.rng.bit_generator.state = np.random.default_rng([self.seed, step, self.rank]).bit_generator.state
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        xs, ys = self.xs[:, cols].astype(np.intp), self.ys[:, cols].astype(np.intp)
        model.zero_grad()
        logits, state = model.forward(xs, self.state, training=True)
        loss, dlogits = softmax_cross_entropy(logits, ys)
        model.backward(dlogits)
        self.state = state if math.isfinite(loss) else model.initial_state(xs.shape[0])
        return flatten(model.grads), float(loss), int(ys.size), time.perf_counter() - t0
