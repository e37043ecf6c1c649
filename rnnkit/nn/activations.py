"""Elementwise activations and their derivatives, as plain functions on NumPy arrays.

Derivatives are written in terms of the *output* (``dsigmoid_from_y(y) = y * (1 - y)``) because that is
what a layer keeps after forward; ``out=`` lets hot loops write into preallocated buffers.
"""
from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) as 0.5 * (1 + tanh(x / 2)): one transcendental, no overflow, keeps the dtype.

    Accuracy is absolute (about one ulp of 1.0), so values below ~1e-16 round to 0; gradients do not care.
    """
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def dsigmoid_from_y(y: np.ndarray) -> np.ndarray:
    """d sigmoid / dx given y = sigmoid(x)."""
    return y * (1 - y)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.tanh(x, out=out)


def dtanh_from_y(y: np.ndarray) -> np.ndarray:
    """d tanh / dx given y = tanh(x)."""
    return 1 - y * y


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(x, 0, out=out)


def drelu_from_y(y: np.ndarray) -> np.ndarray:
    """d relu / dx given y = relu(x) (0 at x = 0, like PyTorch)."""
    return (y > 0).astype(y.dtype)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the max so exp never overflows."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dL/dx for y = softmax(x): y * (dy - sum(dy * y))."""
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along ``axis`` (stable)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    s = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


ACTIVATIONS = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}
