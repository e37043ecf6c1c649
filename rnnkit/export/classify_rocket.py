"""The "rocket" classifier's members as ONNX nodes: the random TDNN's PPV features and the ridge readout.

The convolutions are written as the same float32 additions, in the same order, as
:meth:`rnnkit.nn.random_tdnn.RandomTDNN._outputs` (not as an ONNX Conv, whose summation order is the runtime's):
an output sitting within rounding of a bias would otherwise count differently, so the graph's features equal
rnnkit's bit for bit. The readout runs in float64 like :class:`rnnkit.nn.ridge.RidgeReadout`.
"""
from __future__ import annotations

import numpy as np

from rnnkit.export.graph import FLOAT, INT64, Graph
from rnnkit.nn.random_tdnn import KERNEL, N_KERNELS, TAPS

_F32, _F64 = 1, 11  # TensorProto element types for Cast
_BIG = np.iinfo(np.int64).max  # a Slice end meaning "to the end"


def _taps(g: Graph, s: str, T: str, d: int, name: str) -> list[str]:
    """Nine (U, B, T): series s (U, B, T) zero-padded by 4d at both ends, tap j at step t reading step
    t + (j - 4) d."""
    p = 4 * d
    padded = g.op("Pad", s, g.ints(0, 0, p, 0, 0, p), hint=f"{name}.pad")  # (U, B, T + 8d)
    taps = []
    for j in range(KERNEL):
        start = g.ints(j * d)
        end = g.ints(_BIG) if j == KERNEL - 1 else g.op("Add", T, start)
        taps.append(g.op("Slice", padded, start, end, g.ints(2), hint=f"{name}.tap{j}"))
    return taps


def _series(g: Graph, xt: str, subsets: np.ndarray) -> str:
    """(U, B, T): the channels of xt (C, B, T) each subset (U, C) reads, summed in channel order (adding the
    zeros of unread channels changes no bit)."""
    total = None
    for c in np.flatnonzero(subsets.any(axis=0)):
        term = g.op("Slice", xt, g.ints(int(c)), g.ints(int(c) + 1), g.ints(0))  # (1, B, T)
        if not subsets[:, c].all():
            term = g.op("Mul", term, g.const(subsets[:, c, None, None].astype(np.float32), "subset"))
        total = term if total is None else g.op("Add", total, term)
    return total


def _outputs(g: Graph, tdnn, xt: str, T: str, i: int, name: str) -> str:
    """(84, B, T): the outputs of dilation i's 84 groups on xt (C, B, T) float32, zero past each case's end.

    As RandomTDNN._outputs: each group's channels summed into one series s, then
    -(s_0 + ... + s_8) + 3 (s_a + s_b + s_c) over the taps s_j, (a, b, c) where the kernel's weights of 2 sit.
    """
    d = int(tdnn.dilations[i])
    groups = np.arange(i * N_KERNELS, (i + 1) * N_KERNELS)
    subsets, which = np.unique(tdnn.channels[groups], axis=0, return_inverse=True)  # (U, C), (84,)
    U = len(subsets)
    taps = _taps(g, _series(g, xt, subsets), T, d, name)
    total = taps[0]
    for tap in taps[1:]:  # the taps summed in order ...
        total = g.op("Add", total, tap)
    base = g.op("Neg", total, hint=f"{name}.base")  # ... every tap at weight -1: (U, B, T)
    if U > 1:
        base = g.op("Gather", base, g.const(which.reshape(-1), f"{name}.subset", np.int64), axis=0)  # (84, B, T)
    stack = g.op("Concat", *taps, axis=0)  # (9U, B, T): tap j of subset u at j * U + u
    kernel = TAPS[tdnn.kernel[groups]]  # (84, 3)
    three = [g.op("Gather", stack, g.const(kernel[:, k] * U + which.reshape(-1), f"{name}.two{k}", np.int64),
                  axis=0) for k in range(3)]  # (84, B, T) each
    return g.op("Add", base, g.op("Mul", g.op("Add", g.op("Add", three[0], three[1]), three[2]),
                                  g.const(3.0, "three")), hint=f"{name}.out")


