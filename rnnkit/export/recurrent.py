"""A recurrent layer as ONNX nodes: ONNX's own LSTM, GRU and RNN operators, one per stacked layer, and
the Jordan network (which has no operator) as a Scan over its step.

rnnkit (like PyTorch) keeps ``W_x`` (D, G*H) with gates LSTM i,f,g,o / GRU r,z,n; ONNX wants ``W`` (dirs,
G*H, D) with gates i,o,f,c / z,r,h, ``R`` (dirs, G*H, H) and ``B`` (dirs, 2*G*H) = [W_b, R_b]. ONNX's
operators are time-major (layout 0), so the exporters transpose around them.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.export.graph import Graph, dim

# each ONNX operator's gate order, in the gate names of the rnnkit cores (``core.gates``)
_ONNX_ORDER = {"LSTM": ("i", "o", "f", "g"), "GRU": ("z", "r", "n"), "RNN": ("h",)}


def setting(core, name: str):
    """A cell setting (``nonlinearity``, ``output_activation``) of a fast core or a reference core's cell."""
    return getattr(core, name) if hasattr(core, name) else getattr(core.cell, name)


def state_names(layer) -> tuple[str, ...]:
    """Names of the state arrays: ("h",), ("h", "c") for the LSTM, ("y",) for the Jordan network."""
    from rnnkit.nn.recurrent import LSTM, JordanRNN

    if isinstance(layer, LSTM):
        return ("h", "c")
    return ("y",) if isinstance(layer, JordanRNN) else ("h",)


def operator(layer) -> tuple[str, dict]:
    """The ONNX operator and its attributes for ``layer`` (except direction and hidden_size), or Scan."""
    from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN

    if isinstance(layer, LSTM):
        return "LSTM", {}
    if isinstance(layer, GRU):
        # reset after the recurrent product (PyTorch/cuDNN) is linear_before_reset=1; Cho et al.'s form is 0
        return "GRU", {"linear_before_reset": 1 if layer.reset_after else 0}
    if isinstance(layer, ElmanRNN):
        act = {"tanh": "Tanh", "relu": "Relu"}[setting(layer.cores[0], "nonlinearity")]
        return "RNN", {"activations": [act] * layer.num_directions}
    if isinstance(layer, JordanRNN):
        return "Scan", {}
    raise UserError(f"cannot export a {type(layer).__name__} to ONNX: only LSTM, GRU, ElmanRNN and JordanRNN "
                    "layers are known to the exporter")


