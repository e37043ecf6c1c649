"""The sequence-classification network: a time-delay (TDNN) branch, a recurrent branch, or both side by side.

xs (B, T, C) with a mask (B, T) -> logits (B, K). The TDNN branch is a fully convolutional stack
(TDNN -> BatchNorm -> ReLU per block, the first block strided) averaged over valid steps; the recurrent
branch reads the series through a strided TDNN front-end (learned downsampling of long series) and pools
its hidden states. With both ("combined", as in LSTM-FCN) the pooled features are concatenated before the
softmax layer. Every piece takes the mask, so a padded batch gives each case the logits it gets alone.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.layers import Dense, Dropout, ReLU
from rnnkit.nn.norm import BatchNorm
from rnnkit.nn.pooling import AttentionPool, LastPool, MaxPool, MeanPool
from rnnkit.nn.tdnn import TDNN

MODELS = ("combined", "tdnn", "rnn")
CELLS = ("gru", "lstm", "elman", "jordan")
POOLS = ("mean", "max", "last", "attention")


def make_pool(kind: str, size: int, dtype, rng) -> Layer:
    if kind == "mean":
        return MeanPool()
    if kind == "max":
        return MaxPool()
    if kind == "last":
        return LastPool()
    if kind == "attention":
        return AttentionPool(size, max(8, size // 2), dtype=dtype, rng=rng)
    raise UserError(f"unknown pooling {kind!r}; choose one of: {', '.join(POOLS)}")


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
                   dtype, rng, threads: int | None = None):
    from rnnkit.nn import recurrent as R

    kw = dict(num_layers=num_layers, bidirectional=bidirectional, return_sequences=True, dtype=dtype, rng=rng,
              threads=threads)
    if cell == "lstm":
        return R.LSTM(input_size, hidden_size, **kw)
    if cell == "gru":
        return R.GRU(input_size, hidden_size, **kw)
    if cell == "elman":
        return R.ElmanRNN(input_size, hidden_size, **kw)
    if cell == "jordan":
        return R.JordanRNN(input_size, hidden_size, hidden_size, **kw)
    raise UserError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")


class ClassifierNet(Layer):
    """TDNN branch and/or recurrent branch -> dropout -> Dense to class logits.

    ``arch`` keys: model ("combined" | "tdnn" | "rnn"), stride (downsampling of the first TDNN block and of
    the recurrent front-end), channels and kernels (the TDNN blocks), cell, hidden_size, num_layers,
    bidirectional, pool (the recurrent branch's pooling over time), front_size (the recurrent front-end's
    width), dropout. Parameters are named ``conv{i}.*``, ``bn{i}.*``, ``front.*``, ``rnn.*``, ``att.*``,
    ``head.*``. ``threads``: the recurrent layer's ``threads=`` (see :class:`rnnkit.nn.recurrent.RecurrentLayer`).
    """

    def __init__(self, n_channels: int, n_classes: int, arch: dict, dtype=np.float32, rng=None,
                 threads: int | None = None):
        super().__init__(dtype)
        rng = as_rng(rng)
        self.arch = dict(arch)
        model = arch["model"]
        if model not in MODELS:
            raise UserError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
        stride = int(arch["stride"])
        features = 0
        self.convs, self.norms, self.relus = [], [], []
        if model in ("tdnn", "combined"):
            size = n_channels
            for i, (c, k) in enumerate(zip(arch["channels"], arch["kernels"])):
                s = stride if i == 0 else 1
                k = max(int(k), 2 * s) if i == 0 else int(k)
                conv = TDNN(size, int(c), k, stride=s, padding="same", dtype=dtype, rng=rng)
                self.convs.append(self.add_child(f"conv{i}", conv))
                self.norms.append(self.add_child(f"bn{i}", BatchNorm(int(c), dtype=dtype)))
                self.relus.append(ReLU(dtype))
                size = int(c)
            self.conv_pool = MeanPool()
            features += size
        self.front = self.rnn = self.rnn_pool = None
        if model in ("rnn", "combined"):
            size = n_channels
            if stride > 1:
                front = TDNN(n_channels, int(arch["front_size"]), 2 * stride, stride=stride, padding="same",
                             dtype=dtype, rng=rng)
                self.front = self.add_child("front", front)
                size = int(arch["front_size"])
            self.rnn = self.add_child("rnn", make_recurrent(arch["cell"], size, int(arch["hidden_size"]),
                                                            int(arch["num_layers"]), bool(arch["bidirectional"]),
                                                            dtype, rng, threads))
            out = self.rnn.output_size
            self.rnn_pool = make_pool(arch["pool"], out, dtype, rng)
            if self.rnn_pool.params:
                self.add_child("att", self.rnn_pool)
            features += out
        self.features = features
        self.dropout = Dropout(float(arch["dropout"]), rng=rng, dtype=dtype)
        self.head = self.add_child("head", Dense(features, n_classes, dtype=dtype, rng=rng))
        self._split = None

    # -- buffers: BatchNorm's running statistics are saved beside the parameters ----------------------------
    def buffers(self) -> dict[str, np.ndarray]:
        out = {}
        for i, bn in enumerate(self.norms):
            out[f"bn{i}.running_mean"] = bn.running_mean
            out[f"bn{i}.running_var"] = bn.running_var
        return out

    # -- forward / backward ------------------------------------------------------------------------------------
    def forward(self, xs, mask=None, training: bool = False):
        xs = np.asarray(xs, dtype=self.dtype)
        feats = []
        if self.convs:
            h, m = xs, mask
            for conv, bn, relu in zip(self.convs, self.norms, self.relus):
                h = conv.forward(h, mask=m, training=training)
                m = conv.output_mask(m)
                h = relu.forward(bn.forward(h, mask=m, training=training), training=training)
            feats.append(self.conv_pool.forward(h, mask=m))
        if self.rnn is not None:
            h, m = xs, mask
            if self.front is not None:
                h = self.front.forward(h, mask=m, training=training)
                m = self.front.output_mask(m)
            hs, _ = self.rnn.forward(h, mask=m, training=training)
            feats.append(self.rnn_pool.forward(hs, mask=m))
        self._split = [f.shape[1] for f in feats]
        z = feats[0] if len(feats) == 1 else np.concatenate(feats, axis=1)
        return self.head.forward(self.dropout.forward(z, training=training), training=training)

    def backward(self, dlogits):
        dz = self.dropout.backward(self.head.backward(dlogits))
        parts = np.split(dz, np.cumsum(self._split)[:-1], axis=1)
        k = 0
        if self.convs:
            dh = self.conv_pool.backward(parts[k])
            k += 1
            for conv, bn, relu in zip(reversed(self.convs), reversed(self.norms), reversed(self.relus)):
                dh = conv.backward(bn.backward(relu.backward(dh)))
        if self.rnn is not None:
            dhs = self.rnn_pool.backward(parts[k])
            dh, _ = self.rnn.backward(dhs)
            if self.front is not None:
                self.front.backward(dh)
        return None
