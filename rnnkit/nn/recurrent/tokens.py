"""Token input for a recurrent layer: rows of an embedding table picked by integer ids.

When the input of the first layer is ``table[ids]`` (an embedding lookup), its projection ``table[ids] @ W_x``
equals ``(table @ W_x)[ids]``: a (V, G*H) product once per call and a row lookup per token instead of a
(T*B, E) x (E, G*H) GEMM, and in the backward pass the gradient of the (V, G*H) projected table (a sum of
the gate gradients per token) gives both dW_x and the table's gradient with (V, .) GEMMs instead of
(T*B, .) ones. ``RecurrentLayer.forward(Tokens(table, ids))`` takes this path; its ``backward`` then returns
the gradient of ``table`` (V, E) in place of the input gradient. Cores that know the trick (LSTM, GRU) use it;
for the others the stack materialises ``table[ids]`` and scatters the input gradient back.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.errors import UserError


class Tokens(NamedTuple):
    """``table`` (V, E) floats, ``ids`` (B, T) integers in [0, V): the input ``table[ids]`` of shape (B, T, E)."""

    table: np.ndarray
    ids: np.ndarray


class TokenSteps(NamedTuple):
    """What a core receives: the table and the ids time-major, (T, B)."""

    table: np.ndarray
    ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        T, B = self.ids.shape
        return T, B, self.table.shape[1]

    def materialize(self) -> np.ndarray:
        return self.table[self.ids]

    def reversed(self) -> "TokenSteps":
        return TokenSteps(self.table, np.ascontiguousarray(self.ids[::-1]))


def check_tokens(tokens: Tokens, input_size: int, dtype, who: str) -> Tokens:
    table = np.asarray(tokens.table)
    ids = np.asarray(tokens.ids)
    if table.ndim != 2 or table.shape[1] != input_size or table.dtype.kind != "f":
        raise UserError(f"{who}: Tokens.table must be a float array (vocabulary, {input_size}), got "
                        f"{table.dtype} {table.shape}")
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or min(ids.shape) < 1:
        raise UserError(f"{who}: Tokens.ids must be a non-empty integer array (batch, time), got {ids.dtype} "
                        f"{ids.shape}")
    if ids.min() < 0 or ids.max() >= table.shape[0]:
        raise UserError(f"{who}: Tokens.ids must lie in [0, {table.shape[0]}) (the table's rows), got "
                        f"{ids.min()}..{ids.max()}")
    if not np.isfinite(table).all():
        raise UserError(f"{who}: Tokens.table contains NaN or infinity")
    return Tokens(table.astype(dtype, copy=False), ids.astype(np.intp, copy=False))


def token_sums(d: np.ndarray, ids: np.ndarray, vocab: int) -> np.ndarray:
    """d (R, N) and ids (N,) -> (R, vocab): column v is the sum of the columns of d whose id is v.

    One GEMM with the one-hot matrix of the distinct ids present, (N, U): a fixed summation order (the same
    result from run to run) at BLAS speed, 2*R*N*U flops. (Sorted segment sums with np.add.reduceat, and
    np.add.at, were both ~10x slower at R=768, N=2048, U=65.) Meant for small vocabularies: CharRNN uses
    token input only when the vocabulary is at most a few times the embedding size."""
    present, inverse = np.unique(ids, return_inverse=True)
    onehot = np.zeros((ids.size, present.size), dtype=d.dtype)
    onehot[np.arange(ids.size), inverse.reshape(-1)] = 1
    out = np.zeros((d.shape[0], vocab), dtype=d.dtype)
    out[:, present] = d @ onehot
    return out


def scatter_rows(dxs: np.ndarray, ids: np.ndarray, vocab: int) -> np.ndarray:
    """dxs (T, B, E), ids (T, B) -> (vocab, E): the gradient of the table from the gradient of table[ids]."""
    E = dxs.shape[2]
    return token_sums(dxs.reshape(-1, E).T, ids.reshape(-1), vocab).T
