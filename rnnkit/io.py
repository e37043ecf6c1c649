"""Checkpoints: safetensors tensors plus JSON metadata in one file, written atomically, checked on load.

A checkpoint is a single ``.safetensors`` file. Its header's ``__metadata__`` holds the format name, the
format version and ``meta`` (any JSON-able dict: config, vocabulary, step, RNG state, optimizer scalars...).
Nothing here uses pickle.

    save_checkpoint(path, tensors, meta)            # atomic: temp file, fsync, os.replace, fsync dir
    tensors, meta = load_checkpoint(path, expected)  # checks names, shapes, dtypes, finite values
    meta = read_meta(path)                           # header only, no tensor data read
    mgr = CheckpointManager(run_dir, keep_last=3)    # ckpt-<step>.safetensors, keep last N + best
    mgr.save(step, tensors, meta, metric=val_loss)

Every problem a user can cause (missing, truncated or foreign file, mismatched tensors, NaN/Inf values)
raises :class:`rnnkit.errors.UserError` with a message naming the file and what to do.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from rnnkit.errors import UserError

FORMAT = "rnnkit-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")
_TMP_PREFIX = ".tmp-"


# -- atomic writes ------------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on some platforms; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then renamed over
    ``path`` with :func:`os.replace`; the folder is fsynced so the rename survives a power cut.
    If anything fails the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text (config.json and the like)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# -- one checkpoint file ------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], meta: dict) -> Path:
    """Atomically write ``tensors`` (name -> array) and ``meta`` (JSON-able dict) to one file."""
    from safetensors.numpy import save

    arrays = {}
    for name, value in tensors.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype == object:
            raise TypeError(f"tensor {name!r} has dtype object; checkpoints hold numeric arrays only")
        arrays[name] = arr
    header = {"format": FORMAT, "version": str(FORMAT_VERSION), "meta": json.dumps(meta)}
    return atomic_write_bytes(path, save(arrays, metadata=header))


def _open_header(path: Path) -> dict:
    """The ``__metadata__`` of a checkpoint, checked to be ours; UserError if missing/corrupt/foreign."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file; give a .safetensors file or a run folder")
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; check the path")
    if not path.is_file():  # a FIFO or a device would block the open or never end
        raise UserError(f"checkpoint {path} is not a regular file (a pipe, socket or device?); give a "
                        ".safetensors file or a run folder")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("file shorter than a safetensors header")
            n = int.from_bytes(head, "little")
            if n <= 0 or n > 100_000_000 or n + 8 > path.stat().st_size:
                raise ValueError(f"header length {n} does not fit the file size {path.stat().st_size}")
            header = json.loads(f.read(n).decode("utf-8"))
            if not isinstance(header, dict):
                raise ValueError(f"header is a JSON {type(header).__name__}, not an object")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"checkpoint {path} is corrupt or truncated ({exc}); use an earlier checkpoint or retrain"
        ) from None
    info = header.get("__metadata__") or {}
    if info.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not an rnnkit checkpoint (no rnnkit metadata)")
    try:
        version = int(info.get("version", "0"))
    except ValueError:
        version = -1
    if version < 1 or version > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {info.get('version')!r}; this rnnkit reads version "
            f"{FORMAT_VERSION} (upgrade rnnkit or retrain)"
        )
    return info


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON metadata of a checkpoint, reading only its header."""
    path = Path(path)
    info = _open_header(path)
    try:
        return json.loads(info["meta"])
    except (KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {path} has unreadable metadata ({exc}); use an earlier checkpoint") from None


def _expected_spec(value) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(value, np.ndarray):
        return tuple(value.shape), value.dtype
    shape, dtype = value
    return tuple(shape), np.dtype(dtype)


def load_checkpoint(
    path: str | os.PathLike,
    expected: Mapping[str, object] | None = None,
    check_finite: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save_checkpoint` and validate it.

    ``expected`` maps each tensor name to an array (its shape and dtype are used) or to a
    ``(shape, dtype)`` pair; when given, the file must hold exactly those names with those shapes and
    dtypes. With ``check_finite`` every floating tensor must be free of NaN and Inf.
    Returns ``(tensors, meta)``; any problem raises UserError naming the file and the tensor.
    """
    from safetensors.numpy import load

    path = Path(path)
    info = _open_header(path)
    try:
        tensors = load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error type for bad offsets or lengths
        raise UserError(
            f"checkpoint {path} is corrupt or truncated ({exc}); use an earlier checkpoint or retrain"
        ) from None
    try:
        meta = json.loads(info["meta"])
    except (KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {path} has unreadable metadata ({exc}); use an earlier checkpoint") from None

    if expected is not None:
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise UserError(
                f"checkpoint {path} does not match the model: missing tensors {missing}, unexpected "
                f"tensors {unexpected} (was it saved with a different architecture?)"
            )
        for name, spec in expected.items():
            shape, dtype = _expected_spec(spec)
            got = tensors[name]
            if tuple(got.shape) != shape:
                raise UserError(
                    f"checkpoint {path}: tensor {name!r} has shape {tuple(got.shape)}, the model expects "
                    f"{shape} (different sizes in the config?)"
                )
            if got.dtype != dtype:
                raise UserError(
                    f"checkpoint {path}: tensor {name!r} has dtype {got.dtype}, the model expects {dtype}"
                )
    if check_finite:
        bad = [n for n, a in tensors.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if bad:
            raise UserError(
                f"checkpoint {path} holds non-finite values (NaN or Inf) in {sorted(bad)}; "
                "use an earlier checkpoint"
            )
    return tensors, meta


# -- a run folder's checkpoints -----------------------------------------------------------------
def step_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The ``ckpt-<step>.safetensors`` files of a run folder, oldest step first."""
    found = []
    for p in Path(run_dir).iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


class CheckpointManager:
    """Checkpoints of one run folder: ``ckpt-<step>.safetensors`` (the last ``keep_last``) + ``best``.

    ``save(step, tensors, meta, metric)`` writes the step's checkpoint, deletes the oldest beyond
    ``keep_last``, and when ``metric`` (lower is better, e.g. validation loss) beats every earlier one
    also writes ``best.safetensors``. The best metric so far survives restarts (it is read back from
    ``best.safetensors``). Leftover temporary files from a killed writer are removed on creation.
    """

    BEST = "best" + SUFFIX

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 3):
        if keep_last < 1:
            raise UserError(f"keep_last must be at least 1, got {keep_last}")
        self.run_dir = Path(run_dir)
        self.keep_last = int(keep_last)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob(f"{_TMP_PREFIX}*"):
            try:
                stale.unlink()
            except OSError:
                pass
        self.best_metric: float | None = None
        best = self.run_dir / self.BEST
        if best.exists():
            try:
                self.best_metric = read_meta(best).get("metric")
            except UserError:
                self.best_metric = None

    def checkpoints(self) -> list[Path]:
        """Step checkpoints, oldest first."""
        return step_checkpoints(self.run_dir)

    def latest(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None

    def best(self) -> Path | None:
        p = self.run_dir / self.BEST
        return p if p.exists() else None

    def save(self, step: int, tensors: Mapping[str, np.ndarray], meta: dict, metric: float | None = None) -> Path:
        meta = dict(meta, step=int(step), metric=None if metric is None else float(metric))
        path = save_checkpoint(self.run_dir / f"ckpt-{int(step):08d}{SUFFIX}", tensors, meta)
        if metric is not None and np.isfinite(metric) and (self.best_metric is None or metric < self.best_metric):
            self.best_metric = float(metric)
            save_checkpoint(self.run_dir / self.BEST, tensors, meta)
        for old in self.checkpoints()[: -self.keep_last]:
            old.unlink()
        return path


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "latest") -> Path:
    """A checkpoint file from a file path or a run folder (its latest step, or ``best`` if preferred)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a run folder or a checkpoint file")
    if path.is_file():
        return path
    steps = step_checkpoints(path)
    latest = steps[-1] if steps else None
    best = path / CheckpointManager.BEST
    best = best if best.exists() else None
    for p in ([best, latest] if prefer == "best" else [latest, best]):
        if p is not None:
            return p
    raise UserError(f"run folder {path} holds no checkpoint (ckpt-*.safetensors or best.safetensors)")
