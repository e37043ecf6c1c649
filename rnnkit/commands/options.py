"""Typed option parsers shared by every subcommand (``type=positive_float`` and friends), the memory-size
guard for sizes a user can type, and the ``--out`` checks: one place where bad numbers become one line naming
the option (argparse adds the option's name to the message of an ``ArgumentTypeError``; exit status 2)."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.limits import check_memory, recurrent_bytes  # noqa: F401 (re-exported for the commands)

MAX_COUNT = 10**9  # steps, epochs, lengths...: a loop of more iterations than this never ends in practice
MAX_SEED = 2**63 - 1


def _number(text: str, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_range(lo: int | None = None, hi: int | None = MAX_COUNT):
    """An argparse type: a whole number with lo <= n <= hi (None: unbounded on that side)."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if lo is not None and value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi:,}, got {value:,}")
        return value
    parse.__name__ = "whole number"  # argparse's fallback message names the type
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False):
    """An argparse type: a finite number in [lo, hi] (an open end with lo_open / hi_open)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"must be {'above' if lo_open else 'at least'} {lo:g}, got {text}")
        if hi is not None and (value >= hi if hi_open else value > hi):
            raise argparse.ArgumentTypeError(f"must be {'below' if hi_open else 'at most'} {hi:g}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def one_of(*names: str):
    """An argparse type: one of ``names`` (like ``choices=``, for options whose other settings stay put)."""
    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
        return text
    parse.__name__ = "name"
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)
seed_int = int_range(0, MAX_SEED)
finite_float = float_range()
positive_float = float_range(0.0, lo_open=True)
nonneg_float = float_range(0.0)
probability = float_range(0.0, 1.0, lo_open=True, hi_open=True)  # strictly between 0 and 1
fraction = float_range(0.0, 1.0, hi_open=True)  # 0 <= p < 1 (a held-out share, a dropout rate)
learning_rate = float_range(0.0, 10.0, lo_open=True)
MIN_MINUTES = 0.01  # 0.6 s: below this no training step (let alone an evaluation) fits in the budget
minutes = float_range(MIN_MINUTES, 60.0 * 24 * 365)


def out_folder(path, option: str = "--out") -> Path:
    """Create the run folder ``path`` (and its parents), or a UserError naming the option: a path that is an
    existing file, or one that cannot be created (no permission, a file in the way, a name too long)."""
    from rnnkit.io_lock import prepare_folder

    out = prepare_folder(path, f"{option} folder", option)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"{option} {out}: the folder is not writable; pick another {option}")
    return out


def out_file(path, option: str = "--out") -> Path:
    """Check an output file path before any work: not a folder, and its folder exists (created if needed)
    and is writable; an existing regular file is replaced."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{option} {out} is a folder; give a file path")
    if out.exists() and not out.is_file():
        raise UserError(f"{option} {out} is not a regular file; give a file path")
    parent = out.parent if str(out.parent) else Path(".")
    out_folder(parent, option)
    return out


def _short_names(out: Path) -> None:
    for part in out.parts:
        if len(os.fsencode(part)) > 255:
            raise argparse.ArgumentTypeError(f"the name {part[:20]}... is longer than 255 bytes")


def _creatable(out: Path) -> None:
    """ArgumentTypeError unless the folder ``out`` exists or could be made: the nearest existing ancestor
    is a folder we may write into, and no name is longer than the file system allows."""
    _short_names(out)
    probe = out
    while not probe.exists():
        if probe.is_symlink():
            raise argparse.ArgumentTypeError(f"{out}: {probe} is a dangling symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{out} cannot be created: {probe} is a file, not a folder")
    if probe != out and not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{out} cannot be created: no permission to write in {probe}")


def folder_path(text: str) -> str:
    """An argparse type for a run folder given with --out: refused at once when it is an existing file or
    cannot be created (the folder itself is made later, by the command)."""
    out = Path(os.path.expanduser(text))
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    _short_names(out)
    if out.exists() and not out.is_dir():
        raise argparse.ArgumentTypeError(f"{out} is an existing file, not a folder; give a folder path")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{out}: the folder is not writable; give another folder")
    _creatable(out)
    return str(out)


def file_path(text: str) -> str:
    """An argparse type for an output file: not a folder or a special file; its folder exists or can be made."""
    out = Path(os.path.expanduser(text))
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    _short_names(out)
    if out.is_dir():
        raise argparse.ArgumentTypeError(f"{out} is a folder; give a file path")
    if out.exists() and not out.is_file():
        raise argparse.ArgumentTypeError(f"{out} is not a regular file; give a file path")
    _creatable(out.parent)
    return str(out)


def add_worker_options(parser, what: str = "each batch") -> None:
    """``--workers N`` and ``--ray-address`` for a training command whose task trains through ``fit``."""
    parser.add_argument("--workers", type=int_range(1, 4096), default=1, metavar="N",
                        help=f"data-parallel training: {what} split over N Ray workers, gradients averaged "
                             '(needs pip install "rnnkit[ray]"; default 1: one process, no Ray)')
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="join this Ray cluster (`ray start --head` prints it; default: a local Ray instance)")
