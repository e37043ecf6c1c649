"""Recurrent layers exported to ONNX (LSTM, GRU both forms, Elman tanh/relu, Jordan as a Scan) equal
rnnkit's forward in onnxruntime: outputs and final states, masked unequal lengths, both directions."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.export.onnx import export_graphs
from rnnkit.export.recurrent import onnx_weights, setting
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN
from tests.export.util import close, randomize, run

D, H = 3, 5


def build(cell: str, num_layers: int, bidirectional: bool, return_sequences=True, dtype=np.float32, **extra):
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, return_sequences=return_sequences,
              dtype=dtype, rng=1, **extra)
    if cell == "lstm":
        return LSTM(D, H, **kw)
    if cell == "gru":
        return GRU(D, H, **kw)
    if cell == "gru_reset_before":
        return GRU(D, H, reset_after=False, **kw)
    if cell.startswith("elman"):
        return ElmanRNN(D, H, nonlinearity=cell.split("_")[1], **kw)
    return JordanRNN(D, H, 4, output_activation=cell.split("_")[1], **kw)


CELLS = ["lstm", "gru", "gru_reset_before", "elman_tanh", "elman_relu", "jordan_tanh", "jordan_sigmoid",
         "jordan_identity"]


def compare(layer, lengths, T=7, seed=0):
    """Random inputs and initial states, rows valid for ``lengths`` steps: ONNX vs rnnkit."""
    rng = np.random.default_rng(seed)
    relu = isinstance(layer, ElmanRNN) and setting(layer.cores[0], "nonlinearity") == "relu"
    randomize(layer, rng, 0.4 if relu else 0.6)
    B = len(lengths)
    lengths = np.asarray(lengths, np.int64)
    xs = rng.standard_normal((B, T, layer.input_size)).astype(layer.dtype)
    state = tuple(rng.standard_normal(s.shape).astype(layer.dtype) for s in layer.initial_state(B))
    mask = np.arange(T)[None, :] < lengths[:, None]
    ys, finals = layer.forward(xs, state, mask)
    graph = export_graphs(layer).graphs[""]
    feeds = {"xs": xs.astype(np.float32), "lengths": lengths}
    names = [i.name for i in graph.graph.input][2:]
    feeds.update({n: s.astype(np.float32) for n, s in zip(names, state)})
    out = run(graph, **feeds)
    got = list(out.values())
    diffs = [close(got[0], ys)] + [close(a, b) for a, b in zip(got[1:], finals)]
    assert len(got) == 1 + len(finals)
    return max(diffs), out, ys


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_layer_matches_rnnkit_on_a_masked_batch(cell, num_layers, bidirectional):
    layer = build(cell, num_layers, bidirectional)
    diff, out, ys = compare(layer, lengths=[7, 3, 1, 6])
    assert np.all(out[next(iter(out))][1, 3:] == 0)  # outputs past a row's end are zero, as in rnnkit
    assert diff < 1e-5


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman_tanh", "jordan_tanh"])
def test_final_output_without_return_sequences(cell):
    """return_sequences=False: each direction's final output (the last valid step forward, step 0 back)."""
    layer = build(cell, 2, True, return_sequences=False)
    diff, out, y = compare(layer, lengths=[2, 7, 5])
    assert "y" in out and y.shape == (3, 2 * layer.cores[-1].output_size)


@pytest.mark.parametrize("cell", CELLS)
def test_reference_engine_layers_export_the_same_way(cell):
    layer = build(cell, 2, True, engine="reference")
    assert type(layer.cores[0]).__name__ == "ReferenceCore"
    compare(layer, lengths=[4, 7, 2])


def test_full_length_batch_and_float64_layer():
    layer = build("lstm", 2, True, dtype=np.float64)  # the graph is float32: rounding within the tolerance
    compare(layer, lengths=[7, 7], seed=3)


def test_gate_order_is_onnx_order():
    """Hand check of the reordering: ONNX LSTM rows i, o, f, c and GRU rows z, r, h of our i,f,g,o / r,z,n."""
    lstm = LSTM(2, 3, rng=0)
    W, R, B = onnx_weights(lstm, "LSTM", 0)
    Wx = lstm.params["l0.W_x"]  # (D, 4H) columns i, f, g, o
    for onnx_block, ours in enumerate([0, 3, 1, 2]):
        np.testing.assert_array_equal(W[0, onnx_block * 3:(onnx_block + 1) * 3], Wx[:, ours * 3:(ours + 1) * 3].T)
    np.testing.assert_array_equal(B[0, 12 + 3:12 + 6], lstm.params["l0.b_h"][9:12])  # R_b of o is b_h of o
    gru = GRU(2, 3, rng=0)
    W, R, B = onnx_weights(gru, "GRU", 0)
    Wh = gru.params["l0.W_h"]  # columns r, z, n
    for onnx_block, ours in enumerate([1, 0, 2]):
        np.testing.assert_array_equal(R[0, onnx_block * 3:(onnx_block + 1) * 3], Wh[:, ours * 3:(ours + 1) * 3].T)


def test_graph_uses_onnx_recurrent_operators():
    for cell, op in [("lstm", "LSTM"), ("gru", "GRU"), ("elman_tanh", "RNN"), ("jordan_tanh", "Scan")]:
        graph = export_graphs(build(cell, 2, True)).graphs[""]
        ops = [n.op_type for n in graph.graph.node]
        assert ops.count(op) == (4 if op == "Scan" else 2), (cell, ops)
        assert graph.opset_import[0].version >= 14
        for node in graph.graph.node:
            if node.op_type == "GRU":
                attrs = {a.name: a.i for a in node.attribute}
                assert attrs["linear_before_reset"] == 1 and attrs["layout"] == 0
    graph = export_graphs(build("gru_reset_before", 1, False)).graphs[""]
    (node,) = [n for n in graph.graph.node if n.op_type == "GRU"]
    assert {a.name: a.i for a in node.attribute}["linear_before_reset"] == 0
