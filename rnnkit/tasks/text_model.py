"""The character language model: Embedding -> stacked LSTM/GRU/Elman/Jordan -> Dense, and its checkpoints.

``CharRNN`` is a Layer: ``forward(ids (B, T), state)`` returns logits (B, T, V) and the state to carry into
the next chunk; ``backward(dlogits)`` accumulates every gradient. ``step(ids (B,), state)`` advances one
character for generation through a precomputed ``embedding @ W_x + biases`` table. ``model_to_checkpoint``
/ ``model_from_checkpoint`` store the weights, the architecture and the vocabulary together.
"""
from __future__ import annotations

import numpy as np

from rnnkit.data.text import CharVocab
from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.layers import Dense, Dropout, Embedding
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN

CELLS = ("lstm", "gru", "elman", "jordan")
ARCH_KEYS = ("cell", "hidden_size", "num_layers", "embedding_dim", "dropout", "dtype")


class CharRNN(Layer):
    """Embedding (V, E) -> recurrent stack (hidden H, ``num_layers``) -> dropout -> Dense (H, V) logits.

    Parameter names: ``embed.W``, ``rnn.l{k}.*`` (see :mod:`rnnkit.nn.recurrent`), ``head.W``, ``head.b``.
    ``dropout`` applies between stacked layers and before the output layer, in training only. All
    randomness (initialisation, then dropout masks) comes from the one generator ``rng``.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden_size: int = 512, num_layers: int = 1,
                 embedding_dim: int = 64, dropout: float = 0.0, dtype=np.float32, rng=None,
                 threads: int | None = None):
        super().__init__(dtype)
        if cell not in CELLS:
            raise UserError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers),
                            ("embedding_dim", embedding_dim), ("vocab_size", vocab_size)):
            if int(value) < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {dropout}")
        self.rng = as_rng(rng)
        self.vocab_size, self.cell = int(vocab_size), cell
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.embedding_dim, self.dropout = int(embedding_dim), float(dropout)
        V, E, H, L = self.vocab_size, self.embedding_dim, self.hidden_size, self.num_layers
        self.embed = self.add_child("embed", Embedding(V, E, dtype=dtype, rng=self.rng))
        # threads: see RecurrentLayer. One layer has no "between layers" to drop in (the stack would warn);
        # self.drop below still applies dropout before the output layer
        options = dict(dropout=dropout if L > 1 else 0.0, dtype=dtype, rng=self.rng, threads=threads)
        if cell == "lstm":
            rnn = LSTM(E, H, L, **options)
        elif cell == "gru":
            rnn = GRU(E, H, L, **options)
        elif cell == "elman":
            rnn = ElmanRNN(E, H, L, **options)
        else:
            rnn = JordanRNN(E, H, H, L, **options)
        self.rnn = self.add_child("rnn", rnn)
        self.drop = Dropout(dropout, rng=self.rng, dtype=dtype)
        self.head = self.add_child("head", Dense(rnn.output_size, V, dtype=dtype, rng=self.rng))
        self.projection = ProjectedEmbedding(self.embed, self.rnn)
        self._table = None  # the projection's table, for step(); rebuilt on demand
        # training through the projection (token_input = True) gives the same numbers but did not pay: the
        # (B, T, G*H) projected input and its gradient are transposed into and out of the fast cores' layout,
        # which cost as much as the (B*T, E) GEMMs saved (measured at E=64, H=256/512, LSTM and GRU), and
        # they are two more arrays of that size at the peak. Generation (step) uses its table.
        self.token_input = False

    def arch(self) -> dict:
        """The constructor arguments (except vocab and rng): enough to rebuild the model."""
        return {"cell": self.cell, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "embedding_dim": self.embedding_dim, "dropout": self.dropout, "dtype": self.dtype.name}

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        return self.rnn.initial_state(batch_size)

    # -- training ---------------------------------------------------------------------------
    def forward(self, ids, state=None, training: bool = False):
        """ids (B, T) ints -> (logits (B, T, V), final state to carry into the next chunk)."""
        self._table = None  # weights may change after a forward in training
        if self.token_input:  # x W_x of the first layer looked up per character (see ProjectedEmbedding)
            hs, state = self.rnn.forward(self.projection.forward(ids), state, training=training, projected=True)
        else:
            hs, state = self.rnn.forward(self.embed.forward(ids), state, training=training)
        return self.head.forward(self.drop.forward(hs, training=training)), state

    def backward(self, dlogits):
        """dlogits (B, T, V) -> None; accumulates into ``grads`` (no gradient flows into the state)."""
        dhs = self.drop.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dhs)
        if self.token_input:
            self.projection.backward(dx)
        else:
            self.embed.backward(dx)

    # -- generation -------------------------------------------------------------------------
    def step(self, ids, state=None):
        """One character for each row: ids (B,) -> (logits (B, V), new state). No dropout, no backward."""
        if self._table is None:
            self._table = self.projection.table()
        hs, state = self.rnn.step(self._table[np.asarray(ids)], state, projected=True)
        return self.head.forward(hs), state


class ProjectedEmbedding:
    """The embedding lookup fused with the first recurrent layer's input projection: ``x_t W_x`` with
    ``x_t = embed.W[id_t]`` is row ``id_t`` of the (V, G*H) table ``embed.W @ W_x``, one small product per
    call instead of a (B*T, E) x (E, G*H) GEMM. Its backward sums the rows of the projection's gradient per
    character (a GEMM with a one-hot matrix, fixed order) into the table's gradient, which gives both
    ``embed.W``'s and ``W_x``'s. The parameters stay where they are (``embed.W``, ``rnn.l0.W_x``)."""

    def __init__(self, embed: Embedding, rnn):
        self.embed, self.rnn = embed, rnn

    def table(self) -> np.ndarray:
        """(V, G*H): row v is embed.W[v] @ W_x, the first layer's input projection of character v."""
        return self.embed.W @ self.rnn.params["l0.W_x"]

    def forward(self, ids) -> np.ndarray:
        """ids (B, T) -> x W_x of every position, (B, T, G*H)."""
        self._ids = np.asarray(ids)
        return self.table()[self._ids]

    def backward(self, dxw: np.ndarray) -> None:
        """dxw (B, T, G*H), the gradient of forward's output: accumulate into embed.W's and W_x's gradients."""
        V, GH = self.embed.W.shape[0], dxw.shape[2]
        ids = self._ids.reshape(-1)
        present, inverse = np.unique(ids, return_inverse=True)
        onehot = np.zeros((present.size, ids.size), dtype=dxw.dtype)  # (U, B*T), U distinct characters
        onehot[inverse.reshape(-1), np.arange(ids.size)] = 1
        dtable = np.zeros((V, GH), dtype=dxw.dtype)
        dtable[present] = onehot @ dxw.reshape(-1, GH)  # table = embed.W @ W_x, looked up by ids
        self.embed.grads["W"] += dtable @ self.rnn.params["l0.W_x"].T
        self.rnn.grads["l0.W_x"] += self.embed.W.T @ dtable


