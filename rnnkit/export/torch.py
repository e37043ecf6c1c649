"""``to_torch(model, path)``: a model's weights as safetensors under PyTorch's parameter names, with a JSON
beside them holding what rebuilds the PyTorch modules (sizes, cell, vocabulary, scalers).

Names follow ``nn.Embedding`` (``weight`` (V, E)), ``nn.LSTM/GRU/RNN`` (``weight_ih_l0`` ...) and
``nn.Linear`` (``weight`` (out, in), ``bias``). Writing needs only safetensors, not torch. Models PyTorch
has no layer for (Jordan, the reset-before GRU) are refused with the reason.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.export.registry import Registry

TORCH = Registry("PyTorch")
FORMAT_VERSION = 1


def to_torch(model, path: str | os.PathLike) -> list[Path]:
    """Write ``path`` (``.safetensors``) and the JSON beside it (``<stem>.json``); returns both paths."""
    from safetensors.numpy import save

    from rnnkit import io
    from rnnkit.export.onnx import make_parent

    tensors, info = TORCH.find(model)(model)
    path = Path(path)
    if path.suffix != ".safetensors":
        path = Path(f"{path}.safetensors")
    info = {"format": "rnnkit-torch", "format_version": FORMAT_VERSION, **info}
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    make_parent(path)
    io.atomic_write_bytes(path, save(arrays, metadata={"rnnkit": json.dumps(info)}))
    info_path = io.write_json(path.with_suffix(".json"), info)
    return [path, info_path]


def linear(dense, prefix: str) -> dict[str, np.ndarray]:
    """An rnnkit Dense (W (in, out), b) as ``nn.Linear`` tensors (weight (out, in), bias)."""
    return {f"{prefix}.weight": dense.params["W"].T.copy(), f"{prefix}.bias": dense.params["b"].copy()}


def linear_module(dense) -> dict:
    n_in, n_out = dense.params["W"].shape
    return {"class": "torch.nn.Linear", "in_features": int(n_in), "out_features": int(n_out)}


def recurrent(layer, prefix: str) -> tuple[dict[str, np.ndarray], dict]:
    """A recurrent layer's tensors under ``prefix.`` and the keyword arguments of its PyTorch module."""
    from rnnkit.export.recurrent import setting
    from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN

    kind = next((k for cls, k in ((LSTM, "LSTM"), (GRU, "GRU"), (ElmanRNN, "RNN")) if isinstance(layer, cls)),
                None)
    if kind is None:
        raise UserError(f"PyTorch has no {type(layer).__name__} layer, so its weights have no PyTorch names; "
                        "use the ONNX export (--format onnx), which supports it")
    if kind == "GRU" and not layer.reset_after:
        raise UserError("this GRU applies the reset gate before the recurrent product (Cho et al.), which "
                        "torch.nn.GRU cannot compute; use the ONNX export (--format onnx), which supports it")
    tensors = {f"{prefix}.{k}": v for k, v in layer.torch_state_dict().items()}
    module = {"class": f"torch.nn.{kind}", "input_size": layer.input_size, "hidden_size": layer.hidden_size,
              "num_layers": layer.num_layers, "bidirectional": layer.bidirectional, "batch_first": True}
    if kind == "RNN":
        module["nonlinearity"] = setting(layer.cores[0], "nonlinearity")
    return tensors, module


@TORCH.register("rnnkit.nn.recurrent.stack:RecurrentLayer")
def recurrent_layer(layer):
    tensors, module = recurrent(layer, "rnn")
    return tensors, {"model": "recurrent-layer", "modules": {"rnn": module}}


@TORCH.register("rnnkit.tasks.text_model:CharRNN")
def char_rnn(model):
    """``embed`` (nn.Embedding), ``rnn`` (nn.LSTM/GRU/RNN, batch_first), ``head`` (nn.Linear)."""
    tensors, module = recurrent(model.rnn, "rnn")
    tensors["embed.weight"] = model.embed.params["W"].copy()
    tensors.update(linear(model.head, "head"))
    V, E = model.embed.params["W"].shape
    modules = {"embed": {"class": "torch.nn.Embedding", "num_embeddings": V, "embedding_dim": E}, "rnn": module,
               "head": linear_module(model.head)}
    return tensors, {"model": "text", "arch": model.arch(), "modules": modules}


@TORCH.register("rnnkit.tasks.text_model:LanguageModel")
def language_model(lm):
    tensors, info = char_rnn(lm.model)
    info["chars"] = lm.vocab.chars  # character id i is chars[i]
    return tensors, info


@TORCH.register("rnnkit.tasks.memory:SequenceModel")
def sequence_model(model):
    """``rnn`` then ``head`` (nn.Linear) at every step (output "seq") or at each row's last step ("last")."""
    tensors, module = recurrent(model.rnn, "rnn")
    tensors.update(linear(model.head, "head"))
    modules = {"rnn": module, "head": linear_module(model.head)}
    return tensors, {"model": "sequence", "cell": model.cell, "output": model.output, "modules": modules}


