"""``write_view``: one self-contained HTML page that colours a text by any unit of a character model, ranks
units against features, draws a units-by-time heat map and samples from the model in the browser.

Everything is inline (script, style, data); activations are stored as 8-bit codes on fixed ranges and all
binary data (codes, top-5 predictions, float weights) is one zlib stream, base64 in a JSON block, that the
page inflates with the browser's own DecompressionStream.
"""
from __future__ import annotations

import base64
import html
import json
import os
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.views.traces import FEATURES, best_units, dequantise, quantise, run_text

TOP_K = 5
FORMAT = 1


class _Blob:
    """Binary sections appended one after another; ``spec`` says where each lies and how to read it."""

    def __init__(self):
        self.parts, self.spec, self.size = [], {}, 0

    def add(self, name: str, array: np.ndarray) -> None:
        a = np.ascontiguousarray(array)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        pad = (-self.size) % 8  # typed arrays in the page need aligned offsets
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        self.spec[name] = {"offset": self.size, "dtype": a.dtype.name, "shape": list(a.shape)}
        self.parts.append(a.tobytes())
        self.size += a.nbytes

    def encoded(self) -> str:
        return base64.b64encode(zlib.compress(b"".join(self.parts), 6)).decode("ascii")


def _arch(model) -> dict:
    core = model.rnn.cores[0]
    arch = dict(model.arch())
    arch.update(reset_after=bool(getattr(model.rnn, "reset_after", True)),
                nonlinearity=getattr(core, "nonlinearity", "tanh"),
                output_activation=getattr(core, "output_activation", "tanh"))
    return arch


def _asset(name: str) -> str:
    return resources.files("rnnkit.views").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(obj) -> str:
    """JSON safe inside a <script> element (no '</' can close it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def payload(lm, text: str, title: str = "", quantities: list[str] | None = None) -> tuple[dict, dict]:
    """(the page's data, a summary: best units per feature, quantisation error, sizes). ``quantities``:
    names to store (None: all; h is always kept); each one costs units x characters bytes before deflate."""
    model, vocab = lm.model, lm.vocab
    ids = vocab.encode(text, what="text to view").astype(np.intp)
    computed, probs = run_text(lm, ids)
    known = list(dict.fromkeys(q.name for q in computed))
    unknown = sorted(set(quantities or ()) - set(known))
    if unknown:
        raise UserError(f"this {model.cell} model has no quantity {', '.join(unknown)}; "
                        f"choose among {', '.join(known)}")
    keep = set(known if quantities is None else quantities) | {"h"}
    quantities = [q for q in computed if q.name in keep]
    blob = _Blob()
    layers, max_err = [], 0.0
    for q in quantities:
        codes = quantise(q.values, q.lo, q.hi)
        max_err = max(max_err, float(np.abs(dequantise(codes, q.lo, q.hi) - np.clip(q.values, q.lo, q.hi)).max()))
        key = f"act.{q.layer}.{q.name}"
        blob.add(key, codes.T)  # unit-major (H, T): one unit's trace is contiguous (and deflates better)
        while len(layers) <= q.layer:
            layers.append({"quantities": []})
        layers[q.layer]["quantities"].append({"name": q.name, "kind": q.kind, "lo": q.lo, "hi": q.hi,
                                              "units": q.values.shape[1], "key": key})
    k = min(TOP_K, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    blob.add("top.ids", top.astype(np.uint8 if probs.shape[1] <= 256 else np.uint16))
    blob.add("top.p", np.rint(np.take_along_axis(probs, top, axis=1) * 65535).astype(np.uint16))
    weight_dtype = np.float64 if model.dtype == np.float64 else np.float32
    for name, value in model.params.items():
        blob.add(f"w.{name}", value.astype(weight_dtype))
    meta = lm.meta or {}
    warmup = "".join(c for c in (meta.get("warmup") or "") if c in vocab.chars)
    data = {"format": FORMAT, "title": title, "arch": _arch(model), "vocab": vocab.chars, "text": text,
            "layers": layers, "step": meta.get("step"), "val_loss": meta.get("val_loss"), "warmup": warmup,
            "features": FEATURES, "quant_max_error": max_err, "sections": blob.spec, "blob": blob.encoded()}
    summary = {"chars": len(text), "best": best_units(quantities, text), "quant_max_error": max_err,
               "quantities": [(q.layer, q.name, q.kind, q.lo, q.hi) for q in quantities]}
    return data, summary


def render(data: dict) -> str:
    """The page: the template with the style, the scripts and the data put in."""
    page = _asset("page.html")
    page = page.replace("/*STYLE*/", _asset("view.css"))
    page = page.replace("/*MODEL_JS*/", _asset("model.js")).replace("/*VIEW_JS*/", _asset("view.js"))
    page = page.replace("/*PANELS_JS*/", _asset("panels.js"))
    page = page.replace("<!--TITLE-->", html.escape(data["title"] or "rnnkit view"))
    return page.replace("/*DATA*/", _script_json(data))


def write_view(lm, text: str, path: str | os.PathLike, *, max_chars: int | None = None, title: str = "",
               strict: bool = False, quantities: list[str] | None = None) -> dict:
    """Write the page for ``lm`` (a LanguageModel) reading ``text`` to ``path``; returns a summary dict.

    ``max_chars`` keeps the first characters only; ``quantities`` (e.g. ["h", "c"]) stores only those (h
    always) for a smaller page. Characters the model never saw are dropped (counted in
    ``summary["unknown"]``); ``strict=True`` refuses them instead. The summary holds ``best`` (per built-in
    feature the units that follow it best: (layer.quantity, unit, Pearson r)), ``quant_max_error``,
    ``bytes`` and ``path``.
    """
    if max_chars is not None and max_chars < 1:
        raise UserError(f"--chars must be at least 1, got {max_chars}")
    if strict:
        lm.vocab.encode(text, what="text to view")
        unknown = {}
    else:
        text, unknown = lm.vocab.drop_unknown(text)
    if max_chars is not None:
        text = text[:max_chars]
    if not text:
        raise UserError("the text to view is empty (after dropping characters the model never saw)")
    data, summary = payload(lm, text, title=title, quantities=quantities)
    page = render(data)
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist; create it or choose another --out")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    summary.update(path=str(path), bytes=path.stat().st_size, unknown=unknown)
    return summary


def validation_text(lm, chars: int) -> str:
    """The first ``chars`` characters of the validation split of the run that trained ``lm``."""
    from rnnkit.data.text import DEFAULT_SEPARATOR, read_texts, split_ids

    meta = lm.meta or {}
    cfg = meta.get("config") or {}
    if meta.get("text_fingerprint"):
        raise UserError("this run was trained on text given in Python, which is not stored; give a FILE to view")
    try:
        corpus, _ = read_texts(meta.get("data"), separator=cfg.get("separator", DEFAULT_SEPARATOR),
                               errors="replace" if cfg.get("replace_bad_bytes") else "strict")
    except (UserError, OSError) as exc:
        raise UserError(f"cannot read the run's training data again ({exc}); give a FILE to view") from None
    n_train = len(split_ids(np.arange(len(corpus)), cfg.get("val_fraction", 0.1))[0])
    return corpus[n_train:n_train + chars] or corpus[-chars:]
