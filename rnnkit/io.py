"""Checkpoints: safetensors tensors plus JSON metadata in one file, written atomically, checked on load.

A checkpoint is a single ``.safetensors`` file. Its header's ``__metadata__`` holds the format name, the
format version and ``meta`` (any JSON-able dict: config, vocabulary, step, RNG state, optimizer scalars...).
Nothing here uses pickle.

    save_checkpoint(path, tensors, meta)            # atomic: temp file, fsync, os.replace, fsync dir
    tensors, meta = load_checkpoint(path, expected)  # checks names, shapes, dtypes, finite values
    meta = read_meta(path)                           # header only, no tensor data read
    mgr = CheckpointManager(run_dir, keep_last=3)    # ckpt-<step>.safetensors, keep last N + best
    mgr.save(step, tensors, meta, metric=val_loss)
    with RunLock(run_dir): ...                       # one writer per run folder (io_lock.py)
    cfg = read_json_file(run_dir / "config.json")    # strict JSON, typed fields: see io_checks.py

Every problem a user can cause (missing, truncated or foreign file, mismatched tensors, NaN/Inf values)
raises :class:`rnnkit.errors.UserError` with a message naming the file and what to do.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from rnnkit import io_checks as checks
from rnnkit.errors import UserError
from rnnkit.io_checks import (  # noqa: F401  (re-exported: validation helpers the loaders call)
    check_keys, check_memory, check_regular_file, check_run_folder, dataclass_dict, field, guard_load, memory_cap,
    read_json_file, read_metrics_csv,
)
from rnnkit.io_lock import LockScope, RunLock, check_room, checkpoint_bytes, prepare_folder  # noqa: F401

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


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, then renamed over
    ``path`` with :func:`os.replace`; the folder is fsynced so the rename survives a power cut. The file
    gets the permissions the umask gives (0666 & ~umask), like any file ``open`` creates.
    If anything fails the temporary file is removed and ``path`` is untouched; a full disk, a read-only
    folder or a missing permission raises UserError naming the file.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        except OSError:
            pass
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; the previous file (if any) is kept intact "
                        "(free some space or choose another --out)") from None
    finally:
        if tmp is not None:  # also on KeyboardInterrupt: no partial file is left behind
            try:
                os.unlink(tmp)
            except OSError:
                pass
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
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # load_checkpoint would refuse the file
            raise UserError(f"cannot save checkpoint {path}: tensor {name!r} holds NaN or Inf; the previous "
                            "checkpoint is kept")
        arrays[name] = arr
    text = json.dumps(meta)
    try:  # what load_checkpoint will refuse is refused now, before the previous checkpoint is replaced
        checks.parse_json(text, "the metadata", allow_nan=True)
    except ValueError as exc:
        raise UserError(f"cannot save checkpoint {path}: {exc}") from None
    header = {"format": FORMAT, "version": str(FORMAT_VERSION), "meta": text}
    return atomic_write_bytes(path, save(arrays, metadata=header))


def _read_header(path: Path, f) -> tuple[dict, dict, int]:
    """(``__metadata__``, tensor specs, data offset) of an open checkpoint, every field checked."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise ValueError(f"the file has {len(head)} bytes, shorter than a safetensors header")
    n = int.from_bytes(head, "little")
    if n < 2 or n > min(checks.MAX_HEADER_BYTES, size - 8):
        raise ValueError(f"header length {n} does not fit the file size {size}")
    header = checks.parse_json(f.read(n), "the header")
    specs = checks.check_header(header, size - 8 - n)
    return header.get("__metadata__") or {}, specs, 8 + n


def _open(path: Path):
    """The file opened for reading without blocking (a FIFO swapped in after the check cannot hang)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise OSError("not a regular file")
    return f


def _checked_info(path: Path, info: dict) -> dict:
    if info.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not an rnnkit checkpoint (no rnnkit metadata)")
    version = info.get("version", "0")
    version = int(version) if isinstance(version, str) and version.isdigit() and len(version) < 6 else -1
    if version < 1 or version > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {str(info.get('version'))[:20]!r}; this rnnkit reads version "
            f"{FORMAT_VERSION} (a newer rnnkit wrote it: upgrade rnnkit, or retrain)"
        )
    return info


def _open_header(path: Path) -> tuple[dict, dict, int]:
    """(``__metadata__``, specs, data offset) of a checkpoint checked to be ours; UserError otherwise."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file; give a .safetensors file or a run folder")
    checks.check_regular_file(path, "checkpoint")
    try:
        with _open(path) as f:
            info, specs, offset = _read_header(path, f)
    except (ValueError, OSError) as exc:
        raise UserError(
            f"checkpoint {path} is corrupt or truncated ({exc}); use an earlier checkpoint or retrain"
        ) from None
    return _checked_info(path, info), specs, offset


