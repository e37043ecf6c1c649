"""Pooling over time: (B, T, H) sequences with an optional (B, T) mask -> one (B, H) vector per case.

LastPool, MeanPool, MaxPool and AttentionPool (additive attention). Masked steps never reach the output
and get zero gradient. The pools without parameters keep a float input's dtype; AttentionPool casts to its own.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.masks import as_mask, sequence_input


class _Pool(Layer):
    """Shared checks: input (B, T, H), mask (B, T), every row with at least one valid step."""

    def _prepare(self, xs, mask):
        xs = np.asarray(xs)
        # without parameters there is nothing to match: keep a float input's dtype (like the activations)
        self._dtype = xs.dtype if not self.params and xs.dtype.kind == "f" else self.dtype
        xs = sequence_input(xs, self._dtype, type(self).__name__, getattr(self, "input_size", None))
        B, T, _ = xs.shape
        m = as_mask(mask, B, T, type(self).__name__)
        if m is not None:
            empty = np.flatnonzero(~m.any(axis=1))
            if empty.size:
                raise UserError(f"{type(self).__name__}: row(s) {empty[:5].tolist()} of the mask have no valid "
                                "step; every case needs at least one time step to pool")
            xs = np.where(m[:, :, None], xs, 0).astype(self._dtype, copy=False)  # padding may hold anything
        self._shape = xs.shape
        return xs, m

    def _dy(self, dy):
        if getattr(self, "_shape", None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        B, _, H = self._shape
        dy = np.asarray(dy, dtype=self._dtype)
        if dy.shape != (B, H):
            raise UserError(f"{type(self).__name__}.backward: dy must have shape {(B, H)}, got {dy.shape}")
        return dy


class LastPool(_Pool):
    """y[b] = xs[b, last valid step of row b] (the final step when there is no mask)."""

    def forward(self, xs, mask=None, training: bool = False):
        xs, m = self._prepare(xs, mask)
        B, T, _ = xs.shape
        # index of the last True: first True of the reversed row
        self._idx = np.full(B, T - 1) if m is None else T - 1 - np.argmax(m[:, ::-1], axis=1)
        return xs[np.arange(B), self._idx]

    def backward(self, dy):
        dy = self._dy(dy)
        dxs = np.zeros(self._shape, dtype=self._dtype)
        dxs[np.arange(dy.shape[0]), self._idx] = dy
        return dxs


class MeanPool(_Pool):
    """y[b] = mean of xs[b, t] over the valid steps t of row b."""

    def forward(self, xs, mask=None, training: bool = False):
        xs, m = self._prepare(xs, mask)
        B, T, _ = xs.shape
        w = np.ones((B, T), xs.dtype) if m is None else m.astype(xs.dtype)
        w /= w.sum(axis=1, keepdims=True)
        self._w = w  # (B, T), each row sums to 1
        return np.matmul(w[:, None, :], xs)[:, 0]  # (B, 1, T) @ (B, T, H)

    def backward(self, dy):
        dy = self._dy(dy)
        return self._w[:, :, None] * dy[:, None, :]


class MaxPool(_Pool):
    """y[b, h] = max of xs[b, t, h] over the valid steps; the gradient goes to the (first) argmax."""

    def forward(self, xs, mask=None, training: bool = False):
        xs, m = self._prepare(xs, mask)
        if m is not None:
            xs = np.where(m[:, :, None], xs, -np.inf)
        self._idx = np.argmax(xs, axis=1)[:, None, :]  # (B, 1, H)
        return np.take_along_axis(xs, self._idx, axis=1)[:, 0]

    def backward(self, dy):
        dy = self._dy(dy)
        dxs = np.zeros(self._shape, dtype=self._dtype)
        np.put_along_axis(dxs, self._idx, dy[:, None, :], axis=1)
        return dxs


class AttentionPool(_Pool):
    """Additive attention pooling over time (Bahdanau-style scores):

        u_t = tanh(h_t @ W + b)      W (H, A), b (A,)      u (B, T, A)
        s_t = u_t @ v                v (A,)                s (B, T)
        a   = softmax of s over the valid steps (0 at masked ones)
        y   = sum_t a_t h_t                                 y (B, H)

    After forward, ``weights_`` (B, T) holds ``a`` for inspection.
    """

    def __init__(self, input_size: int, attention_size: int, dtype=np.float32, rng=None):
        super().__init__(dtype)
        for name, v in (("input_size", input_size), ("attention_size", attention_size)):
            if int(v) != v or v < 1:
                raise UserError(f"AttentionPool: {name} must be a positive integer, got {v!r}")
        rng = as_rng(rng)
        self.input_size, self.attention_size = int(input_size), int(attention_size)
        H, A = self.input_size, self.attention_size
        k, kv = 1.0 / math.sqrt(H), 1.0 / math.sqrt(A)  # PyTorch nn.Linear's ranges for H->A and A->1
        self.W = self.add_param("W", rng.uniform(-k, k, size=(H, A)))
        self.b = self.add_param("b", rng.uniform(-k, k, size=A))
        self.v = self.add_param("v", rng.uniform(-kv, kv, size=A))
        self.weights_ = None

    def forward(self, xs, mask=None, training: bool = False):
        xs, m = self._prepare(xs, mask)
        B, T, H = xs.shape
        u = np.tanh(xs.reshape(B * T, H) @ self.W + self.b)  # (B*T, A)
        s = (u @ self.v).reshape(B, T)
        if m is not None:
            s = np.where(m, s, -np.inf)
        a = np.exp(s - s.max(axis=1, keepdims=True))  # exp(-inf) = 0 at masked steps
        a /= a.sum(axis=1, keepdims=True)
        self._xs, self._u, self.weights_ = xs, u, a
        return np.matmul(a[:, None, :], xs)[:, 0]  # (B, 1, T) @ (B, T, H)

    def backward(self, dy):
        dy = self._dy(dy)
        xs, u, a = self._xs, self._u, self.weights_
        B, T, H = xs.shape
        # y = sum_t a_t h_t
        dxs = a[:, :, None] * dy[:, None, :]
        da = np.matmul(xs, dy[:, :, None])[:, :, 0]  # (B, T)
        # a = softmax(s): ds = a * (da - sum a*da); zero where a is 0 (masked)
        ds = a * (da - np.sum(a * da, axis=1, keepdims=True))
        ds2 = ds.reshape(B * T)
        # s = u @ v
        self.grads["v"] += ds2 @ u
        # u = tanh(h W + b)
        dz = np.multiply.outer(ds2, self.v) * (1 - u * u)  # (B*T, A)
        self.grads["W"] += xs.reshape(B * T, H).T @ dz
        self.grads["b"] += dz.sum(axis=0)
        dxs += (dz @ self.W.T).reshape(B, T, H)
        return dxs
