"""A small ONNX graph builder: unique names, weights as initializers, one call per node.

Every exporter writes through :class:`Graph`; it needs the optional ``onnx`` package, which
:func:`require_onnx` imports with an install hint when it is missing.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError

OPSET = 17  # RNN/LSTM/GRU have been stable since opset 14; 17 is read by every onnxruntime since 1.11
IR_VERSION = 8  # the IR of opset 17: newer runtimes read it, older ones are not shut out
INSTALL = "pip install 'rnnkit[onnx]'  (or: pip install onnx onnxruntime)"


def require_onnx():
    """The ``onnx`` module, or a UserError naming the install command."""
    try:
        import onnx
    except ImportError:
        raise UserError(f"ONNX export needs the onnx package, which is not installed; install it with: "
                        f"{INSTALL}") from None
    return onnx


FLOAT, INT64, BOOL, DOUBLE = "float", "int64", "bool", "double"


def _elem(kind: str) -> int:
    from onnx import TensorProto

    return {FLOAT: TensorProto.FLOAT, INT64: TensorProto.INT64, BOOL: TensorProto.BOOL,
            DOUBLE: TensorProto.DOUBLE}[kind]


class Graph:
    """Nodes, initializers, inputs and outputs of one (sub)graph; names are unique across a whole model.

    ``op("MatMul", a, b)`` adds a node and returns its output name (a list when ``outputs > 1``);
    ``const(array)`` adds an initializer. A subgraph (a Scan body) comes from :meth:`subgraph` and may
    read its parent's names (ONNX's outer scope).
    """

    def __init__(self, name: str = "rnnkit", _taken: set | None = None):
        self.onnx = require_onnx()
        self.name = name
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._taken = set() if _taken is None else _taken
        self._consts: dict = {}

    def fresh(self, hint: str) -> str:
        """A name not used anywhere in the model yet, built from ``hint``."""
        name, k = hint, 1
        while name in self._taken:
            name, k = f"{hint}_{k}", k + 1
        self._taken.add(name)
        return name

    def subgraph(self, name: str) -> "Graph":
        return Graph(name, self._taken)

    # -- values ---------------------------------------------------------------------------------
    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        """An initializer holding ``value`` cast to ``dtype``; small integer constants are shared."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = None
        if arr.size <= 8:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant (axes, shapes, slice bounds)."""
        return self.const(list(values), "ints", np.int64)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, hint: str | None = None, **attrs):
        """Add a node; ``""`` stands for an omitted optional input. Returns the output name(s)."""
        outs = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"n_{op_type}"),
                                                     **attrs))
        return outs[0] if outputs == 1 else outs

    # -- interface ------------------------------------------------------------------------------
    def input(self, name: str, kind: str, shape: list, doc: str = "", fresh: bool = False) -> str:
        """A graph input; ``fresh=True`` makes ``name`` unique instead of insisting on it."""
        if fresh:
            name = self.fresh(name)
        elif name in self._taken:
            raise ValueError(f"graph input name {name!r} is already used")
        self._taken.add(name)  # (a no-op after fresh())
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, _elem(kind), shape, doc))
        return name

    def output(self, value: str, name: str, kind: str, shape: list, doc: str = "", fresh: bool = False) -> str:
        """Expose ``value`` under ``name`` (through an Identity, so any value can be renamed)."""
        if fresh:
            name = self.fresh(name)
        elif name in self._taken:
            raise ValueError(f"graph output name {name!r} is already used")
        self._taken.add(name)
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name], name=self.fresh("n_out")))
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, _elem(kind), shape, doc))
        return name

    def proto(self):
        return self.onnx.helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)

    def model(self, doc: str = "", metadata: dict | None = None):
        """The checked ModelProto (``onnx.checker.check_model`` with full checks)."""
        onnx = self.onnx
        model = onnx.helper.make_model(self.proto(), opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                       producer_name="rnnkit", doc_string=doc)
        model.ir_version = IR_VERSION
        for k, v in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = str(k), str(v)
        onnx.checker.check_model(model, full_check=True)
        return model


# -- helpers used by several exporters ---------------------------------------------------------------
def dim(g: Graph, x: str, axis: int) -> str:
    """The size of ``x`` along ``axis`` as a 1-D int64 tensor of one element."""
    return g.op("Shape", x, start=axis, end=axis + 1, hint="dim")


def batch_first_to_time_major(g: Graph, x: str) -> str:
    """(B, T, ...) -> (T, B, ...) for a 3-D tensor."""
    return g.op("Transpose", x, perm=[1, 0, 2], hint="time_major")


def dense(g: Graph, x: str, W: np.ndarray, b: np.ndarray | None, hint: str) -> str:
    """x @ W + b on the last axis."""
    y = g.op("MatMul", x, g.const(W, f"{hint}.W"), hint=hint)
    return y if b is None else g.op("Add", y, g.const(b, f"{hint}.b"), hint=hint)