def build_model(vocab_size: int, arch: dict, rng=None, threads: int | None = None) -> CharRNN:
    """A CharRNN from an ``arch`` dict (as returned by :meth:`CharRNN.arch`); ``threads`` for its layers."""
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    if unknown:
        raise UserError(f"unknown model settings {unknown}; known: {list(ARCH_KEYS)}")
    kwargs = dict(arch)
    kwargs["dtype"] = np.dtype(kwargs.get("dtype", "float32"))
    if kwargs["dtype"] not in (np.float32, np.float64):
        raise UserError(f"dtype must be float32 or float64, got {kwargs['dtype']}")
    return CharRNN(vocab_size, rng=rng, threads=threads, **kwargs)


class LanguageModel:
    """A trained model with its vocabulary: what :func:`rnnkit.tasks.text.load` returns.

    ``model`` (CharRNN), ``vocab`` (CharVocab), ``meta`` (the checkpoint's metadata: config, step,
    validation loss...). Pass it to ``generate``, ``evaluate`` and ``score``.
    """

    def __init__(self, model: CharRNN, vocab: CharVocab, meta: dict | None = None):
        if model.vocab_size != len(vocab):
            raise UserError(f"model has {model.vocab_size} output classes but the vocabulary {len(vocab)}")
        self.model, self.vocab, self.meta = model, vocab, dict(meta or {})

    def __repr__(self) -> str:
        a = self.model.arch()
        return (f"LanguageModel({a['cell']} {a['num_layers']}x{a['hidden_size']}, vocab {len(self.vocab)}, "
                f"{self.model.num_params():,} params, step {self.meta.get('step', '?')})")


def model_tensors(model: CharRNN) -> dict[str, np.ndarray]:
    """The model's parameters under checkpoint names ``model.<param>``."""
    return {f"model.{k}": v for k, v in model.params.items()}


def load_model_tensors(model: CharRNN, tensors: dict[str, np.ndarray]) -> None:
    """Copy ``model.*`` tensors into the model in place (names and shapes already validated)."""
    for k, p in model.params.items():
        p[...] = tensors[f"model.{k}"]
    model._table = None


def model_from_checkpoint(path):
    """``(LanguageModel, tensors, meta)`` from a checkpoint file; every model tensor is validated."""
    from rnnkit import io

    from rnnkit.tasks.text_checks import model_meta

    chars, arch = model_meta(path, io.read_meta(path))  # typed fields; a model that fits the file and memory
    vocab = CharVocab(chars)
    model = build_model(len(vocab), arch, rng=0)
    tensors, meta = io.load_checkpoint(path)
    expected = model_tensors(model)
    # validate the model part strictly; other groups (optimizer, state) are checked by their users
    sub = {k: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(sub))
    unexpected = sorted(set(sub) - set(expected))
    if missing or unexpected:
        raise UserError(f"checkpoint {path} does not match its own architecture: missing {missing}, "
                        f"unexpected {unexpected}")
    for k, v in expected.items():
        if sub[k].shape != v.shape or sub[k].dtype != v.dtype:
            raise UserError(f"checkpoint {path}: tensor {k!r} is {sub[k].dtype}{tuple(sub[k].shape)}, the "
                            f"architecture needs {v.dtype}{tuple(v.shape)}")
    load_model_tensors(model, tensors)
    return LanguageModel(model, vocab, meta), tensors, meta
