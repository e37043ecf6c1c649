"""The Layer contract every part of the engine follows.

A layer owns two dicts with the same keys: ``params`` (the arrays it learns) and ``grads`` (what
``backward`` accumulates into with ``+=``). Arrays in both are never rebound after construction:
optimizers, ``zero_grad`` and loading all write in place, so a container can share them by reference.
"""
from __future__ import annotations

import numpy as np


class Layer:
    """Base class: ``params``/``grads`` dicts, ``forward``/``backward``, ``zero_grad``, sublayers."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    # -- parameters -------------------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a learnable array (cast to the layer's dtype) and its zeroed gradient."""
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[name] = arr
        self.grads[name] = np.zeros_like(arr)
        return arr

    def add_child(self, prefix: str, layer: "Layer") -> "Layer":
        """Share a sublayer's arrays under ``prefix.name`` (same objects, not copies)."""
        for k, v in layer.params.items():
            self.params[f"{prefix}.{k}"] = v
            self.grads[f"{prefix}.{k}"] = layer.grads[k]
        return layer

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0)

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, by name."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters in place; names and shapes must match exactly."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise ValueError(
                f"state dict does not match {type(self).__name__}: missing {missing}, unexpected {unexpected}"
            )
        for k, v in state.items():
            v = np.asarray(v)
            if v.shape != self.params[k].shape:
                raise ValueError(
                    f"parameter {k!r}: expected shape {self.params[k].shape}, got {v.shape}"
                )
            self.params[k][...] = v

    # -- computation ------------------------------------------------------------------------
    def forward(self, x, training: bool = False):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dy):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params={self.num_params():,}, dtype={self.dtype.name})"


def as_rng(rng) -> np.random.Generator:
    """An explicit Generator: pass one, or an int seed; None means a fresh unseeded generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
