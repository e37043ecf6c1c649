"""Weight initialisers. Each takes an explicit ``rng: np.random.Generator`` and a dtype, returns a new array.

``fan_in``/``fan_out`` of a 2-D weight (in, out) are its first and second dimensions (rnnkit stores
weights as (in, out), the transpose of PyTorch's (out, in)).
"""
from __future__ import annotations

import math

import numpy as np


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


def xavier_uniform(shape, rng: np.random.Generator, dtype=np.float32, gain: float = 1.0) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tuple(shape))
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


glorot_uniform = xavier_uniform


def kaiming_normal(shape, rng: np.random.Generator, dtype=np.float32, gain: float = math.sqrt(2.0)) -> np.ndarray:
    """He et al. (2015): N(0, gain / sqrt(fan_in)); the default gain suits ReLU."""
    fan_in, _ = _fans(tuple(shape))
    return (rng.standard_normal(size=shape) * (gain / math.sqrt(fan_in))).astype(dtype)


def kaiming_uniform(shape, rng: np.random.Generator, dtype=np.float32, gain: float = math.sqrt(2.0)) -> np.ndarray:
    """He uniform: U(-a, a), a = gain * sqrt(3 / fan_in)."""
    fan_in, _ = _fans(tuple(shape))
    a = gain * math.sqrt(3.0 / fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)


he_normal = kaiming_normal
he_uniform = kaiming_uniform


def orthogonal(shape, rng: np.random.Generator, dtype=np.float32, gain: float = 1.0) -> np.ndarray:
    """Saxe et al. (2014): a (semi-)orthogonal matrix from the QR of a Gaussian, signs fixed by diag(R)."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the distribution uniform (Haar)
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def uniform_rnn(shape, hidden_size: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """PyTorch's RNN default: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias."""
    k = 1.0 / math.sqrt(hidden_size)
    return rng.uniform(-k, k, size=shape).astype(dtype)


def zeros(shape, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)
