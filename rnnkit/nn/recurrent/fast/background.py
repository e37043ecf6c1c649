"""The one background thread of the row-major cores: large GEMMs queued here run on the second core while
the calling thread runs the sequential time loop (NumPy releases the GIL inside BLAS)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit-background")
        return _POOL


def _forget_pool_in_child() -> None:
    """A forked child has no copy of the worker thread: it must start its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_in_background(fn, *args) -> Future | None:
    """Queue ``fn(*args)`` on the background thread; at interpreter exit (pool shut down) run it now, None."""
    try:
        return _pool().submit(fn, *args)
    except RuntimeError:
        fn(*args)
        return None