def _meta(path: Path, info: dict) -> dict:
    if not isinstance(info.get("meta"), str):
        raise UserError(f"checkpoint {path} has no metadata string; it is damaged, use an earlier checkpoint")
    try:
        return checks.parse_json(info["meta"], "its metadata", allow_nan=True)
    except ValueError as exc:
        raise UserError(f"checkpoint {path}: {exc}; use an earlier checkpoint or retrain") from None


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON metadata of a checkpoint (always an object), reading only its header."""
    path = Path(path)
    info, _, _ = _open_header(path)
    return _meta(path, info)


def _expected_spec(value) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(value, np.ndarray):
        return tuple(value.shape), value.dtype
    shape, dtype = value
    return tuple(shape), np.dtype(dtype)


def check_tensors(path, tensors: Mapping[str, np.ndarray], expected: Mapping[str, object], prefix: str = "") -> None:
    """The tensors named ``prefix*`` in ``tensors`` must be exactly ``expected`` (name -> array or (shape,
    dtype); names without the prefix): same names, shapes and dtypes (no silent cast). UserError otherwise."""
    got = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"checkpoint {path} does not match the model: missing tensors {[prefix + m for m in missing][:5]}, "
            f"unexpected tensors {[prefix + u for u in unexpected][:5]} (was it saved with a different architecture?)"
        )
    for name, spec in expected.items():
        shape, dtype = _expected_spec(spec)
        arr = got[name]
        if tuple(arr.shape) != shape:
            raise UserError(f"checkpoint {path}: tensor {prefix + name!r} has shape {tuple(arr.shape)}, the model "
                            f"expects {shape} (different sizes in the config?)")
        if arr.dtype != dtype:
            raise UserError(f"checkpoint {path}: tensor {prefix + name!r} has dtype {arr.dtype}, the model expects "
                            f"{dtype}")


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
    path = Path(path)
    info, specs, offset = _open_header(path)
    meta = _meta(path, info)
    total = sum(end - begin for _, _, begin, end in specs.values())
    checks.check_memory(total, f"checkpoint {path}", now=True)
    try:
        with _open(path) as f:
            f.seek(offset)
            data = bytearray(total)
            if f.readinto(data) != total:
                raise ValueError("the file changed while being read")
    except (ValueError, OSError) as exc:
        raise UserError(f"checkpoint {path} cannot be read ({exc}); use an earlier checkpoint or retrain") from None
    tensors = {}
    for name, (dtype, shape, begin, end) in specs.items():
        arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=begin).reshape(shape)
        tensors[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)

    if expected is not None:
        check_tensors(path, tensors, expected)
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
        prepare_folder(self.run_dir)
        for stale in self.run_dir.glob(f"{_TMP_PREFIX}*"):
            try:
                stale.unlink()
            except OSError:
                pass
        self.best_metric: float | None = None
        best = self.run_dir / self.BEST
        if best.exists():
            try:
                metric = read_meta(best).get("metric")
            except UserError:
                metric = None
            ok = isinstance(metric, (int, float)) and not isinstance(metric, bool) and math.isfinite(metric)
            self.best_metric = float(metric) if ok else None

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
            try:
                old.unlink()
            except OSError:  # kept: an extra old checkpoint is harmless
                pass
        return path


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "latest") -> Path:
    """A checkpoint file from a file path or a run folder (its latest step, or ``best`` if preferred)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a run folder or a checkpoint file")
    if not path.is_dir():
        return checks.check_regular_file(path, "checkpoint")
    steps = step_checkpoints(path)
    latest = steps[-1] if steps else None
    best = path / CheckpointManager.BEST
    best = best if best.exists() else None
    for p in ([best, latest] if prefer == "best" else [latest, best]):
        if p is not None:
            return p
    raise UserError(f"run folder {path} holds no checkpoint (ckpt-*.safetensors or best.safetensors)")
