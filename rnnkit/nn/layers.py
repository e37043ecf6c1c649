"""Feed-forward layers: Dense, Embedding, Dropout, Sequential and the activation layers.

Every layer follows :class:`rnnkit.nn.base.Layer`: ``forward(x, training=False) -> y`` keeps what backward
needs, ``backward(dy) -> dx`` accumulates parameter gradients with ``+=``. Dense and Embedding accept any
leading shape, so the same layer serves ``(B, D)`` batches and ``(B, T, D)`` sequences.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn import activations as act
from rnnkit.nn import init as winit
from rnnkit.nn.base import Layer, as_rng

# Below this vocabulary size the embedding gradient is one (V, N) @ (N, E) GEMM with a one-hot matrix,
# which beats np.add.at several times over (measured on 6400 indices, E=128); above it, add.at wins.
_ONE_HOT_MAX_V = 256


def _float_input(x, dtype: np.dtype, layer: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise UserError(f"{layer}: input has dtype {x.dtype}; pass a real-valued float array")
    return x if x.dtype == dtype else x.astype(dtype)


class Dense(Layer):
    """y = x @ W + b on the last axis: x (..., in) -> y (..., out); W (in, out), b (out,).

    Initialised like PyTorch's ``nn.Linear`` (U(-1/sqrt(in), 1/sqrt(in)) for W and b) unless
    ``init="xavier"`` or ``"he"``.
    """

    def __init__(self, in_features: int, out_features: int, dtype=np.float32, rng=None,
                 bias: bool = True, init: str = "torch"):
        super().__init__(dtype)
        rng = as_rng(rng)
        self.in_features, self.out_features = int(in_features), int(out_features)
        shape = (self.in_features, self.out_features)
        if init == "torch":
            k = 1.0 / math.sqrt(self.in_features)
            W = rng.uniform(-k, k, size=shape)
        elif init == "xavier":
            W = winit.xavier_uniform(shape, rng, np.float64)
        elif init == "he":
            W = winit.kaiming_uniform(shape, rng, np.float64)
        else:
            raise UserError(f"Dense: unknown init {init!r}; use 'torch', 'xavier' or 'he'")
        self.W = self.add_param("W", W)
        self.b = None
        if bias:
            k = 1.0 / math.sqrt(self.in_features)
            self.b = self.add_param("b", rng.uniform(-k, k, size=self.out_features))
        self._x2 = None
        self._lead = None

    def forward(self, x, training: bool = False):
        x = _float_input(x, self.dtype, "Dense")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            got = "a scalar" if x.ndim == 0 else f"shape {x.shape} (last axis {x.shape[-1]})"
            raise UserError(
                f"Dense: input last axis must be in_features={self.in_features}, got {got}; "
                f"reshape the input to (..., {self.in_features}) or build Dense({x.shape[-1] if x.ndim else '?'}, ...)"
            )
        self._lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        self._x2 = x2
        y = x2 @ self.W
        if self.b is not None:
            y += self.b
        return y.reshape(*self._lead, self.out_features)

    def backward(self, dy):
        if self._x2 is None:
            raise RuntimeError("Dense.backward called before forward")
        dy2 = np.asarray(dy, dtype=self.dtype).reshape(-1, self.out_features)
        if dy2.shape[0] != self._x2.shape[0]:
            raise UserError(f"Dense.backward: dy has shape {np.shape(dy)}, expected {(*self._lead, self.out_features)}")
        self.grads["W"] += self._x2.T @ dy2
        if self.b is not None:
            self.grads["b"] += np.ones(dy2.shape[0], self.dtype) @ dy2  # GEMV: faster than dy2.sum(0)
        return (dy2 @ self.W.T).reshape(*self._lead, self.in_features)


class Embedding(Layer):
    """Lookup table: int indices of any shape (...) -> vectors (..., embedding_dim); W (V, E), init N(0, 1).

    Backward accumulates rows of dW so that repeated indices add up; there is no input gradient
    (backward returns None).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype=np.float32, rng=None):
        super().__init__(dtype)
        rng = as_rng(rng)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.W = self.add_param("W", rng.standard_normal((self.num_embeddings, self.embedding_dim)))
        self._idx = None

    def forward(self, x, training: bool = False):
        idx = np.asarray(x)
        if idx.dtype.kind not in "iu":
            raise UserError(
                f"Embedding: indices must be an integer array, got dtype {idx.dtype}; "
                "convert token ids with .astype(np.int64)"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise UserError(
                f"Embedding: index out of range [0, {self.num_embeddings}): found min {idx.min()}, max {idx.max()}; "
                f"check the vocabulary size (num_embeddings={self.num_embeddings})"
            )
        self._idx = idx
        return np.take(self.W, idx, axis=0)

    def backward(self, dy):
        if self._idx is None:
            raise RuntimeError("Embedding.backward called before forward")
        flat = self._idx.reshape(-1)
        dy2 = np.asarray(dy, dtype=self.dtype).reshape(-1, self.embedding_dim)
        if dy2.shape[0] != flat.size:
            raise UserError(
                f"Embedding.backward: dy has shape {np.shape(dy)}, expected {(*self._idx.shape, self.embedding_dim)}"
            )
        dW = self.grads["W"]
        if self.num_embeddings <= _ONE_HOT_MAX_V:
            one_hot = np.zeros((self.num_embeddings, flat.size), dtype=self.dtype)
            one_hot[flat, np.arange(flat.size)] = 1
            dW += one_hot @ dy2
        else:
            np.add.at(dW, flat, dy2)
        return None


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p).

    With ``training=False`` (or p=0) it is the identity. The mask comes from the explicit ``rng``.
    """

    def __init__(self, p: float = 0.5, rng=None, dtype=np.float32):
        super().__init__(dtype)
        if not 0.0 <= p < 1.0:
            raise UserError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = as_rng(rng)
        self._mask = None

    def forward(self, x, training: bool = False):
        x = np.asarray(x)
        if not training or self.p == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= self.p
        self._mask = keep.astype(x.dtype)
        self._mask *= 1.0 / (1.0 - self.p)
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask


class Sequential(Layer):
    """Layers applied in order; parameters are shared under "<index>.<name>" (e.g. "0.W", "2.b")."""

    def __init__(self, *layers: Layer):
        dtypes = {layer.dtype for layer in layers if layer.params}
        if len(dtypes) > 1:
            raise UserError(f"Sequential: layers mix dtypes {sorted(d.name for d in dtypes)}; build them all with one dtype")
        super().__init__(dtypes.pop() if dtypes else np.float32)
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            self.add_child(str(i), layer)

    def forward(self, x, training: bool = False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner})"


class _Activation(Layer):
    """An elementwise activation: no parameters, keeps its output for backward."""

    def __init__(self, dtype=np.float32):
        super().__init__(dtype)
        self._y = None

    def _check(self):
        if self._y is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")


class Sigmoid(_Activation):
    def forward(self, x, training: bool = False):
        self._y = act.sigmoid(np.asarray(x))
        return self._y

    def backward(self, dy):
        self._check()
        y = self._y
        return dy * y * (1 - y)


class Tanh(_Activation):
    def forward(self, x, training: bool = False):
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy):
        self._check()
        y = self._y
        return dy * (1 - y * y)


class ReLU(_Activation):
    def forward(self, x, training: bool = False):
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, dy):
        self._check()
        return np.where(self._y > 0, dy, 0).astype(self._y.dtype, copy=False)


class Softmax(_Activation):
    """Softmax over the last axis. For a classifier, prefer raw logits with ``softmax_cross_entropy``."""

    def forward(self, x, training: bool = False):
        self._y = act.softmax(np.asarray(x), axis=-1)
        return self._y

    def backward(self, dy):
        self._check()
        return act.softmax_backward(self._y, dy, axis=-1)
