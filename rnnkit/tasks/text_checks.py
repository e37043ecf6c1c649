"""What a text checkpoint must hold, checked before a model is built from it or a run resumed from it:
typed metadata (vocabulary, architecture, config), a model that fits the file and the memory, and for
``--resume`` the optimizer state, RNG state, carried state, step and data position."""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from rnnkit import io
from rnnkit.errors import UserError

_CELLS = ("lstm", "gru", "elman", "jordan")
_GATES = {"lstm": 4, "gru": 3, "elman": 1, "jordan": 1}
_ARCH = ("cell", "hidden_size", "num_layers", "embedding_dim", "dropout", "dtype")
_KINDS = {"str": str, "int": int, "float": float, "bool": bool}  # annotation -> JSON kind
MAX_WARMUP = 100_000  # characters of warm-up text a checkpoint may carry


def model_meta(path, meta: dict) -> tuple[str, dict]:
    """(vocabulary characters, arch) of a text checkpoint's metadata, every field checked."""
    src = f"checkpoint {path} metadata"
    if meta.get("kind") != "rnnkit-text":
        raise UserError(f"{path} is an rnnkit checkpoint but not a text model (kind {str(meta.get('kind'))[:40]!r})")
    chars = io.field(meta, "vocab", str, src)
    if not chars:
        raise UserError(f"{src}: field 'vocab' is empty, expected the model's characters")
    if len(set(chars)) != len(chars):
        dup = next(c for i, c in enumerate(chars) if c in chars[:i])
        raise UserError(f"{src}: field 'vocab' lists the character {dup!r} twice, expected distinct characters")
    arch = io.field(meta, "arch", dict, src)
    io.check_keys(arch, _ARCH, f"{src} field 'arch'", required=_ARCH)
    asrc = f"{src} field 'arch'"
    cell = io.field(arch, "cell", str, asrc)
    if cell not in _CELLS:
        raise UserError(f"{asrc}: cell {cell[:20]!r} is unknown, expected one of {', '.join(_CELLS)}")
    H = io.field(arch, "hidden_size", int, asrc, low=1)
    L = io.field(arch, "num_layers", int, asrc, low=1)
    E = io.field(arch, "embedding_dim", int, asrc, low=1)
    io.field(arch, "dropout", float, asrc, low=0.0, high=0.999999)
    dtype = io.field(arch, "dtype", str, asrc)
    if dtype not in ("float32", "float64"):
        raise UserError(f"{asrc}: dtype {dtype[:20]!r}, expected float32 or float64")
    V, G = len(chars), _GATES[cell]
    params = V * E + G * H * (E + H) + (L - 1) * G * H * 2 * H + H * V  # a lower bound: biases left out
    itemsize = np.dtype(dtype).itemsize
    size = os.stat(path).st_size
    if params * itemsize > size:
        raise UserError(f"{asrc} describes a model of {params:,} {dtype} parameters, more than the file's "
                        f"{size:,} bytes can hold; the metadata is damaged")
    io.check_memory(3 * params * itemsize, f"the model of {path}", now=True)
    _optional_fields(path, meta, arch)
    return chars, arch


def _optional_fields(path, meta: dict, arch: dict) -> None:
    """The fields generate, evaluate, the view and --resume read (each may be absent, but never mistyped)."""
    src = f"checkpoint {path} metadata"
    io.field(meta, "step", int, src, optional=True, low=0)
    for key in ("val_loss", "metric"):  # NaN is a legitimate record of a diverged evaluation
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise UserError(f"{src}: field {key!r} is {str(v)[:20]!r}, expected a number or null")
    warmup = io.field(meta, "warmup", str, src, optional=True)
    if warmup is not None and len(warmup) > MAX_WARMUP:  # read before every sample: bounded, or generate crawls
        raise UserError(f"{src}: field 'warmup' holds {len(warmup):,} characters, at most {MAX_WARMUP:,} "
                        "(rnnkit stores 512); the metadata is damaged")
    io.field(meta, "train_seconds", float, src, optional=True, low=0.0)
    io.field(meta, "schedule_total", int, src, optional=True, low=1)
    io.field(meta, "corpus", str, src, optional=True)
    io.field(meta, "text_fingerprint", str, src, optional=True)
    for key in ("data", "sources"):
        v = io.field(meta, key, list, src, optional=True)
        if v is not None and not all(isinstance(p, str) for p in v):
            raise UserError(f"{src}: field {key!r} must be a list of file paths (strings)")
    io.field(meta, "config", dict, src, optional=True)  # its fields: config(), called by text.load and --resume


