"""``to_onnx(model, path)``: a trained rnnkit model as ONNX graphs plus a JSON file describing them.

Each model type is one function registered with ``@exporter("module:Class")`` that returns an
:class:`Export` (graphs by file suffix, and the JSON's contents); ``to_onnx`` picks the function by the
model's class and writes the files. Graphs compute in float32 (a float64 model's weights are rounded).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.export.graph import FLOAT, INT64, Graph, batch_first_to_time_major, dense, require_onnx
from rnnkit.export.recurrent import emit, state_names
from rnnkit.export.registry import Registry

FORMAT_VERSION = 1


@dataclass
class Export:
    """What an exporter returns: ``graphs`` maps a file suffix ("" for the main graph, ".step" ...) to a
    ModelProto; ``info`` is written as JSON beside them (vocabulary, scalers, how to call the graphs)."""

    graphs: dict
    info: dict = field(default_factory=dict)


ONNX = Registry("ONNX")
exporter = ONNX.register  # @exporter("pkg.module:Class") on fn(model) -> Export


def export_graphs(model) -> Export:
    """The graphs and JSON for ``model``, without writing anything."""
    require_onnx()
    return ONNX.find(model)(model)


def paths_for(path, suffixes) -> tuple[list[Path], Path]:
    """Graph files for ``suffixes`` ("" -> path, ".step" -> stem.step.onnx) and the JSON beside them."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix == ".onnx" else path
    files = [Path(f"{stem}{s}.onnx") for s in suffixes]
    return files, Path(f"{stem}.json")


def to_onnx(model, path: str | os.PathLike) -> list[Path]:
    """Write ``model`` as ONNX: ``path`` (e.g. ``model.onnx``), more graphs as ``model.<kind>.onnx`` when
    the model has them (a text model's one-step graph) and ``model.json`` describing inputs, outputs and
    what the graph needs beside it. Returns the written paths. Raises UserError if it cannot be exported."""
    from rnnkit import io

    out = export_graphs(model)
    files, info_path = paths_for(path, list(out.graphs))
    info = {"format": "rnnkit-onnx", "format_version": FORMAT_VERSION, **out.info, "graphs": {}}
    for f, (suffix, proto) in zip(files, out.graphs.items()):
        info["graphs"][suffix.lstrip(".") or "main"] = {"file": f.name, **signature(proto)}
    make_parent(info_path)
    for f, proto in zip(files, out.graphs.values()):
        io.atomic_write_bytes(f, proto.SerializeToString())
    io.write_json(info_path, info)
    return [*files, info_path]


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {path.parent} for {path.name}: {exc.strerror}; choose "
                        "another --out") from None


def signature(proto) -> dict:
    """{"inputs": {name: [dims]}, "outputs": {...}} of a ModelProto (symbolic dims by name)."""
    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return {"inputs": {v.name: dims(v) for v in proto.graph.input},
            "outputs": {v.name: dims(v) for v in proto.graph.output}}


# -- a bare recurrent layer ----------------------------------------------------------------------------
def _state_inputs(g: Graph, layer) -> tuple[str, ...]:
    n = len(layer.cores)
    return tuple(g.input(f"{s}0", FLOAT, [n, "B", size], f"initial {s}, (num_layers*dirs, B, {size})")
                 for s, size in zip(state_names(layer), layer.state_sizes))


def _state_outputs(g: Graph, layer, finals) -> None:
    n = len(layer.cores)
    for s, size, f in zip(state_names(layer), layer.state_sizes, finals):
        g.output(f, f"{s}n", FLOAT, [n, "B", size], f"final {s}")


def _lengths(g: Graph) -> str:
    lengths = g.input("lengths", INT64, ["B"], "valid steps of each row (right padding); T when unpadded")
    return g.op("Cast", lengths, to=6, hint="lengths32")  # ONNX's sequence_lens are int32


