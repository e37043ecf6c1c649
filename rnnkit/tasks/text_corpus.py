"""The corpus a text run was trained on: its fingerprint (stored in every checkpoint) and, for a loaded model,
its training and validation splits read again from the files the checkpoint names."""
from __future__ import annotations

import zlib

import numpy as np

from rnnkit.data.text import DEFAULT_SEPARATOR, read_texts, split_ids
from rnnkit.errors import UserError


def corpus_fingerprint(ids: np.ndarray) -> str:
    """``"<length>:<crc32 of the encoded ids>"``: what a resume or a re-read checks the corpus against."""
    return f"{len(ids)}:{zlib.crc32(memoryview(np.ascontiguousarray(ids)).cast('B')):08x}"


def training_texts(lm) -> tuple[str, str]:
    """(training split, validation split) of the text a loaded model was trained on, read again from the files
    (or the built-in corpus) its checkpoint names and checked against the corpus fingerprint stored there."""
    meta = lm.meta
    cfg = meta.get("config")
    if meta.get("text_fingerprint") or "corpus" not in meta or not isinstance(cfg, dict):
        raise UserError("this model's checkpoint does not say which files it was trained on (text given in Python "
                        "or a bare checkpoint); pass the training text yourself: spelling(lm, train_text, val_text)")
    try:
        corpus, sources = read_texts(meta.get("data"), errors="replace" if cfg.get("replace_bad_bytes") else "strict",
                                     separator=cfg.get("separator", DEFAULT_SEPARATOR))
    except UserError as exc:
        raise UserError(f"cannot read the model's training text again: {exc}") from None
    ids = None if lm.vocab.unknown(corpus) else lm.vocab.encode(corpus, check=False)
    if ids is None or corpus_fingerprint(ids) != meta["corpus"]:
        raise UserError(f"the training text ({', '.join(sources)}) changed since the model was trained on it; the "
                        "spelling report needs the same text: pass it as train_text")
    train_ids, val_ids = split_ids(ids, cfg.get("val_fraction", 0.1))
    return lm.vocab.decode(train_ids), lm.vocab.decode(val_ids)