def config(path, d, arch: dict | None, config_cls) -> dict:
    """A text run's saved config, every field of dataclass ``config_cls`` (TextConfig, passed in: this module
    must not import rnnkit.tasks.text) type-checked, unknown fields refused, and its model settings equal to
    the checkpoint's ``arch``."""
    src = f"checkpoint {path} metadata field 'config'"
    if not isinstance(d, dict):
        raise UserError(f"{src} is a {type(d).__name__}, expected an object")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    io.check_keys(d, fields, src)
    for name, value in d.items():
        kinds = tuple(_KINDS[t.strip()] for t in str(fields[name].type).split("|") if t.strip() in _KINDS)
        optional = "None" in str(fields[name].type)
        if kinds:
            io.field(d, name, kinds if len(kinds) > 1 else kinds[0], src, optional=optional)
    for k, v in (arch or {}).items():
        if k in d and d[k] != v:
            raise UserError(f"{src}: {k} is {str(d[k])[:20]}, but the saved model has {v}; the metadata is damaged")
    return d


def resume_meta(path, meta: dict) -> None:
    """The fields ``--resume`` needs, checked before anything is restored or trained."""
    src = f"checkpoint {path} metadata"
    io.field(meta, "step", int, src, low=0)
    io.field(meta, "train_seconds", float, src, low=0.0)
    io.field(meta, "schedule_total", int, src, low=1)
    io.field(meta, "corpus", str, src)
    io.field(meta, "text_fingerprint", str, src, optional=True)
    data = io.field(meta, "data", list, src, optional=True)
    if data is not None and not all(isinstance(p, str) for p in data):
        raise UserError(f"{src}: field 'data' must be a list of file paths (strings)")
    optim = io.field(meta, "optim", dict, src)
    io.field(optim, "type", str, f"{src} field 'optim'")
    io.field(optim, "step", int, f"{src} field 'optim'", low=0)
    io.field(optim, "lr", float, f"{src} field 'optim'", low=0.0)
    rng = io.field(meta, "rng", dict, src)
    try:
        np.random.default_rng(0).bit_generator.state = rng
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise UserError(f"{src}: field 'rng' is not a PCG64 generator state ({exc}); the checkpoint is damaged") \
            from None


def resume_tensors(path, tensors: dict, optimizer, state0: tuple) -> None:
    """Optimizer moments and the carried state: every name, shape and dtype as the rebuilt run expects."""
    arrays, _ = optimizer.state_dict()
    expected = {f"optim.{k}": v for k, v in arrays.items()}
    expected.update({f"state.{i}": s for i, s in enumerate(state0)})
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            raise UserError(f"checkpoint {path} lacks the tensor {name!r} that --resume needs; use an earlier "
                            "checkpoint")
        if got.shape != want.shape or got.dtype != want.dtype:
            raise UserError(f"checkpoint {path}: tensor {name!r} is {got.dtype}{tuple(got.shape)}, resuming needs "
                            f"{want.dtype}{tuple(want.shape)}")
    extra = sorted(k for k in tensors if not k.startswith("model.") and k not in expected)
    if extra:
        raise UserError(f"checkpoint {path} holds unexpected tensors {extra[:5]}; it was written by another version")
    if not math.isfinite(float(sum(float(np.abs(tensors[k]).max(initial=0)) for k in expected))):
        raise UserError(f"checkpoint {path} holds non-finite optimizer or state values")