@exporter("rnnkit.nn.recurrent.stack:RecurrentLayer")
def recurrent_layer(layer) -> Export:
    """xs (B, T, D), lengths (B,), initial states -> ys (B, T, O*dirs) (or y (B, O*dirs) without
    return_sequences) and the final states, as :meth:`RecurrentLayer.forward` with a right-padding mask."""
    g = Graph("rnnkit_recurrent")
    xs = g.input("xs", FLOAT, ["B", "T", layer.input_size])
    lengths = _lengths(g)
    ys, finals, last = emit(g, layer, batch_first_to_time_major(g, xs), lengths, _state_inputs(g, layer))
    if layer.return_sequences:
        g.output(g.op("Transpose", ys, perm=[1, 0, 2]), "ys", FLOAT, ["B", "T", layer.output_size])
    else:
        g.output(last, "y", FLOAT, ["B", layer.output_size])
    _state_outputs(g, layer, finals)
    return Export({"": g.model(f"rnnkit {type(layer).__name__}")}, {"model": "recurrent-layer",
                                                                      "layer": type(layer).__name__})


# -- the memory tasks' model ------------------------------------------------------------------------------
@exporter("rnnkit.tasks.memory:SequenceModel")
def sequence_model(model) -> Export:
    """xs (B, T, D), lengths (B,) -> out: (B, T, O) per step or (B, O) at each row's last step."""
    g = Graph("rnnkit_sequence")
    rnn = model.rnn
    xs = g.input("xs", FLOAT, ["B", "T", rnn.input_size])
    ys, _, last = emit(g, rnn, batch_first_to_time_major(g, xs), _lengths(g))
    head = model.head.params
    if rnn.return_sequences:
        out = g.op("Transpose", dense(g, ys, head["W"], head["b"], "head"), perm=[1, 0, 2])
        g.output(out, "out", FLOAT, ["B", "T", head["W"].shape[1]])
    else:
        g.output(dense(g, last, head["W"], head["b"], "head"), "out", FLOAT, ["B", head["W"].shape[1]])
    return Export({"": g.model(f"rnnkit sequence model ({model.cell})")},
                  {"model": "sequence", "cell": model.cell, "output": model.output})


# -- the character language model ---------------------------------------------------------------------------
def _char_graph(m, step: bool):
    """Whole sequence: ids (B, T) -> logits (B, T, V); one step: ids (B,) -> logits (B, V). Both take the
    state (``h0``, and ``c0`` for the LSTM) and return the next one (``hn``, ``cn``)."""
    g = Graph("rnnkit_text_step" if step else "rnnkit_text")
    ids = g.input("ids", INT64, ["B"] if step else ["B", "T"], "character ids (see the JSON's vocabulary)")
    states = _state_inputs(g, m.rnn)
    ids_tm = g.op("Unsqueeze", ids, g.ints(0)) if step else g.op("Transpose", ids, perm=[1, 0])  # (T, B)
    x = g.op("Gather", g.const(m.embed.params["W"].astype(np.float32), "embed.W"), ids_tm, axis=0)  # (T, B, E)
    ys, finals, _ = emit(g, m.rnn, x, None, states)
    head = m.head.params
    logits = dense(g, ys, head["W"].astype(np.float32), head["b"].astype(np.float32), "head")  # (T, B, V)
    if step:
        g.output(g.op("Squeeze", logits, g.ints(0)), "logits", FLOAT, ["B", m.vocab_size])
    else:
        g.output(g.op("Transpose", logits, perm=[1, 0, 2]), "logits", FLOAT, ["B", "T", m.vocab_size])
    _state_outputs(g, m.rnn, finals)
    return g.model(f"rnnkit character model ({m.cell}), {'one step' if step else 'whole sequence'}")


@exporter("rnnkit.tasks.text_model:CharRNN")
def char_rnn(model) -> Export:
    # a list, in the graphs' order of state inputs and outputs (a dict's keys would be sorted in the JSON)
    state = [{"input": f"{s}0", "output": f"{s}n", "shape": [len(model.rnn.cores), "B", size]}
             for s, size in zip(state_names(model.rnn), model.rnn.state_sizes)]
    info = {"model": "text", "arch": model.arch(), "state": state}
    return Export({"": _char_graph(model, False), ".step": _char_graph(model, True)}, info)


@exporter("rnnkit.tasks.text_model:LanguageModel")
def language_model(lm) -> Export:
    """The CharRNN's two graphs and, in the JSON, the vocabulary: ``chars[i]`` is character id i."""
    out = char_rnn(lm.model)
    out.info["chars"] = lm.vocab.chars  # character id i is chars[i]
    return out
