"""The sequence classifier as one ONNX graph: raw cases in aeon's layout in, class probabilities out.

Inside: the normalisation (global statistics, or each case's own over its valid steps), then per ensemble
member the TDNN blocks (ONNX Conv; BatchNorm folded into a scale and shift; ReLU), the strided front-end and
the recurrent layer (ONNX's LSTM/GRU/RNN with ``sequence_lens``, Jordan as a Scan), the pools over each case's
valid steps, the head and a softmax (model "rocket": rnnkit.export.classify_rocket's random-TDNN features and
ridge readout instead); the members' probabilities are averaged as in ``predict_proba``.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.export.classify_rocket import member_scores
from rnnkit.export.graph import FLOAT, INT64, Graph, dense
from rnnkit.export.onnx import Export, exporter
from rnnkit.export.recurrent import emit

_F32, _F64, _I32 = 1, 11, 6  # TensorProto element types for Cast


def _mask(g: Graph, h: str, lengths: str, axis: int) -> str:
    """(B, T) booleans, True for t < lengths[b], T the size of ``h`` along ``axis``."""
    T = g.op("Squeeze", g.op("Shape", h, start=axis, end=axis + 1), g.ints(0))
    steps = g.op("Range", g.const(0, "i0", np.int64), T, g.const(1, "i1", np.int64))
    return g.op("Less", g.op("Unsqueeze", steps, g.ints(0)), g.op("Unsqueeze", lengths, g.ints(1)), hint="mask")


def _where_valid(g: Graph, x: str, mask: str, axis_after: int) -> str:
    """x with zeros at invalid steps; ``mask`` (B, T) is broadcast by a trailing (or middle) unit axis."""
    return g.op("Where", g.op("Unsqueeze", mask, g.ints(axis_after)), x, g.const(0.0, "f0"))


def _tdnn(g: Graph, conv, x: str, lengths: str, name: str) -> tuple[str, str]:
    """A TDNN on channels-first x (B, D, T), padded inputs zeroed -> (y (B, C, T'), output lengths (B,))."""
    left, right = conv._pads()
    x = _where_valid(g, x, _mask(g, x, lengths, 2), 1)
    W = conv.torch_state_dict()["weight"].astype(np.float32)  # Conv's (C, D, K) layout
    inputs = [x, g.const(W, f"{name}.W")]
    if "b" in conv.params:
        inputs.append(g.const(conv.params["b"].astype(np.float32), f"{name}.b"))
    y = g.op("Conv", *inputs, hint=name, pads=[left, right], strides=[conv.stride], dilations=[conv.dilation],
             kernel_shape=[conv.kernel_size])
    s = g.const(conv.stride, "stride", np.int64)
    if conv.padding == "valid":  # (len - receptive field) // stride + 1
        out = g.op("Add", g.op("Div", g.op("Sub", lengths, g.const(conv.receptive_field, "rf", np.int64)), s),
                   g.const(1, "i1", np.int64))
    else:  # ceil(len / stride)
        out = g.op("Div", g.op("Add", lengths, g.const(conv.stride - 1, "s1", np.int64)), s)
    return y, out


def _pool(g: Graph, pool, h: str, lengths: str, prefix: str) -> str:
    """Pool (B, T, H) over each row's valid steps -> (B, H)."""
    kind = type(pool).__name__
    mask = _mask(g, h, lengths, 1)
    h = _where_valid(g, h, mask, 2)
    if kind == "MeanPool":
        total = g.op("ReduceSum", h, g.ints(1), keepdims=0)
        return g.op("Div", total, g.op("Cast", g.op("Unsqueeze", lengths, g.ints(1)), to=_F32))
    if kind == "MaxPool":
        masked = g.op("Where", g.op("Unsqueeze", mask, g.ints(2)), h, g.const(-np.inf, "ninf"))
        return g.op("ReduceMax", masked, axes=[1], keepdims=0)  # axes an attribute until opset 18
    if kind == "LastPool":
        index = g.op("Unsqueeze", g.op("Sub", lengths, g.const(1, "i1", np.int64)), g.ints(1))  # (B, 1)
        return g.op("GatherND", h, index, batch_dims=1)
    if kind == "AttentionPool":
        p = {k: v.astype(np.float32) for k, v in pool.params.items()}
        u = g.op("Tanh", dense(g, h, p["W"], p["b"], f"{prefix}.att"))
        s = g.op("MatMul", u, g.const(p["v"], f"{prefix}.att.v"))  # (B, T)
        a = g.op("Softmax", g.op("Where", mask, s, g.const(-np.inf, "ninf")), axis=1)
        return g.op("Squeeze", g.op("MatMul", g.op("Unsqueeze", a, g.ints(1)), h), g.ints(1))
    raise UserError(f"the ONNX exporter does not know the pooling layer {kind}")


def _net(g: Graph, net, X: str, lengths: str, k: int) -> str:
    """One ClassifierNet on channels-first X (B, C, T) float32 -> logits (B, K)."""
    feats = []
    if net.convs:
        h, n = X, lengths
        for i, (conv, bn) in enumerate(zip(net.convs, net.norms)):
            h, n = _tdnn(g, conv, h, n, f"net{k}.conv{i}")
            # evaluation-mode BatchNorm is per channel: y = x * a + c, a = gamma / sqrt(var + eps)
            a = bn.params["gamma"] / np.sqrt(bn.running_var + bn.eps)
            c = bn.params["beta"] - bn.running_mean * a
            scale, shift = g.const(a[:, None], f"net{k}.bn{i}.a"), g.const(c[:, None], f"net{k}.bn{i}.c")
            h = g.op("Add", g.op("Mul", h, scale), shift)  # h is channels-first (B, C, T)
            h = g.op("Relu", h)
        feats.append(_pool(g, net.conv_pool, g.op("Transpose", h, perm=[0, 2, 1]), n, f"net{k}.conv"))
    if net.rnn is not None:
        h, n = X, lengths
        if net.front is not None:
            h, n = _tdnn(g, net.front, h, n, f"net{k}.front")
        ys, _, _ = emit(g, net.rnn, g.op("Transpose", h, perm=[2, 0, 1]), g.op("Cast", n, to=_I32))  # (T, B, H)
        feats.append(_pool(g, net.rnn_pool, g.op("Transpose", ys, perm=[1, 0, 2]), n, f"net{k}.rnn"))
    z = feats[0] if len(feats) == 1 else g.op("Concat", *feats, axis=1)
    p = net.head.params
    return dense(g, z, p["W"].astype(np.float32), p["b"].astype(np.float32), f"net{k}.head")


def _normalize(g: Graph, clf, X: str, lengths: str) -> str:
    """The classifier's normalisation of X (B, C, T), in float64, returned as float32."""
    how = clf.normalize_
    x = g.op("Cast", X, to=_F64)
    if how == "global":
        x = g.op("Div", g.op("Sub", x, g.const(clf.mean_[:, None], "norm.mean", np.float64)),
                 g.const(clf.scale_[:, None], "norm.scale", np.float64))
    elif how in ("series", "series+scale"):  # each case's own mean and standard deviation over its valid steps
        valid = g.op("Cast", g.op("Unsqueeze", _mask(g, x, lengths, 2), g.ints(1)), to=_F64)  # (B, 1, T)
        n = g.op("Cast", g.op("Unsqueeze", lengths, g.ints(1, 2)), to=_F64)
        mean = g.op("Div", g.op("ReduceSum", g.op("Mul", x, valid), g.ints(2), keepdims=1), n)
        dev = g.op("Mul", g.op("Sub", x, mean), valid)
        raw_sd = g.op("Sqrt", g.op("Div", g.op("ReduceSum", g.op("Mul", dev, dev), g.ints(2), keepdims=1), n))
        one = g.const(1.0, "d1", np.float64)
        sd = g.op("Where", g.op("Greater", raw_sd, g.const(1e-8, "d_eps", np.float64)), raw_sd, one)
        x = g.op("Div", g.op("Sub", x, mean), sd)
        if how == "series+scale":  # the level and scale channels (SequenceClassifier._normalize)
            ref = g.const(clf.ref_[:, None], "norm.ref", np.float64)  # (C, 1)
            log_sd = g.op("Log", g.op("Add", g.op("Div", raw_sd, ref), g.const(1e-6, "d_tiny", np.float64)))
            r = g.op("Div", mean, ref)  # asinh(r) = sign(r) log(|r| + sqrt(r^2 + 1)); onnxruntime has no float64 Asinh
            a = g.op("Abs", r)
            root = g.op("Sqrt", g.op("Add", g.op("Mul", a, a), one))
            asinh = g.op("Mul", g.op("Sign", r), g.op("Log", g.op("Add", a, root)))
            feats = g.op("Concat", log_sd, asinh, axis=1)  # (B, 2C, 1)
            feats = g.op("Div", g.op("Sub", feats, g.const(clf.feature_mean_[:, None], "norm.fmean", np.float64)),
                         g.const(clf.feature_scale_[:, None], "norm.fscale", np.float64))
            C = clf.n_channels_
            shape = g.op("Concat", g.op("Slice", g.op("Shape", x), g.ints(0), g.ints(1)),
                         g.const(np.array([2 * C], np.int64), "norm.fshape", np.int64),
                         g.op("Slice", g.op("Shape", x), g.ints(2), g.ints(3)), axis=0)
            x = g.op("Concat", x, g.op("Expand", feats, shape), axis=1)  # (B, 3C, T)
    return g.op("Cast", x, to=_F32)


@exporter("rnnkit.tasks.classify:SequenceClassifier")
def sequence_classifier(clf) -> Export:
    """X (B, C, T) raw values (padded at the end), lengths (B,) -> probs (B, n_classes) in ``classes_`` order,
    and each member's logits (B, M, n_classes) (for "rocket": ridge scores / temperature)."""
    if not getattr(clf, "nets_", None):
        raise UserError("this SequenceClassifier is not fitted; fit it (or load a trained run) before exporting")
    g = Graph("rnnkit_classify")
    X = g.input("X", FLOAT, ["B", clf.n_channels_, "T"], "cases in aeon's layout (n_cases, n_channels, "
                "n_timepoints), padded with anything after each case's end")
    lengths = g.input("lengths", INT64, ["B"], "valid time points of each case")
    mask = g.op("Unsqueeze", _mask(g, X, lengths, 2), g.ints(1))  # (B, 1, T)
    X = g.op("Where", mask, X, g.const(0.0, "f0"))  # whatever pads a case (NaN too) never reaches a statistic
    x = _normalize(g, clf, X, lengths)
    rocket = clf.model_ == "rocket"
    if rocket:  # the members read zeros past each case's end, after the normalisation too
        x = g.op("Where", mask, x, g.const(0.0, "f0"))
        logits = [member_scores(g, member, x, lengths, k) for k, member in enumerate(clf.nets_)]  # float64
    else:
        logits = [_net(g, net, x, lengths, k) for k, net in enumerate(clf.nets_)]
    probs = [g.op("Softmax", z, axis=1) for z in logits]
    total = probs[0] if len(probs) == 1 else g.op("Sum", *probs)
    out = g.op("Div", total, g.const(float(len(probs)), "n_members", np.float64 if rocket else np.float32))
    if rocket:  # the ridge readout computes in float64 like rnnkit's; the outputs are float32 all the same
        out, logits = g.op("Cast", out, to=_F32), [g.op("Cast", z, to=_F32) for z in logits]
    M, K = len(logits), clf.n_classes_
    g.output(out, "probs", FLOAT, ["B", K], "class probabilities (the members' average), columns in 'classes'")
    stacked = g.op("Concat", *[g.op("Unsqueeze", z, g.ints(1)) for z in logits], axis=1)
    g.output(stacked, "logits", FLOAT, ["B", M, K], "each ensemble member's logits")
    info = {"model": "classify", "classes": [v.item() if hasattr(v, "item") else v for v in clf.classes_],
            "n_channels": int(clf.n_channels_), "normalize": clf.normalize_, "classifier": clf.model_,
            "note": "the graph normalises the raw values itself; the predicted label is classes[argmax(probs)]"}
    return Export({"": g.model(f"rnnkit sequence classifier ({clf.model_}, {len(clf.nets_)} member(s))")},
                  info)
