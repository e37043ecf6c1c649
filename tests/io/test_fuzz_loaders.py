"""Property-based fuzzing of every checkpoint loader: valid text, forecast, memory and classify checkpoints are
truncated, bit-flipped, given other header lengths and offsets, and have JSON values (in the safetensors header
and in the rnnkit metadata) replaced by values of other types. Every loader must either load or raise the
project's UserError -- never another exception, never a hang (SIGALRM limit per case)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.errors import UserError
from tests.io import runs
from tests.io.conftest import time_limit

LIMIT_S = 10  # per case; a healthy load takes milliseconds


def _load(kind: str, path):
    if kind == "text":
        from rnnkit.tasks.text import load
        return load(path)
    if kind == "forecast":
        from rnnkit.tasks.forecast import Forecaster
        return Forecaster.load(path)
    if kind == "memory":
        from rnnkit.tasks.memory import load
        return load(path)
    from rnnkit.tasks.classify import SequenceClassifier
    return SequenceClassifier.load(path)


def _export_load(path):
    from rnnkit.export.runs import load_run
    return load_run(path)


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value, the root excluded."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return []
    out = []
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, -1, 1, 2**31, 2**63, 10**12])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["\ud800", "F32", "F64", "I64", "BF16", "float64", "gru", "", "999"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
) | st.just(_DELETE)


@st.composite
def mutations(draw, data: bytes):
    """(description, damaged bytes) from one valid checkpoint."""
    kind = draw(st.sampled_from(["truncate", "flip", "header_length", "header_json", "meta_json", "offsets",
                                 "raw_header"]))
    header, body = runs.split(data)
    if kind == "truncate":
        n = draw(st.integers(0, len(data) - 1))
        return f"truncated to {n} bytes", data[:n]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= 1 << draw(st.integers(0, 7))
        return "bytes flipped", bytes(out)
    if kind == "header_length":
        n = draw(st.integers(0, 2**64 - 1) | st.integers(-64, 64).map(
            lambda d: max(0, int.from_bytes(data[:8], "little") + d)))
        return f"header length {n}", n.to_bytes(8, "little") + data[8:]
    if kind == "raw_header":  # header text that is not the JSON object expected
        raw = draw(st.sampled_from([b"[]", b'"text"', b"1", b"null", b"[" * 200_000 + b"]" * 200_000,
                                    b"{" * 100_000, b'{"a": 1, "a": 2}', b'{"__metadata__": []}', b"\xff\xfe{}",
                                    b'{"x": NaN}']))
        return "raw header", runs.join(None, body, raw_header=raw)
    if kind == "offsets":
        name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        header[name]["data_offsets"] = [draw(st.integers(0, 2**40)) for _ in range(2)]
        return f"offsets of {name}", runs.join(header, body)
    if kind == "header_json":
        path = draw(st.sampled_from(_paths(header)))
        _set(header, path, draw(json_values))
        return f"header {path}", runs.join(header, body)
    meta = runs.meta_of(header)
    path = draw(st.sampled_from(_paths(meta) or [("x",)]))
    value = draw(json_values)
    _set(meta, path, value)
    header["__metadata__"]["meta"] = json.dumps(meta)
    return f"meta {path}", runs.join(header, body)


def _check(kind, data, tmp_path, loader=None):
    path = tmp_path / f"fuzz-{kind}.safetensors"
    path.write_bytes(data)
    try:
        with time_limit(LIMIT_S):
            (loader or (lambda p: _load(kind, p)))(path)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), "one line"


@pytest.mark.parametrize("kind", ["text", "forecast", "memory", "classify"])
def test_valid_checkpoints_load(valid_files, tmp_path, kind):
    path = tmp_path / "ok.safetensors"
    path.write_bytes(valid_files[kind])
    assert _load(kind, path) is not None
    assert _export_load(path) is not None


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", ["text", "forecast", "memory", "classify"])
@FUZZ
@given(data=st.data())
def test_damaged_checkpoint_loads_or_raises_user_error(valid_files, tmp_path, kind, data):
    what, damaged = data.draw(mutations(valid_files[kind]))
    _check(kind, damaged, tmp_path)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_export_loader_on_any_damaged_checkpoint(valid_files, tmp_path, data):
    kind = data.draw(st.sampled_from(["text", "forecast", "memory", "classify"]))
    what, damaged = data.draw(mutations(valid_files[kind]))
    _check(kind, damaged, tmp_path, loader=_export_load)


@settings(FUZZ, max_examples=150)
@given(raw=st.binary(max_size=300) | st.recursive(
    st.none() | st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3)
    | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=8).map(lambda v: json.dumps(v).encode()))
def test_config_json_and_metrics_csv_readers(tmp_path, raw):
    from rnnkit import io
    from rnnkit.tasks.forecast_checks import run_config
    from rnnkit.tasks.text_run import METRIC_FIELDS

    path = tmp_path / "f"
    path.write_bytes(raw)
    for read in (io.read_json_file, run_config, lambda p: io.read_metrics_csv(p, METRIC_FIELDS)):
        try:
            with time_limit(LIMIT_S):
                read(path)
        except UserError:
            pass