@TORCH.register("rnnkit.tasks.forecast:Forecaster")
def forecaster(model):
    """Per ensemble member k: ``net{k}.enc`` (recurrent module, or nn.Linear for the window MLP), ``net{k}.head``
    and ``net{k}.skip`` (nn.Linear); the JSON holds the scalers and the steps around the networks."""
    if not getattr(model, "nets_", None):
        raise UserError("the forecaster is not fitted; fit it (or load a trained run) before exporting")
    tensors, modules = {}, {}
    for k, net in enumerate(model.nets_):
        if net.cell == "mlp":  # tanh(window @ W + b) over the flattened window
            t, enc = linear(net.encoder, f"net{k}.enc"), linear_module(net.encoder)
        else:
            t, enc = recurrent(net.encoder, f"net{k}.enc")
        tensors.update(t)
        tensors.update(linear(net.head, f"net{k}.head"))
        modules.update({f"net{k}.enc": enc, f"net{k}.head": linear_module(net.head)})
        if net.highway:
            tensors.update(linear(net.skip, f"net{k}.skip"))
            modules[f"net{k}.skip"] = linear_module(net.skip)
    _, meta = model.state()
    keep = ("config", "lookback_", "log_", "input_size_", "future_size_", "sigma_scale_", "highway_", "scalers_",
            "past_scaler_", "future_scaler_", "series")
    return tensors, {"model": "forecast", "modules": modules, **{k: meta[k] for k in keep}}


def _conv(conv, prefix: str) -> tuple[dict, dict]:
    """A TDNN as ``nn.Conv1d`` (weight (C, D, K)); its zero padding [left, right] goes in "pad" of the JSON,
    to apply with ``torch.nn.functional.pad`` (Conv1d has no padding="same" at stride > 1)."""
    tensors = {f"{prefix}.{k}": v for k, v in conv.torch_state_dict().items()}
    module = {"class": "torch.nn.Conv1d", "in_channels": conv.input_size, "out_channels": conv.channels_out,
              "kernel_size": conv.kernel_size, "stride": conv.stride, "dilation": conv.dilation,
              "bias": "b" in conv.params}
    return tensors, module


@TORCH.register("rnnkit.tasks.classify:SequenceClassifier")
def sequence_classifier(clf):
    """Per member k: ``net{k}.conv{i}`` (Conv1d), ``net{k}.bn{i}`` (BatchNorm1d), ``net{k}.front`` (Conv1d),
    ``net{k}.rnn``, ``net{k}.att.proj`` and ``net{k}.att.score`` (attention pooling as two nn.Linear:
    score = tanh(proj(h)) @ score.weight.T) and ``net{k}.head``; "pads" gives each Conv1d's [left, right]."""
    if not getattr(clf, "nets_", None):
        raise UserError("this SequenceClassifier is not fitted; fit it (or load a trained run) before exporting")
    if clf.model_ == "rocket":
        raise UserError("a rocket classifier (random time-delay features and a ridge readout) has no PyTorch "
                        "modules to name its weights after; export it with --format onnx")
    tensors, modules, pads = {}, {}, {}
    for k, net in enumerate(clf.nets_):
        p = f"net{k}"
        for i, (conv, bn) in enumerate(zip(net.convs, net.norms)):
            t, modules[f"{p}.conv{i}"] = _conv(conv, f"{p}.conv{i}")
            tensors.update(t)
            pads[f"{p}.conv{i}"] = list(conv._pads())
            tensors.update({f"{p}.bn{i}.{n}": v for n, v in bn.torch_state_dict().items()})
            modules[f"{p}.bn{i}"] = {"class": "torch.nn.BatchNorm1d", "num_features": bn.num_features,
                                     "eps": bn.eps, "momentum": bn.momentum}
        if net.front is not None:
            t, modules[f"{p}.front"] = _conv(net.front, f"{p}.front")
            tensors.update(t)
            pads[f"{p}.front"] = list(net.front._pads())
        if net.rnn is not None:
            t, modules[f"{p}.rnn"] = recurrent(net.rnn, f"{p}.rnn")
            tensors.update(t)
            if net.rnn_pool.params:
                a = net.rnn_pool.params
                H, A = a["W"].shape
                tensors.update({f"{p}.att.proj.weight": a["W"].T.copy(), f"{p}.att.proj.bias": a["b"].copy(),
                                f"{p}.att.score.weight": a["v"][None].copy()})
                modules[f"{p}.att.proj"] = {"class": "torch.nn.Linear", "in_features": H, "out_features": A}
                modules[f"{p}.att.score"] = {"class": "torch.nn.Linear", "in_features": A, "out_features": 1,
                                             "bias": False}
        tensors.update(linear(net.head, f"{p}.head"))
        modules[f"{p}.head"] = linear_module(net.head)
    _, meta = clf.state()
    keep = ("config", "classes_", "n_channels_", "stride_", "mean_", "scale_")
    return tensors, {"model": "classify", "modules": modules, "pads": pads, **{k: meta[k] for k in keep}}