def features(g: Graph, tdnn, x: str, lengths: str) -> str:
    """PPV features (B, F) float32 of x (B, C, T) float32, zero past each case's ``lengths`` (B,) int64."""
    T = g.op("Shape", x, start=2, end=3)  # (1,)
    t = g.op("Unsqueeze", g.op("Range", g.const(0, "i0", np.int64), g.op("Squeeze", T, g.ints(0)),
                               g.const(1, "i1", np.int64)), g.ints(0))  # (1, T)
    n = g.op("Unsqueeze", lengths, g.ints(1))  # (B, 1)
    same = g.op("Less", t, n)  # (B, T): the case's own steps
    n_same = g.op("Cast", lengths, to=_F32)
    xt = g.op("Transpose", x, perm=[1, 0, 2])  # (C, B, T)
    start, parts = 0, []
    for i, d in enumerate(int(v) for v in tdnn.dilations):
        name = f"rocket.d{d}"
        groups = np.arange(i * N_KERNELS, (i + 1) * N_KERNELS)
        # valid: whole window inside the case; a case of length <= 8d has no such step and uses its own steps
        edge = g.const(4 * d, "edge", np.int64)
        inside = g.op("And", g.op("GreaterOrEqual", t, edge), g.op("Less", t, g.op("Sub", n, edge)))
        short = g.op("LessOrEqual", lengths, g.const(8 * d, "span", np.int64))  # (B,)
        valid = g.op("Or", inside, g.op("And", g.op("Unsqueeze", short, g.ints(1)), same))  # (no bool Where in ORT)
        n_valid = g.op("Cast", g.op("Where", short, lengths, g.op("Sub", lengths, g.const(8 * d, "span", np.int64))),
                       to=_F32)
        padded = tdnn.padded[groups]
        masks = g.op("Concat", g.op("Unsqueeze", valid, g.ints(0)), g.op("Unsqueeze", same, g.ints(0)), axis=0)
        mask = g.op("Gather", masks, g.const(padded.astype(np.int64), f"{name}.padded", np.int64), axis=0)
        y = g.op("Where", mask, _outputs(g, tdnn, xt, T, i, name), g.const(-np.inf, "ninf"))  # (84, B, T)
        steps = g.op("Where", g.const(padded[:, None, None], f"{name}.padded_b", bool),
                     g.op("Unsqueeze", n_same, g.ints(0, 1)), g.op("Unsqueeze", n_valid, g.ints(0, 1)))  # (84, 1, B)
        counts = tdnn.counts[groups]
        k = int(counts.sum())
        biases = tdnn.biases[start: start + k]
        if (counts == counts[0]).all():  # as fit draws them: every group of a dilation has as many biases
            above = g.op("Greater", g.op("Unsqueeze", y, g.ints(1)),
                         g.const(biases.reshape(N_KERNELS, -1, 1, 1), f"{name}.bias"))  # (84, k/84, B, T)
        else:  # each group's output once per bias of the group
            rep = g.const(np.repeat(np.arange(N_KERNELS), counts), f"{name}.rep", np.int64)
            y = g.op("Gather", y, rep, axis=0)  # (k, B, T)
            above = g.op("Greater", y, g.const(biases[:, None, None], f"{name}.bias"))
            steps = g.op("Gather", g.op("Squeeze", steps, g.ints(1)), rep, axis=0)  # (k, B)
        hits = g.op("ReduceSum", g.op("Cast", above, to=_F32), g.const([-1], "last", np.int64), keepdims=0)  # exact
        ppv = g.op("Div", hits, steps)  # float32 division == float64 division rounded to float32
        parts.append(g.op("Reshape", ppv, g.const([k, -1], f"{name}.shape", np.int64)))  # (k, B)
        start += k
    F = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=0)
    return g.op("Transpose", F, perm=[1, 0], hint="rocket.features")  # (B, F)


def features_by_case(g: Graph, tdnn, x: str, lengths: str, name: str = "rocket") -> str:
    """:func:`features` one case at a time (a Scan over the batch), each cropped to its own length: the
    (84, biases per group, T) comparisons of a whole batch would hold 5 bytes per feature, step and case
    (gigabytes for a test set of long series), and a short case would pay for the longest one's steps."""
    body = g.subgraph(f"{name}_case")
    C = int(tdnn.channels.shape[1])
    x_b = body.input(f"{name}.x_b", FLOAT, [C, "T"], fresh=True)
    n_b = body.input(f"{name}.length_b", INT64, [], fresh=True)
    n = body.op("Unsqueeze", n_b, body.ints(0))  # (1,)
    x_own = body.op("Slice", x_b, body.ints(0), n, body.ints(1))  # the case's own steps: padding costs nothing
    F = features(body, tdnn, body.op("Unsqueeze", x_own, body.ints(0)), n)
    body.output(body.op("Squeeze", F, body.ints(0)), f"{name}.features_b", FLOAT, [len(tdnn.biases)], fresh=True)
    return g.op("Scan", x, lengths, hint=f"{name}.features", body=body.proto(), num_scan_inputs=2)  # (B, F)


def member_scores(g: Graph, member, x: str, lengths: str, k: int) -> str:
    """One RocketMember on x (B, C, T) float32 -> its softmax input, decision / temperature (B, K) float64."""
    r = member.readout
    F = g.op("Cast", features_by_case(g, member.tdnn, x, lengths, f"member{k}"), to=_F64)
    z = g.op("Div", g.op("Sub", F, g.const(r.mean, f"member{k}.mean", np.float64)),
             g.const(r.scale, f"member{k}.scale", np.float64))
    z = g.op("Add", g.op("MatMul", z, g.const(r.weight, f"member{k}.weight", np.float64)),
             g.const(r.bias, f"member{k}.bias", np.float64))
    return g.op("Div", z, g.const(float(r.temperature), f"member{k}.temperature", np.float64))
