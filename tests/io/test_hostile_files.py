"""Named hostile files for every loader: pipes and folders where files belong, deep or duplicated JSON,
lone surrogates, wrong types, a future format version, tensors of the wrong dtype. Each is refused at once
with one line naming the file and the field."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rnnkit import io
from rnnkit.errors import UserError
from tests.io import runs
from tests.io.conftest import time_limit
from tests.io.test_fuzz_loaders import _export_load, _load

KINDS = ["text", "forecast", "memory", "classify"]


def _refused(fn, path, *pattern):
    with time_limit(10), pytest.raises(UserError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    for p in pattern:
        assert p in msg, msg
    return msg


@pytest.mark.parametrize("kind", KINDS)
def test_a_pipe_or_folder_where_the_checkpoint_belongs_is_refused_at_once(tmp_path, kind):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)  # opening it for reading would block forever without a writer
    _refused(lambda p: _load(kind, p), fifo, "not a regular file")
    _refused(_export_load, fifo, "not a regular file")
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    with time_limit(10), pytest.raises(UserError):
        _load(kind, folder)


def test_pipes_for_config_json_and_metrics_csv_are_refused(tmp_path):
    from rnnkit.tasks.forecast_checks import run_config

    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    for read in (io.read_json_file, run_config, lambda p: io.read_metrics_csv(p, ["kind", "step"])):
        _refused(read, fifo, "not a regular file")


def test_a_text_run_folder_with_a_pipe_resume_refuses_it(valid_files, tmp_path):
    from rnnkit.tasks import text

    import shutil
    run = tmp_path / "run"
    shutil.copytree(valid_files["text_dir"], run)
    (run / "metrics.csv").unlink()
    os.mkfifo(run / "metrics.csv")
    with time_limit(30), pytest.raises(UserError, match="metrics file .* not a regular file"):
        text.train(resume=run, config=text.TextConfig(steps=3), text=runs.CORPUS, progress=False)


def _meta_change(kind, change):
    return lambda data: runs.with_meta(data, change)


def _set_path(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return d


HOSTILE = [  # (kind, name, damage(bytes) -> bytes, words the message must contain)
    ("text", "header is a list", lambda b: runs.join(None, runs.split(b)[1], raw_header=b"[1, 2]"), ["JSON list"]),
    ("text", "header nests 300,000 deep",
     lambda b: runs.join(None, runs.split(b)[1], raw_header=b"[" * 300_000 + b"]" * 300_000), ["nests"]),
    ("text", "duplicate header keys",
     lambda b: runs.join(None, runs.split(b)[1], raw_header=b'{"a": {}, "a": {}}'), ["duplicate key"]),
    ("text", "metadata nests deep", lambda b: _raw_meta(b, "[" * 200_000 + "]" * 200_000), ["nests"]),
    ("text", "metadata is a string", lambda b: _raw_meta(b, '"hello"'), ["JSON string"]),
    ("text", "lone surrogate in the vocabulary", lambda b: _raw_meta(b, _meta_text(b).replace(
        '"vocab": "', '"vocab": "\\udc80')), ["lone surrogate"]),
    ("text", "duplicate vocabulary entry", lambda b: runs.with_meta(b, lambda m: {**m, "vocab": m["vocab"] + "a"}),
     ["vocab", "twice"]),
    ("text", "vocabulary is a list", lambda b: runs.with_meta(b, lambda m: {**m, "vocab": list(m["vocab"])}),
     ["'vocab'", "expected a string"]),
    ("text", "number where a string belongs", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("arch", "cell"), 3) and m), ["'cell'", "expected a string"]),
    ("text", "string where a number belongs", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("arch", "hidden_size"), "8") and m), ["'hidden_size'", "expected an integer"]),
    ("text", "hidden size larger than the machine", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("arch", "hidden_size"), 10**9) and m), ["more than the file"]),
    ("text", "unknown config key", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("config", "bogus"), 1) and m), ["unknown field", "bogus"]),
    ("text", "missing arch key", lambda b: runs.with_meta(
        b, lambda m: m["arch"].pop("cell") and m), ["lacks", "cell"]),
    ("text", "format version from the future", lambda b: _header(b, lambda h: h["__metadata__"].update(version="9")),
     ["format version '9'", "upgrade"]),
    ("text", "unknown dtype", lambda b: _header(b, lambda h: _first_tensor(h).update(dtype="Q7")), ["unknown dtype"]),
    ("text", "offsets past the end", lambda b: _header(
        b, lambda h: _first_tensor(h).update(data_offsets=[0, 2**40])), ["offsets"]),
    ("text", "shape larger than the data", lambda b: _header(
        b, lambda h: _first_tensor(h).update(shape=[10**9, 10**9])), ["shape needs"]),
    ("text", "float64 where float32 was saved", lambda b: _retype(b, np.float64), ["float64", "float32"]),
    ("text", "int32 where float32 was saved", lambda b: _retype(b, np.int32), ["int32", "float32"]),
    ("forecast", "lookback as a string", lambda b: runs.with_meta(b, lambda m: {**m, "lookback_": "8"}),
     ["'lookback_'", "expected an integer"]),
    ("forecast", "series is an object", lambda b: runs.with_meta(b, lambda m: {**m, "series": {}}),
     ["'series'", "expected a list"]),
    ("forecast", "unknown metadata key", lambda b: runs.with_meta(b, lambda m: {**m, "zzz": 1}), ["unknown", "zzz"]),
    ("forecast", "float32 tail", lambda b: _retype(b, np.float32, prefix="tail."), ["float32", "float64"]),
    ("memory", "config is a list", lambda b: runs.with_meta(b, lambda m: {**m, "config": [1]}), ["config"]),
    ("memory", "hidden size as a float", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("config", "hidden_size"), 4.0) and m), ["'hidden_size'", "expected an integer"]),
    ("memory", "hidden size beyond memory", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("config", "hidden_size"), 10**8) and m), ["larger than the file"]),
    ("classify", "classes are nested", lambda b: runs.with_meta(b, lambda m: {**m, "classes_": [["a"], "b"]}),
     ["classes_"]),
    ("classify", "channels as a string", lambda b: runs.with_meta(
        b, lambda m: _set_path(m, ("config", "channels"), "4") and m), ["'channels'", "expected a list"]),
    ("classify", "float64 net weights", lambda b: _retype(b, np.float64, prefix="net0."), ["float64", "float32"]),
]


def _meta_text(b: bytes) -> str:
    return runs.split(b)[0]["__metadata__"]["meta"]


def _raw_meta(b: bytes, text: str) -> bytes:
    header, body = runs.split(b)
    header["__metadata__"]["meta"] = text
    raw = json.dumps(header).encode()
    return runs.join(None, body, raw_header=raw)


def _header(b: bytes, change) -> bytes:
    header, body = runs.split(b)
    change(header)
    return runs.join(header, body)


def _first_tensor(header: dict) -> dict:
    return header[sorted(k for k in header if k != "__metadata__")[0]]


def _retype(b: bytes, dtype, prefix="model.") -> bytes:
    """A well-formed file whose first tensor named ``prefix*`` is stored as ``dtype`` (no silent cast allowed)."""
    from safetensors.numpy import load, save

    header, _ = runs.split(b)
    tensors = load(b)
    name = sorted(k for k in tensors if k.startswith(prefix))[0]
    tensors[name] = tensors[name].astype(dtype)
    return save(tensors, metadata=header["__metadata__"])


@pytest.mark.parametrize("kind, name, damage, words", HOSTILE, ids=[f"{k}: {n}" for k, n, _, _ in HOSTILE])
def test_hostile_checkpoint_is_refused_in_one_line(valid_files, tmp_path, kind, name, damage, words):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(damage(valid_files[kind]))
    _refused(lambda p: _load(kind, p), path, *words)
    with time_limit(10), pytest.raises(UserError):
        _export_load(path)


@pytest.mark.parametrize("text, words", [
    (b"[" * 100_000 + b"]" * 100_000, ["nests"]), (b'{"a": 1, "a": 2}', ["duplicate key"]),
    (b'{"a": "\\ud800"}', ["lone surrogate"]), (b'{"a": NaN}', ["NaN"]), (b'{"a": 1e999}', ["non-finite"]),
    (b"[]", ["JSON list"]), (b"\xff\xfe{}", ["not UTF-8"]), (b"", ["not valid JSON"]),
])
def test_hostile_config_json_is_refused_in_one_line(tmp_path, text, words):
    path = tmp_path / "config.json"
    path.write_bytes(text)
    _refused(io.read_json_file, path, *words)


def test_an_oversized_warmup_text_is_refused(valid_files, tmp_path):
    from rnnkit.tasks.text_checks import MAX_WARMUP

    path = tmp_path / "big.safetensors"
    path.write_bytes(runs.with_meta(valid_files["text"], lambda m: {**m, "warmup": "a" * (MAX_WARMUP + 1)}))
    _refused(lambda p: _load("text", p), path, "'warmup'", "at most")
