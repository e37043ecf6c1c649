"""Validation before trust: regular files only, bounded JSON (depth, duplicates, lone surrogates), the
safetensors header checked entry by entry, typed metadata fields, config.json and metrics.csv readers.

Every failure is a :class:`rnnkit.errors.UserError` naming the file, the field and what was expected;
:func:`guard_load` turns anything else a damaged file can still provoke into one too.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import stat
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io_lock import memory_cap
from rnnkit.limits import check_memory

MAX_JSON_DEPTH = 64          # rnnkit writes at most ~5 levels; hostile files nest hundreds of thousands
MAX_HEADER_BYTES = 100_000_000
MAX_JSON_FILE_BYTES = 50_000_000
# safetensors dtype code -> numpy dtype (BF16 and the float8 kinds have no numpy dtype: refused)
DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
          "U64": "<u8", "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


# -- files ----------------------------------------------------------------------------------------
def check_regular_file(path, what: str = "file") -> Path:
    """``path`` as a Path if it is an existing regular file; UserError for missing, folder, FIFO, device.

    ``os.stat`` never opens the file, so a FIFO cannot block here; the caller may then open it safely.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {path} is a folder, expected a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path} is not a regular file (a pipe, socket or device?); expected a regular file")
    return path


def check_run_folder(path, what: str = "run folder") -> Path:
    """``path`` if it is an existing folder (a file given as a run folder is refused)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; check the path")
    if not path.is_dir():
        raise UserError(f"{what} {path} is a file, expected a folder (give the run folder itself)")
    return path


def read_regular_bytes(path, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file, opened without blocking (O_NONBLOCK: a FIFO swapped in after the
    check cannot hang us) and refused beyond ``limit`` bytes."""
    path = check_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UserError(f"{what} {path} is not a regular file; expected a regular file")
            size = os.fstat(f.fileno()).st_size
            if limit is not None and size > limit:
                raise UserError(f"{what} {path} is {size:,} bytes, more than the {limit:,} such a file can have")
            check_memory(size, f"reading {what} {path}", now=True)
            return f.read()
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


