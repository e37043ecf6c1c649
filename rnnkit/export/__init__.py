"""Leave rnnkit with a trained model: ONNX graphs (``to_onnx``, needs the optional ``onnx`` package) and
safetensors under PyTorch's parameter names (``to_torch``); ``load_run`` opens a run folder for either.
"""
from __future__ import annotations


def to_onnx(model, path):
    """See :func:`rnnkit.export.onnx.to_onnx`."""
    from rnnkit.export.onnx import to_onnx as _to_onnx

    return _to_onnx(model, path)


def to_torch(model, path):
    """See :func:`rnnkit.export.torch.to_torch`."""
    from rnnkit.export.torch import to_torch as _to_torch

    return _to_torch(model, path)


def load_run(path, refit: bool = True):
    """See :func:`rnnkit.export.runs.load_run`."""
    from rnnkit.export.runs import load_run as _load_run

    return _load_run(path, refit)


__all__ = ["to_onnx", "to_torch", "load_run"]
