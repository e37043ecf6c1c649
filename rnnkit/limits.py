"""Memory limits for sizes a user can type: an estimate of what a recurrent training run needs, checked
against the machine's physical memory before anything is allocated (a UserError naming the options)."""
from __future__ import annotations

import os

from rnnkit.errors import UserError


def available_bytes() -> int:
    """Physical memory of the machine (bytes); a generous stand-in when the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 64 << 30


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def proc_bytes(path: str, field: str) -> int | None:
    """A "Field:  N kB" line of a Linux /proc file (/proc/meminfo, /proc/self/status) in bytes, or None when
    the OS does not say."""
    key = field.encode() + b":"
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_bytes() -> int | None:
    """Memory available now (Linux MemAvailable), or None when the OS does not say."""
    return proc_bytes("/proc/meminfo", "MemAvailable")


def check_memory(nbytes: float, what: str, fix: str = "", *, now: bool = False) -> None:
    """UserError when ``nbytes`` exceeds the machine's physical memory (``now``: the memory available at this
    moment, for a file about to be read). what: the options or file named; fix: how to get under it."""
    have = free_bytes() if now else available_bytes()
    if have is not None and nbytes > have:
        raise UserError(f"{what} would need about {format_bytes(nbytes)} of memory, more than this machine has"
                        f"{' available' if now else ''} ({format_bytes(have)})" + (f"; {fix}" if fix else ""))


def recurrent_bytes(hidden_size: int, num_layers: int, input_size: int, batch: int, length: int,
                    gates: int = 4, itemsize: int = 4) -> float:
    """Rough memory of training a recurrent stack: weights with gradient and two Adam moments, plus the
    activations BPTT keeps, (B, T, G*H) per layer. Good to a factor of about two: it is meant to catch
    sizes that cannot fit, not to plan close to the limit."""
    H, L, D, G = float(hidden_size), float(num_layers), float(input_size), float(gates)
    weights = G * H * (D + H + 1) + (L - 1) * G * H * (2 * H + 1)
    activations = L * batch * length * (G + 2) * H
    return (4 * weights + 2 * activations) * itemsize
