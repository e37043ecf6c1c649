"""Synthetic sequence tasks for long-range memory, generated on the fly from an explicit ``rng``.

Adding problem, copy (delayed recall), temporal order, a repeating schedule with missed days, and a
tiny next-word corpus. Every generator returns a :class:`Batch` of NumPy arrays, batch-first ``(B, T, D)``;
labels are correct by construction and one seed gives the same arrays bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import as_rng


@dataclass
class Batch:
    """One batch of a sequence task.

    xs: (B, T, D) float inputs.  ys: targets, float (B, O) for regression at the last step,
    int (B,) for classification at the last step, or int (B, T) for a label at every step.
    loss_mask: (B, T) bool, the steps a per-step loss counts (None: every valid step).
    valid: (B, T) bool, True where the sequence has data (None: no padding); pass it to the layer as mask.
    """

    xs: np.ndarray
    ys: np.ndarray
    loss_mask: np.ndarray | None = None
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        return self.xs.shape[0]


def _check(n: int, length: int, minimum: int, name: str) -> None:
    if int(n) < 1:
        raise UserError(f"{name}: batch size must be at least 1, got {n}")
    if int(length) < minimum:
        raise UserError(f"{name}: length must be at least {minimum}, got {length}; pass a longer --length")


def one_hot(ids: np.ndarray, depth: int, dtype=np.float32) -> np.ndarray:
    """Integer ids of any shape -> one-hot float array of shape ``ids.shape + (depth,)``."""
    out = np.zeros(ids.shape + (depth,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


# -- adding problem -----------------------------------------------------------------------------
ADDING_BASELINE_MSE = 1.0 / 6.0  # Var(u1 + u2) for u ~ U(0, 1): the error of always predicting 1.0


def adding_problem(n: int, length: int, rng=None, dtype=np.float32) -> Batch:
    """Hochreiter & Schmidhuber (1997) adding problem, in its common two-channel form.

    Channel 0 holds ``length`` values drawn from U(0, 1); channel 1 marks exactly two steps with 1.0, one
    in the first half and one in the second half. The target ``ys`` (B, 1) is the sum of the two marked
    values. Predicting the mean 1.0 scores MSE 1/6 ~ 0.167; "solved" means MSE below 0.01.
    """
    _check(n, length, 2, "adding problem")
    rng = as_rng(rng)
    B, T = int(n), int(length)
    half = T // 2
    values = rng.random((B, T))
    first = rng.integers(0, half, size=B)
    second = rng.integers(half, T, size=B)
    markers = np.zeros((B, T))
    rows = np.arange(B)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    xs = np.stack([values, markers], axis=-1).astype(dtype)
    ys = (values[rows, first] + values[rows, second])[:, None].astype(dtype)
    return Batch(xs, ys)


# -- copy / delayed recall -----------------------------------------------------------------------
def copy_task(n: int, delay: int, rng=None, num_symbols: int = 8, k: int = 5, dtype=np.float32) -> Batch:
    """Remember ``k`` symbols, wait ``delay`` blank steps, then reproduce them after a "go" marker.

    Ids 0..num_symbols-1 are symbols, ``num_symbols`` is blank, ``num_symbols + 1`` is go. The input is
    k symbols, ``delay`` blanks, go, k-1 blanks (T = 2k + delay); ``ys`` (B, T) is blank everywhere except
    the last k steps, which hold the symbols, and ``loss_mask`` selects those k steps. Chance: accuracy
    1/num_symbols (cross-entropy ln num_symbols); "solved" means recall accuracy of at least 0.99.
    """
    _check(n, delay, 1, "copy task")
    if num_symbols < 2 or k < 1:
        raise UserError(f"copy task: need num_symbols >= 2 and k >= 1, got {num_symbols} and {k}")
    rng = as_rng(rng)
    B, T = int(n), 2 * k + int(delay)
    blank, go = num_symbols, num_symbols + 1
    symbols = rng.integers(0, num_symbols, size=(B, k))
    ids = np.full((B, T), blank, dtype=np.int64)
    ids[:, :k] = symbols
    ids[:, k + delay] = go
    ys = np.full((B, T), blank, dtype=np.int64)
    ys[:, T - k:] = symbols
    loss_mask = np.zeros((B, T), dtype=bool)
    loss_mask[:, T - k:] = True
    return Batch(one_hot(ids, num_symbols + 2, dtype), ys, loss_mask)


# -- temporal order ---------------------------------------------------------------------------------
ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")  # four distractors, two relevant, begin, end
ORDER_CLASSES = ("XX", "XY", "YX", "YY")


def temporal_order(n: int, length: int, rng=None, dtype=np.float32) -> Batch:
    """Hochreiter & Schmidhuber (1997) experiment 6a: classify the order of two marked symbols.

    A sequence starts with B and ends with E; between them are random distractors a-d, except at one
    step t1 in [0.1T, 0.2T] and one step t2 in [0.5T, 0.6T], which hold X or Y. ``ys`` (B,) is the class
    of the pair: 0 XX, 1 XY, 2 YX, 3 YY. Chance accuracy is 0.25; "solved" means accuracy >= 0.99.
    """
    _check(n, length, 6, "temporal order")
    rng = as_rng(rng)
    B, T = int(n), int(length)
    ids = rng.integers(0, 4, size=(B, T))
    ids[:, 0], ids[:, -1] = 6, 7
    lo1, hi1 = max(1, round(0.1 * T)), max(1, round(0.2 * T))
    lo2, hi2 = max(hi1 + 1, round(0.5 * T)), min(T - 2, max(hi1 + 1, round(0.6 * T)))
    t1 = rng.integers(lo1, hi1 + 1, size=B)
    t2 = rng.integers(lo2, hi2 + 1, size=B)
    first = rng.integers(0, 2, size=B)  # 0 -> X, 1 -> Y
    second = rng.integers(0, 2, size=B)
    rows = np.arange(B)
    ids[rows, t1] = 4 + first
    ids[rows, t2] = 4 + second
    ys = (2 * first + second).astype(np.int64)
    return Batch(one_hot(ids, len(ORDER_SYMBOLS), dtype), ys)


# -- repeating schedule with missed days --------------------------------------------------------------
SUBJECTS = ("math", "science", "literature")
MISSED = len(SUBJECTS)  # input id meaning "nothing observed today"


def schedule(n: int, length: int, rng=None, p_missed: float = 0.3, dtype=np.float32) -> Batch:
    """A class timetable that cycles math -> science -> literature -> math ... with days missed.

    Step t shows the subject observed on day t, or the "missed" token (probability ``p_missed``; day 0 is
    always observed); ``ys`` (B, T) is the subject of day t + 1. After a missed day the network has to rely
    on what it predicted for that day, carried in its state. Chance accuracy is 1/3; "solved" means
    accuracy >= 0.99 on every step. The number of missed days is ``(xs[..., MISSED] == 1).sum()``.
    """
    _check(n, length, 2, "schedule")
    if not 0.0 <= p_missed < 1.0:
        raise UserError(f"schedule: p_missed must be in [0, 1), got {p_missed}")
    rng = as_rng(rng)
    B, T = int(n), int(length)
    start = rng.integers(0, 3, size=(B, 1))
    days = (start + np.arange(T + 1)) % 3  # (B, T+1): subject of each day
    missed = rng.random((B, T)) < p_missed
    missed[:, 0] = False
    ids = np.where(missed, MISSED, days[:, :T])
    return Batch(one_hot(ids, len(SUBJECTS) + 1, dtype), days[:, 1:].astype(np.int64))


# -- next-word corpus -------------------------------------------------------------------------------------
SENTENCES = (
    "the baker bakes warm bread every morning .",
    "my sister reads old books by the window .",
    "a small dog chases the red ball in the garden .",
    "our teacher writes long notes on the board .",
    "every child loves the story about the brave fox .",
    "this river flows past the quiet town to the sea .",
)
PAD = "<pad>"


class WordCorpus:
    """A handful of short sentences as next-word data: word ``t`` of a sentence predicts word ``t + 1``.

    Each sentence starts with a different word, so given the first word the rest is determined; words
    like "the" recur mid-sentence, so the model must remember which sentence it is in. ``vocab_`` lists
    the words (index 0 is the padding token).
    """

    def __init__(self, sentences=SENTENCES):
        self.sentences = [s.split() for s in sentences]
        if not self.sentences or min(len(s) for s in self.sentences) < 2:
            raise UserError("word corpus: every sentence needs at least two words")
        words = sorted({w for s in self.sentences for w in s})
        self.vocab_ = [PAD] + words
        self.index_ = {w: i for i, w in enumerate(self.vocab_)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab_)

    def encode(self, words) -> np.ndarray:
        unknown = [w for w in words if w not in self.index_]
        if unknown:
            raise UserError(f"word corpus: unknown words {unknown}; use words from: {' '.join(self.vocab_[1:])}")
        return np.array([self.index_[w] for w in words], dtype=np.int64)

    def decode(self, ids) -> list[str]:
        return [self.vocab_[int(i)] for i in ids]

    def batch(self, dtype=np.float32) -> Batch:
        """All sentences, padded at the end: xs one-hot (S, T, V), ys (S, T) next-word ids, valid (S, T)."""
        S, T = len(self.sentences), max(len(s) for s in self.sentences) - 1
        inputs = np.zeros((S, T), dtype=np.int64)
        ys = np.zeros((S, T), dtype=np.int64)
        valid = np.zeros((S, T), dtype=bool)
        for i, sentence in enumerate(self.sentences):
            ids = self.encode(sentence)
            inputs[i, : len(ids) - 1] = ids[:-1]
            ys[i, : len(ids) - 1] = ids[1:]
            valid[i, : len(ids) - 1] = True
        return Batch(one_hot(inputs, self.vocab_size, dtype), ys, valid.copy(), valid)
