"""Small valid runs of every task (text, forecast, memory, classify) and ways to damage their files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CORPUS = "the quick brown fox jumps over the lazy dog. " * 40


def text_run(folder: Path) -> Path:
    """A 2-step text run folder (config.json, metrics.csv, ckpt-*.safetensors, best.safetensors)."""
    from rnnkit.tasks import text

    cfg = text.TextConfig(hidden_size=8, embedding_dim=4, batch_size=2, seq_len=8, steps=2, eval_every=1,
                          eval_chars=64, sample_length=0, warmup_steps=1)
    text.train(text=CORPUS, config=cfg, out=folder, progress=False)
    return folder


def forecast_file(folder: Path) -> Path:
    from rnnkit.tasks.forecast import Forecaster

    t = np.arange(80)
    y = np.sin(t / 4.0) + 0.05 * t + 3.0
    model = Forecaster(horizon=3, epochs=2, hidden_size=4, lookback=8, season=1).fit(y)
    return Path(model.save(folder / "model.safetensors"))


def memory_file(folder: Path) -> Path:
    from rnnkit.tasks import memory as M

    cfg = M.MemoryConfig(task="adding", length=6, cell="lstm", hidden_size=4, num_layers=1)
    model = M.build_model(M.get_task(cfg.task), cfg.cell, cfg.hidden_size, cfg.num_layers, rng=1)
    return M.save(model, folder / M.MODEL_FILE, cfg, step=3)


def classify_file(folder: Path) -> Path:
    from rnnkit.tasks.classify import SequenceClassifier

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((1, int(rng.integers(10, 16)))) + (i % 2) for i in range(12)]
    y = np.array(["a", "b"] * 6)
    clf = SequenceClassifier(model="rnn", normalize="global", hidden_size=4, front_size=4, channels=(4,),
                             kernels=(3,), epochs=1, patience=1, batch_size=4, n_estimators=1, val_size=0.25,
                             random_state=0).fit(X, y)
    return Path(clf.save(folder / "model.safetensors"))


# -- the safetensors layout, for mutations that keep the file parseable up to the changed field ----------
def split(data: bytes) -> tuple[dict, bytes]:
    """(header dict, tensor bytes) of a safetensors file."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body: bytes, raw_header: bytes | None = None) -> bytes:
    """A safetensors file from a header (any JSON value) or raw header bytes, and the tensor bytes."""
    h = raw_header if raw_header is not None else json.dumps(header).encode("utf-8", "surrogatepass")
    return len(h).to_bytes(8, "little") + h + body


def meta_of(header: dict) -> dict:
    return json.loads(header["__metadata__"]["meta"])


def with_meta(data: bytes, change) -> bytes:
    """The file with its rnnkit metadata (the JSON inside __metadata__.meta) passed through ``change``."""
    header, body = split(data)
    meta = meta_of(header)
    meta = change(meta)
    header["__metadata__"]["meta"] = json.dumps(meta)
    return join(header, body)
