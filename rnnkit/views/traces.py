"""What the page shows, computed with rnnkit: every unit of every quantity (h, LSTM c, each gate) of every layer
along a text, the next-character distributions, the built-in features and the units that follow them.

The activations come from the reference cells of :mod:`rnnkit.nn.recurrent.reference` stepped one character
at a time: their caches already hold the gate values, so no equation is written again here.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.recurrent import reference

TANH, GATE, FREE = "tanh", "gate", "free"  # a quantity's range: [-1, 1], [0, 1], or [-S, S] fixed per page
FEATURES = {"quotes": "inside quotes", "brackets": "inside brackets", "column": "position in the line",
            "word": "start of a word"}
_FREE_STEPS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


@dataclass
class Quantity:
    """One recorded quantity of one layer: ``values`` (T, H) and the fixed colour range [lo, hi]."""

    layer: int
    name: str
    kind: str
    lo: float
    hi: float
    values: np.ndarray


def _free_scale(values: np.ndarray) -> float:
    """The smallest of 1, 2, 5, 10, ... that bounds |values| (an unbounded quantity such as LSTM's c)."""
    top = float(np.max(np.abs(values))) if values.size else 0.0
    return next((s for s in _FREE_STEPS if top <= s), _FREE_STEPS[-1])


def reference_cells(model) -> list:
    """One reference cell per layer of a CharRNN, float64, holding copies of the model's weights."""
    rnn = model.rnn
    if getattr(rnn, "bidirectional", False):
        raise UserError("the view needs a one-directional model (a bidirectional layer reads the future)")
    cells = []
    for core in rnn.cores:
        opts = {}
        if model.cell == "elman":
            opts["nonlinearity"] = core.nonlinearity
        elif model.cell == "jordan":
            opts = {"output_size": core.params["W_o"].shape[1], "output_activation": core.output_activation}
        W_x = core.params["W_x"]
        hidden = W_x.shape[1] // len(rnn.reference_cell.gates)
        cell = rnn.reference_cell(W_x.shape[0], hidden, dtype=np.float64, rng=np.random.default_rng(0), **opts)
        for name, value in cell.params.items():
            value[...] = core.params[name]
        cells.append(cell)
    return cells


def _names(model, cell) -> list[tuple[str, str]]:
    """(quantity, range kind) recorded for a layer, in display order."""
    if model.cell == "lstm":
        return [("h", TANH), ("c", FREE), ("i", GATE), ("f", GATE), ("g", TANH), ("o", GATE)]
    if model.cell == "gru":
        return [("h", TANH), ("r", GATE), ("z", GATE), ("n", TANH)]
    if model.cell == "elman":
        return [("h", TANH if cell.nonlinearity == "tanh" else FREE)]
    out = {"tanh": TANH, "sigmoid": GATE, "identity": FREE}[cell.output_activation]
    return [("h", TANH), ("y", out)]


def run_text(lm, ids: np.ndarray) -> tuple[list[Quantity], np.ndarray]:
    """Read ``ids`` (T,) from the zero state: (quantities per layer, next-character probabilities (T, V)).

    Row t of every array is the value after reading character t.
    """
    model = lm.model
    cells = reference_cells(model)
    T = len(ids)
    names = [_names(model, c) for c in cells]
    rec = [{n: np.empty((T, c.hidden_size if n != "y" else c.output_size)) for n, _ in nm}
           for c, nm in zip(cells, names)]
    states = [tuple(np.zeros((1, s)) for s in (c.output_size,) * c.n_state) for c in cells]
    tops = np.empty((T, cells[-1].output_size))
    emb = model.embed.W.astype(np.float64)
    for t in range(T):
        x = emb[ids[t]][None, :]
        for k, cell in enumerate(cells):
            x, states[k], cache = cell.forward(x, states[k])
            values = dict(cell.gate_values(cache))
            if model.cell == "jordan":
                values.update(h=cache[2], y=cache[3])   # cache (x, y_prev, h, y_new)
            else:
                values["h"] = states[k][0]
                if model.cell == "lstm":
                    values["c"] = states[k][1]
            for n in rec[k]:
                rec[k][n][t] = values[n][0]
        tops[t] = x[0]
    logits = tops @ model.head.W.astype(np.float64) + model.head.b.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    quantities = []
    for k, nm in enumerate(names):
        for n, kind in nm:
            v = rec[k][n]
            lo, hi = {TANH: (-1.0, 1.0), GATE: (0.0, 1.0)}.get(kind, (None, None))
            if kind == FREE:
                s = _free_scale(v)
                lo, hi = -s, s
            quantities.append(Quantity(k, n, kind, lo, hi, v))
    return quantities, probs


def quantise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint8 codes of ``values`` on the fixed range [lo, hi] (clipped): code q stands for lo + q (hi - lo) / 255."""
    q = np.rint((np.clip(values, lo, hi) - lo) * (255.0 / (hi - lo)))
    return q.astype(np.uint8)


def dequantise(codes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + codes.astype(np.float64) * ((hi - lo) / 255.0)


# -- features and ranking (the page's JavaScript computes the same features; see assets/view.js) --------------
def _is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LN"


def feature(text: str, name: str) -> np.ndarray:
    """A built-in feature along ``text`` (T,), row t seen after reading character t:

    quotes: 1 inside a double-quoted span (an odd number of '"' read so far, so the opening quote counts
    as inside and the closing one as outside); brackets: 1 while more ( [ { than ) ] } are open; column:
    characters since the last line break (0 on the break itself); word: 1 on the first letter or digit of
    a word (Unicode letters and numbers).
    """
    out = np.zeros(len(text))
    if name == "quotes":
        inside = 0
        for t, c in enumerate(text):
            inside ^= c == '"'
            out[t] = inside
    elif name == "brackets":
        depth = 0
        for t, c in enumerate(text):
            depth += c in "([{"
            depth = max(0, depth - (c in ")]}"))
            out[t] = depth > 0
    elif name == "column":
        col = 0
        for t, c in enumerate(text):
            col = 0 if c == "\n" else col + 1
            out[t] = col
    elif name == "word":
        prev = False
        for t, c in enumerate(text):
            cur = _is_word_char(c)
            out[t] = cur and not prev
            prev = cur
    else:
        raise UserError(f"unknown feature {name!r}; choose one of {', '.join(FEATURES)}")
    return out


def correlations(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit (column of ``values`` (T, H)) with ``target`` (T,); 0 where either
    is constant. The page ranks units by its absolute value (a unit off inside and on outside follows too)."""
    v = values - values.mean(axis=0)
    f = target - target.mean()
    den = np.sqrt((v * v).sum(axis=0) * (f * f).sum())
    num = f @ v
    return np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12)


def best_units(quantities: list[Quantity], text: str, top: int = 3) -> dict[str, list[tuple[str, int, float]]]:
    """For each built-in feature, the ``top`` (quantity label, unit, r) over every layer and quantity."""
    out = {}
    for name in FEATURES:
        target = feature(text, name)
        rows = []
        for q in quantities:
            r = correlations(q.values, target)
            for j in np.argsort(-np.abs(r), kind="stable")[:top]:
                rows.append((f"l{q.layer}.{q.name}", int(j), float(r[j])))
        rows.sort(key=lambda row: -abs(row[2]))
        out[name] = rows[:top]
    return out