# -- JSON -----------------------------------------------------------------------------------------
def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _json_depth(raw: bytes) -> int:
    """Deepest bracket nesting of JSON text, with string contents skipped (vectorised: no recursion)."""
    stripped = np.frombuffer(_STRING_RE.sub(b'""', raw), dtype=np.uint8)
    steps = (np.isin(stripped, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(stripped, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(steps).max(initial=0))


def _check_strings(obj, where: str, allow_nan: bool) -> None:
    """Refuse lone surrogates (they cannot be printed or written as UTF-8) and, unless allowed, non-finite
    numbers (``1e999`` parses to inf)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            try:
                o.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{where} holds a lone surrogate (\\ud800-\\udfff) in a string") from None
        elif isinstance(o, float) and not allow_nan and not math.isfinite(o):
            raise ValueError(f"{where} holds a non-finite number ({o})")
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)


def parse_json(raw: bytes | str, where: str, expect=dict, allow_nan: bool = False):
    """Parse JSON text strictly: UTF-8, nesting depth <= MAX_JSON_DEPTH, no duplicate keys, no lone
    surrogates, no NaN/Infinity (unless ``allow_nan``: a run's metadata may record a NaN loss), and a top
    level of type ``expect``. Raises ValueError (callers add the file)."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} holds a lone surrogate") from None
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 (byte {exc.start})") from None

    def no_constants(name):
        raise ValueError(f"{where} holds {name}, which is not JSON")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=None if allow_nan else no_constants)
    except RecursionError:
        raise ValueError(f"{where} nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if expect is not None and not isinstance(obj, expect):
        raise ValueError(f"{where} is a JSON {_kind(obj)}, expected a JSON {_kind_name(expect)}")
    _check_strings(obj, where, allow_nan)
    return obj


def read_json_file(path, what: str = "config.json", expect=dict):
    """A JSON file (e.g. a run's config.json) read strictly (see :func:`parse_json`); UserError on any problem."""
    raw = read_regular_bytes(path, what, limit=MAX_JSON_FILE_BYTES)
    try:
        return parse_json(raw, "its content", expect=expect)
    except ValueError as exc:
        raise UserError(f"{what} {path} is damaged: {exc}; restore it or retrain into a new folder") from None


# -- typed fields -----------------------------------------------------------------------------------
def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _kind_name(t) -> str:
    names = {dict: "object", list: "list", str: "string", int: "integer", float: "number", bool: "boolean"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def field(obj: dict, key: str, kind, source: str, *, optional: bool = False, low=None, high=None):
    """``obj[key]`` checked to be of ``kind`` (str, int, float, bool, list, dict or a tuple of them; int
    excludes booleans, float accepts integers and must be finite) and within [low, high].

    ``source`` names the file and the part (``"checkpoint RUN/best.safetensors metadata"``).
    ``optional``: a missing key or null gives None.
    """
    if not isinstance(obj, dict):
        raise UserError(f"{source} is a JSON {_kind(obj)}, expected an object")
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return None
        raise UserError(f"{source} lacks the field {key!r}; the file is damaged or from another tool")
    v = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = False
    for k in kinds:
        if k is int:
            ok = ok or (isinstance(v, int) and not isinstance(v, bool))
        elif k is float:
            ok = ok or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        else:
            ok = ok or isinstance(v, k)
    if not ok:
        want = _kind_name(kind)
        raise UserError(f"{source}: field {key!r} is {_a(_kind(v))} ({_short(v)}), expected {_a(want)}")
    if (low is not None and v < low) or (high is not None and v > high):
        want = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        raise UserError(f"{source}: field {key!r} is {v}, expected a value {want}")
    return v


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def check_keys(obj: dict, known, source: str, required=()) -> None:
    """Refuse unknown keys (a newer format or a hand edit) and missing required ones."""
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise UserError(f"{source} has unknown field(s) {unknown[:5]}; it was written by another rnnkit version "
                        f"or edited (known: {', '.join(sorted(known))})")
    missing = [k for k in required if k not in obj]
    if missing:
        raise UserError(f"{source} lacks the field(s) {missing}; the file is damaged or from another tool")


_ANNOTATION_KINDS = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "tuple": list, "dict": dict}


def dataclass_dict(cls, d, source: str) -> dict:
    """``d`` checked against the fields of dataclass ``cls``: no unknown keys, required fields present, each
    value of its annotated type (``int | None`` etc.; a tuple is a JSON list). Returns ``d``."""
    import dataclasses

    if not isinstance(d, dict):
        raise UserError(f"{source} is a JSON {_kind(d)}, expected an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    check_keys(d, fields, source, required=required)
    for name in d:
        parts = [t.strip().split("[")[0] for t in str(fields[name].type).split("|")]
        kinds = tuple(dict.fromkeys(_ANNOTATION_KINDS[t] for t in parts if t in _ANNOTATION_KINDS))
        if kinds and len(kinds) == len([t for t in parts if t != "None"]):  # every part understood
            field(d, name, kinds if len(kinds) > 1 else kinds[0], source, optional="None" in parts)
    return d


@contextlib.contextmanager
def guard_load(path, what: str = "checkpoint", cap: bool = True):
    """Any error a damaged file still provokes while being turned into objects becomes one UserError
    naming the file (UserError passes through unchanged). With ``cap`` the load may use at most 8 times
    the file's size plus 2 GiB of new address space (see :func:`memory_cap`)."""
    try:
        size = os.stat(path).st_size if cap else None
    except OSError:
        size = None
    try:
        with contextlib.nullcontext() if size is None else memory_cap(8 * size + (2 << 30)):
            yield
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"{what} {path} describes arrays larger than this machine's memory; it is damaged") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError,
            UnicodeError, ZeroDivisionError, AssertionError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise UserError(f"{what} {path} is damaged or from another tool ({detail[:200]}); "
                        "use another checkpoint or retrain") from None


# -- the safetensors header ---------------------------------------------------------------------------
def check_header(header: dict, data_size: int) -> dict:
    """Check a parsed safetensors header against the data that follows it; returns ``{name: (dtype,
    shape, begin, end)}``. Every entry needs a known dtype, a shape of non-negative integers and
    offsets matching its size; together the tensors must tile the data exactly (no gap, no overlap)."""
    specs = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError("__metadata__ must be an object of strings")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: entry must be an object with dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: unknown dtype {_short(dtype)} (known: {', '.join(DTYPES)})")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape)):
            raise ValueError(f"tensor {name!r}: shape {_short(shape)} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)):
            raise ValueError(f"tensor {name!r}: data_offsets {_short(offsets)} is not two non-negative integers")
        nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        begin, end = offsets
        if end - begin != nbytes:
            raise ValueError(f"tensor {name!r}: offsets {begin}..{end} hold {end - begin} bytes, its shape needs {nbytes}")
        if end > data_size:
            raise ValueError(f"tensor {name!r}: offsets reach byte {end}, the file holds {data_size} data bytes")
        specs[name] = (DTYPES[dtype], tuple(shape), begin, end)
    pos = 0
    for name, (_, _, begin, end) in sorted(specs.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != pos:
            raise ValueError(f"tensor {name!r} starts at byte {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != data_size:
        raise ValueError(f"the tensors cover {pos} data bytes, the file holds {data_size}")
    return specs


# -- metrics.csv ---------------------------------------------------------------------------------------
def read_metrics_csv(path, fields, numeric=("step",)) -> list[dict]:
    """The rows of a run's metrics.csv; the header must be ``fields`` and ``numeric`` columns numbers
    (step a non-negative integer). UserError naming the row otherwise."""
    raw = read_regular_bytes(path, "metrics file", limit=MAX_JSON_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"metrics file {path} is not UTF-8 (byte {exc.start}); delete it to start a new log") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return []
    if tuple(rows[0]) != tuple(fields):
        raise UserError(f"metrics file {path}: header {rows[0][:10]} differs from the expected {list(fields)}")
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(fields):
            raise UserError(f"metrics file {path}, line {i}: {len(r)} values, expected {len(fields)}")
        row = dict(zip(fields, r))
        for name in numeric:
            if name == "step":
                ok = re.fullmatch(r"[0-9]{1,15}", row[name]) is not None
            else:
                try:
                    ok = math.isfinite(float(row[name]))
                except ValueError:
                    ok = False
            if not ok:
                raise UserError(f"metrics file {path}, line {i}: {name} is {_short(row[name])}, expected "
                                + ("a non-negative integer" if name == "step" else "a number"))
        out.append(row)
    return out