def onnx_weights(layer, op: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (dirs, G*H, D), R (dirs, G*H, H), B (dirs, 2*G*H) of stacked layer ``index``, as float32."""
    dirs, H = layer.num_directions, layer.hidden_size
    Ws, Rs, Bs = [], [], []
    for d in range(dirs):
        core = layer.cores[index * dirs + d]
        cols = [core.gates.index(name) for name in _ONNX_ORDER[op]]

        def reorder(a):  # gate blocks of H columns (last axis) into ONNX's order
            return np.concatenate([a[..., k * H:(k + 1) * H] for k in cols], axis=-1)

        p = core.params
        Ws.append(reorder(p["W_x"]).T)
        Rs.append(reorder(p["W_h"]).T)
        Bs.append(np.concatenate([reorder(p["b_x"]), reorder(p["b_h"])]))
    return tuple(np.stack(a).astype(np.float32) for a in (Ws, Rs, Bs))


def time_mask(g: Graph, x: str, lengths32: str) -> str:
    """(T, B, 1) booleans, True where step t < lengths[b], for time-major ``x`` (T, B, ...)."""
    T = g.op("Squeeze", dim(g, x, 0), g.ints(0))
    steps = g.op("Range", g.const(0, "zero", np.int32), g.op("Cast", T, to=6), g.const(1, "one", np.int32))
    m = g.op("Less", g.op("Unsqueeze", steps, g.ints(1)), g.op("Unsqueeze", lengths32, g.ints(0)))  # (T, B)
    return g.op("Unsqueeze", m, g.ints(2), hint="mask")


def emit(g: Graph, layer, x: str, lengths32: str | None = None, state: tuple | None = None):
    """Nodes computing ``layer`` on time-major ``x`` (T, B, D).

    ``lengths32``: (B,) int32 valid lengths (right-padded batches) or None; ``state``: names of the initial
    state arrays, each (num_layers*dirs, B, S), or None for zeros. Returns ``(ys, finals, last)``: ys
    (T, B, O*dirs), finals a tuple like ``state``, last (B, O*dirs) the top layer's final output per
    direction (what ``return_sequences=False`` returns).
    """
    op, attrs = operator(layer)
    dirs, L = layer.num_directions, layer.num_layers
    n_state = len(state_names(layer))
    finals: list[list[str]] = [[] for _ in range(n_state)]
    mask = time_mask(g, x, lengths32) if op == "Scan" and lengths32 is not None else None
    for index in range(L):
        init = [""] * n_state
        if state is not None:
            start, stop = g.ints(index * dirs), g.ints((index + 1) * dirs)
            init = [g.op("Slice", s, start, stop, g.ints(0), hint=f"l{index}.state0") for s in state]
        if op == "Scan":
            x, layer_finals = _jordan(g, layer, index, x, mask, init[0])
        else:
            W, R, B = onnx_weights(layer, op, index)
            outs = g.op(op, x, g.const(W, f"l{index}.W"), g.const(R, f"l{index}.R"), g.const(B, f"l{index}.B"),
                        lengths32 or "", *init, outputs=1 + n_state, hint=f"l{index}.{op.lower()}",
                        hidden_size=layer.hidden_size, direction="bidirectional" if dirs == 2 else "forward",
                        layout=0, **attrs)
            y, layer_finals = outs[0], outs[1:]
            # Y (T, dirs, B, H) -> (T, B, dirs*H), the forward half first like rnnkit's concatenation
            if dirs == 1:
                x = g.op("Squeeze", y, g.ints(1), hint=f"l{index}.ys")
            else:
                y = g.op("Transpose", y, perm=[0, 2, 1, 3])
                x = g.op("Reshape", y, g.ints(0, 0, -1), hint=f"l{index}.ys")
        for j, f in enumerate(layer_finals):
            finals[j].append(f)
    finals_out = tuple(f[0] if L == 1 else g.op("Concat", *f, axis=0, hint="final") for f in finals)
    top = layer_finals[0]  # (dirs, B, O) -> (B, dirs*O)
    last = g.op("Reshape", g.op("Transpose", top, perm=[1, 0, 2]), g.ints(0, -1), hint="last")
    return x, finals_out, last


def _jordan(g: Graph, layer, index: int, x: str, mask: str | None, init: str):
    """One stacked Jordan layer (both directions) as Scans. Returns (ys (T, B, dirs*O), [finals (dirs, B, O)])."""
    dirs, O = layer.num_directions, layer.cores[0].output_size
    if not init:  # zeros (dirs, B, O)
        shape = g.op("Concat", g.ints(dirs), dim(g, x, 1), g.ints(O), axis=0)
        init = g.op("ConstantOfShape", shape, value=g.onnx.helper.make_tensor("zero", 1, [1], [0.0]))
    ys, finals = [], []
    for d in range(dirs):
        core = layer.cores[index * dirs + d]
        p = {k: v.astype(np.float32) for k, v in core.params.items()}
        name = f"l{index}{'_reverse' if d else ''}"
        # the input projection of every step in one MatMul, outside the loop: (T, B, H)
        xp = g.op("Add", g.op("MatMul", x, g.const(p["W_x"], f"{name}.W_x")),
                  g.const(p["b_x"] + p["b_h"], f"{name}.b"), hint=f"{name}.xp")
        y0 = g.op("Squeeze", g.op("Slice", init, g.ints(d), g.ints(d + 1), g.ints(0)), g.ints(0))
        body = _jordan_step(g, core, p, name, mask is not None)
        scan_in = [xp] + ([mask] if mask is not None else [])
        y_final, y_seq = g.op("Scan", y0, *scan_in, outputs=2, hint=f"{name}.scan", body=body,
                              num_scan_inputs=len(scan_in), scan_input_directions=[d] * len(scan_in),
                              scan_output_directions=[d])
        ys.append(y_seq)
        finals.append(g.op("Unsqueeze", y_final, g.ints(0)))
    y = ys[0] if dirs == 1 else g.op("Concat", *ys, axis=2, hint=f"l{index}.ys")
    return y, [finals[0] if dirs == 1 else g.op("Concat", *finals, axis=0)]


def _jordan_step(g: Graph, core, p: dict, name: str, masked: bool):
    """The Scan body: (y_prev (B, O), xp_t (B, H)[, m_t (B, 1)]) -> (y_next, y_out), as a GraphProto.

        h_t = tanh(xp_t + y_prev W_h);  y_t = out(h_t W_o + b_o)
    A masked step keeps y_prev as the state and outputs zeros, like rnnkit's masks.
    """
    from rnnkit.export.graph import FLOAT

    s = g.subgraph(f"{name}_step")
    O, H = core.output_size, core.hidden_size
    y_prev = s.input(f"{name}.y_prev", FLOAT, ["B", O], fresh=True)
    xp = s.input(f"{name}.xp_t", FLOAT, ["B", H], fresh=True)
    h = s.op("Tanh", s.op("Add", xp, s.op("MatMul", y_prev, g.const(p["W_h"], f"{name}.W_h"))))
    a = s.op("Add", s.op("MatMul", h, g.const(p["W_o"], f"{name}.W_o")), g.const(p["b_o"], f"{name}.b_o"))
    act = setting(core, "output_activation")
    y = a if act == "identity" else s.op({"tanh": "Tanh", "sigmoid": "Sigmoid"}[act], a)
    y_out = y
    if masked:
        m = s.input(f"{name}.m_t", "bool", ["B", 1], fresh=True)
        y = s.op("Where", m, y, y_prev)
        y_out = s.op("Where", m, y_out, g.const(0.0, "zero_f"))
    s.output(y, f"{name}.y_next", FLOAT, ["B", O], fresh=True)
    s.output(y_out, f"{name}.y_t", FLOAT, ["B", O], fresh=True)
    return s.proto()
