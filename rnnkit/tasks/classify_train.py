"""Training one classifier network: length-bucketed batches, a stratified validation split, early stopping.

Everything here sees the training cases only; the caller's test data never reaches it. Model choice is by
validation loss on a split carved from the training data (stratified: every class with two or more cases
gives at least one case to validation), and the best parameters and BatchNorm statistics are kept.
"""
from __future__ import annotations

import time

import numpy as np

from rnnkit.nn.losses import softmax_cross_entropy
from rnnkit.nn.optim import Adam
from rnnkit.train import Callback, StopTraining, fit


class Padded:
    """Cases padded at the end into one array: xs (N, T_max, C), lengths (N,). Batches crop to their longest."""

    def __init__(self, cases: list[np.ndarray], dtype=np.float32):
        self.lengths = np.array([c.shape[1] for c in cases], dtype=np.int64)
        C = cases[0].shape[0]
        self.xs = np.zeros((len(cases), int(self.lengths.max()), C), dtype=dtype)
        with np.errstate(over="ignore"):  # beyond float32 becomes inf (the rocket model refuses it by name)
            for i, c in enumerate(cases):
                self.xs[i, : c.shape[1]] = c.T

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx: np.ndarray):
        """(xs (B, T, C), mask (B, T) or None when every case in the batch has the same length)."""
        lens = self.lengths[idx]
        T = int(lens.max())
        xs = self.xs[idx, :T]
        mask = None if lens.min() == T else np.arange(T)[None, :] < lens[:, None]
        return xs, mask


def stratified_split(y: np.ndarray, val_size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): about ``val_size`` of each class to validation, at least one case of every class
    with two or more, and at least one left for training. Empty validation when no class has two cases."""
    train, val = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_val = 0 if len(idx) < 2 or val_size <= 0 else min(len(idx) - 1, max(1, int(round(val_size * len(idx)))))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of shuffled batches in which cases of similar length go together (less padding):
    shuffle, sort within chunks of 8 batches by length, cut, shuffle the batches."""
    perm = rng.permutation(len(lengths))
    chunk = 8 * batch_size
    batches = []
    for a in range(0, len(perm), chunk):
        part = perm[a: a + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[b: b + batch_size] for b in range(0, len(part), batch_size))
        if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm needs two cases: no batch of one
            batches[-2:] = [np.concatenate(batches[-2:])]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Epochs:
    """A re-iterable for fit(): each pass is a freshly shuffled epoch of (xs, mask, ys) batches."""

    def __init__(self, data: Padded, ys: np.ndarray, idx: np.ndarray, batch_size: int, rng):
        self.data, self.ys, self.idx, self.batch_size, self.rng = data, ys, idx, batch_size, rng

    def __iter__(self):
        for b in bucketed_batches(self.data.lengths[self.idx], self.batch_size, self.rng):
            rows = self.idx[b]
            xs, mask = self.data.batch(rows)
            yield xs, mask, self.ys[rows]


def predict_logits(net, data: Padded, idx: np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
    """Logits (N, K) in evaluation mode, in length-sorted batches, returned in the original order."""
    idx = np.arange(len(data)) if idx is None else np.asarray(idx)
    order = np.argsort(data.lengths[idx], kind="stable")  # positions in idx, shortest case first
    out = np.empty((len(idx), net.head.out_features), dtype=np.float64)
    for a in range(0, len(order), batch_size):
        pos = order[a: a + batch_size]
        xs, mask = data.batch(idx[pos])
        out[pos] = net.forward(xs, mask=mask, training=False)
    return out


class _KeepBest(Callback):
    """Keep the parameters and BatchNorm statistics of the best validation score; stop after ``patience``
    evaluations without improvement, or when the time budget is spent. ``monitor`` "val_loss": lowest
    loss; "val_acc": highest accuracy, ties broken by the lower loss."""

    def __init__(self, net, patience: int, deadline: float | None, monitor: str = "val_loss"):
        self.net, self.patience, self.deadline, self.monitor = net, patience, deadline, monitor
        self.best, self.best_step, self.bad, self.saved = None, 0, 0, None

    def _key(self, record) -> tuple:
        if self.monitor == "val_acc":
            return (-record["val_acc"], record["val_loss"])
        return (record["val_loss"],)

    def _state(self):
        return {**{k: v.copy() for k, v in self.net.params.items()},
                **{k: v.copy() for k, v in self.net.buffers().items()}}

    def on_eval(self, record):
        key = self._key(record)
        if self.best is None or key < self.best:
            self.best, self.best_step, self.bad, self.saved = key, record["step"], 0, self._state()
        else:
            self.bad += 1
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return True
        return self.bad >= self.patience

    def on_end(self, history):
        if self.saved is not None:
            arrays = {**self.net.params, **self.net.buffers()}
            for k, v in self.saved.items():
                arrays[k][...] = v


class _Deadline(Callback):
    def __init__(self, deadline: float | None, stop=None):
        self.deadline, self.stop = deadline, stop  # stop: polled; the command maps Ctrl-C/SIGTERM to it

    def on_step(self, record):
        if (self.deadline is not None and time.perf_counter() > self.deadline) or (self.stop and self.stop()):
            raise StopTraining


def train_net(net, data: Padded, ys: np.ndarray, train_idx, val_idx, *, epochs: int, patience: int,
              batch_size: int, lr: float, weight_decay: float, minutes: float | None, rng, log=None,
              progress: bool = False, monitor: str = "val_loss", stop=None, parallel=None):
    """Train ``net`` in place; return (history, best_epoch). With an empty ``val_idx`` it trains for
    ``epochs`` epochs (or the time budget) and keeps the last parameters. ``parallel``: fit's data-parallel
    hook (rnnkit.distributed.fit_parallel.DataParallel), or None for one process."""
    opt = Adam(net.params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-len(train_idx) // batch_size))
    deadline = None if minutes is None else time.perf_counter() + 60.0 * minutes

    def train_step(batch):
        xs, mask, y = batch
        loss, dlogits = softmax_cross_entropy(net.forward(xs, mask=mask, training=True), y)
        net.backward(dlogits)
        return loss

    callbacks = [_Deadline(deadline, stop)]
    eval_fn = None
    keep = None
    if len(val_idx):
        def eval_fn():
            logits = predict_logits(net, data, val_idx)
            loss, _ = softmax_cross_entropy(logits, ys[val_idx])
            return {"val_loss": float(loss), "val_acc": float(np.mean(logits.argmax(1) == ys[val_idx]))}

        keep = _KeepBest(net, patience, deadline, monitor)
        callbacks.append(keep)
    history = fit(net, opt, train_step, _Epochs(data, ys, train_idx, batch_size, rng), epochs=epochs,
                  clip=5.0, eval_fn=eval_fn, eval_every=steps_per_epoch if eval_fn else None,
                  log_every=steps_per_epoch, callbacks=callbacks, log=log, progress=progress, parallel=parallel)
    best_epoch = (keep.best_step if keep is not None else history.steps) / steps_per_epoch
    return history, best_epoch
