"""Weights exported under PyTorch's names load strictly into torch.nn modules, which then compute what rnnkit
computes (bidirectional stacks, the memory model, the forecaster's networks); impossible ports are refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.export.torch import to_torch
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN
from rnnkit.tasks.forecast import Forecaster
from rnnkit.tasks.memory import SequenceModel
from tests.export.test_onnx_tasks import seasonal
from tests.export.util import close, randomize

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402  (after the torch check)


def build(spec: dict):
    """A torch module from the JSON's {"class": "torch.nn.X", **kwargs}."""
    spec = dict(spec)
    return getattr(torch.nn, spec.pop("class").rsplit(".", 1)[1])(**spec)


def load(tmp_path, model):
    paths = to_torch(model, tmp_path / "w.safetensors")
    assert [p.name for p in paths] == ["w.safetensors", "w.json"]
    return load_file(paths[0]), json.loads(paths[1].read_text())


@pytest.mark.parametrize("make", [lambda: LSTM(3, 5, 2, bidirectional=True, rng=0),
                                  lambda: GRU(3, 5, 2, bidirectional=True, rng=0),
                                  lambda: ElmanRNN(3, 5, 2, bidirectional=True, nonlinearity="relu", rng=0)])
def test_bidirectional_stack_in_torch(tmp_path, make):
    layer = make()
    rng = np.random.default_rng(0)
    randomize(layer, rng, 0.5)
    tensors, info = load(tmp_path, layer)
    module = build(info["modules"]["rnn"])
    module.load_state_dict({k[len("rnn."):]: v for k, v in tensors.items()})  # strict
    xs = rng.standard_normal((2, 6, 3)).astype(np.float32)
    ys, finals = layer.forward(xs)
    with torch.no_grad():
        t_ys, t_state = module(torch.from_numpy(xs))
    close(t_ys.numpy(), ys)
    t_state = t_state if isinstance(t_state, tuple) else (t_state,)
    for a, b in zip(t_state, finals):
        close(a.numpy(), b)


def test_memory_model_in_torch(tmp_path):
    model = SequenceModel("lstm", 4, 6, 3, output="seq", num_layers=2, rng=0)
    randomize(model, np.random.default_rng(1))
    tensors, info = load(tmp_path, model)
    mods = torch.nn.ModuleDict({k: build(v) for k, v in info["modules"].items()})
    mods.load_state_dict(tensors)
    xs = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
    with torch.no_grad():
        out = mods["head"](mods["rnn"](torch.from_numpy(xs))[0])
    close(out.numpy(), model.forward(xs))


@pytest.mark.parametrize("cell", ["gru", "mlp"])
def test_forecaster_networks_in_torch(tmp_path, cell):
    model = Forecaster(horizon=4, epochs=2, hidden_size=6, cell=cell, ensemble=2).fit(seasonal(120))
    tensors, info = load(tmp_path, model)
    assert info["lookback_"] == model.lookback_
    assert info["scalers_"]["series"]["mean_"] == model.scalers_["series"].mean_
    xs = np.random.default_rng(3).standard_normal((3, model.lookback_, 1)).astype(np.float32)
    for k, net in enumerate(model.nets_):
        mods = {name.split(".", 1)[1]: build(spec) for name, spec in info["modules"].items()
                if name.startswith(f"net{k}.")}
        for name, mod in mods.items():
            prefix = f"net{k}.{name}."
            mod.load_state_dict({n[len(prefix):]: v for n, v in tensors.items() if n.startswith(prefix)})
        x = torch.from_numpy(xs)
        with torch.no_grad():
            h = torch.tanh(mods["enc"](x.reshape(3, -1))) if cell == "mlp" else mods["enc"](x)[0][:, -1]
            out = mods["head"](h)
            mu = out[:, :4] + (mods["skip"](x[:, -net.highway:, 0]) if net.highway else 0)
        want_mu, _ = net.forward(xs)
        close(mu.numpy(), want_mu)


def test_layers_torch_cannot_compute_are_refused(tmp_path):
    with pytest.raises(UserError, match="PyTorch has no JordanRNN"):
        to_torch(JordanRNN(2, 3, 3, rng=0), tmp_path / "j")
    with pytest.raises(UserError, match="reset gate before"):
        to_torch(GRU(2, 3, reset_after=False, rng=0), tmp_path / "g")
    with pytest.raises(UserError, match="no PyTorch exporter"):
        to_torch(object(), tmp_path / "o")


def torch_classifier_logits(info, tensors, k, xs):
    """One member's forward in plain torch modules built from the JSON, xs (B, C, T) normalised, full length."""
    F = torch.nn.functional
    p = f"net{k}."
    mods = {}
    for name, spec in info["modules"].items():
        if name.startswith(p):
            mods[name[len(p):]] = mod = build(spec).eval()
            mod.load_state_dict({n[len(name) + 1:]: v for n, v in tensors.items() if n.startswith(name + ".")})
    pads = {name[len(p):]: pad for name, pad in info["pads"].items() if name.startswith(p)}
    feats, x = [], torch.from_numpy(xs)
    if "conv0" in mods:
        h, i = x, 0
        while f"conv{i}" in mods:
            h = torch.relu(mods[f"bn{i}"](mods[f"conv{i}"](F.pad(h, pads[f"conv{i}"]))))
            i += 1
        feats.append(h.mean(dim=2))
    if "rnn" in mods:
        h = mods["front"](F.pad(x, pads["front"])) if "front" in mods else x
        hs = mods["rnn"](h.transpose(1, 2))[0]  # (B, T', H)
        pool = info["config"]["pool"]
        if pool == "attention":
            a = torch.softmax(mods["att.score"](torch.tanh(mods["att.proj"](hs)))[..., 0], dim=1)
            feats.append((a[..., None] * hs).sum(dim=1))
        else:
            feats.append({"mean": lambda: hs.mean(dim=1), "max": lambda: hs.max(dim=1).values,
                          "last": lambda: hs[:, -1]}[pool]())
    return mods["head"](torch.cat(feats, dim=1))


@pytest.mark.parametrize("model,pool,cell", [("combined", "attention", "gru"), ("rnn", "max", "lstm"),
                                             ("tdnn", "mean", "gru"), ("combined", "last", "elman")])
def test_classifier_in_torch(tmp_path, model, pool, cell):
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.classify_train import Padded, predict_logits
    from tests.export.test_onnx_classify import SMALL, waves

    X, y = waves(9, np.random.default_rng(0), lengths=(30, 31))  # equal lengths: plain torch, no masks
    clf = SequenceClassifier(pool=pool, cell=cell, bidirectional=True, stride=2, n_estimators=2,
                             random_state=0, **{**SMALL, "model": model}).fit(X, y)
    tensors, info = load(tmp_path, clf)
    assert info["classes_"] == ["saw", "sine", "square"]
    data = Padded(clf._prepare(X), np.float32)
    for k, net in enumerate(clf.nets_):
        with torch.no_grad():
            got = torch_classifier_logits(info, tensors, k, np.ascontiguousarray(data.xs.transpose(0, 2, 1)))
        close(got.numpy(), predict_logits(net, data))
