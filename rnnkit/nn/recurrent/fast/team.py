"""A team of threads that run one time loop together, each on its own share of the hidden units.

The sequential part of a recurrent layer (one small GEMM and a few element-wise operations per step) cannot
use a second core through BLAS threads without paying OpenBLAS's synchronisation on every tiny call. A
team instead splits the *hidden units*: member k owns units [lo_k, hi_k), computes only their gate rows
(its slice of the weights times the whole previous state) and their element-wise updates, and meets the
others at a barrier once per step, when the whole new state is ready. NumPy releases the GIL inside BLAS
and inside element-wise loops over more than a few hundred elements, so the members really run at once.

``run(fn, *args)`` calls ``fn(k, sync, *args)`` on every member (the caller is member 0) and returns when all
have finished; ``sync()`` is the barrier. A failure or interrupt in any member breaks the barrier, every
member stops, and the first real exception is raised in the caller: nothing runs after ``run`` returns.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_LOCK = threading.Lock()
LOCK = threading.RLock()  # held while a team runs (see run)


def _forget_pool_in_child() -> None:
    """A forked child has no copy of the worker threads (nor of a lock holder): it starts its own."""
    global _POOL, _POOL_SIZE, _LOCK, LOCK
    _POOL, _POOL_SIZE, _LOCK, LOCK = None, 0, threading.Lock(), threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rnnkit-team")
            _POOL_SIZE = workers
        return _POOL


def shares(n: int, parts: int) -> list[tuple[int, int]]:
    """Split range(n) into ``parts`` contiguous (lo, hi) pieces, sizes differing by at most one."""
    cuts = [n * k // parts for k in range(parts + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(parts)]


def no_sync() -> None:
    """The barrier of a team of one: nothing to wait for."""


def run(size: int, fn, *args) -> None:
    """Run ``fn(k, sync, *args)`` for k in 0..size-1, member 0 on the calling thread; see the module doc.

    One team at a time per process (``LOCK``): teams from several threads would compete for the same
    workers (and the same cores), and two teams each holding part of the pool could wait for ever."""
    if size <= 1:
        fn(0, no_sync, *args)
        return
    with LOCK:
        _run_team(size, fn, args)


def _run_team(size, fn, args) -> None:
    barrier = threading.Barrier(size)

    def member(k):
        try:
            fn(k, barrier.wait, *args)
        except BaseException:
            barrier.abort()  # the others stop at their next sync instead of waiting for ever
            raise

    futures: list[Future] = []
    first: BaseException | None = None
    try:
        pool = _pool(size - 1)
        for k in range(1, size):
            futures.append(pool.submit(member, k))
        member(0)
    except BaseException as exc:  # includes KeyboardInterrupt, also between two submits
        barrier.abort()
        first = exc
        if isinstance(exc, RuntimeError) and len(futures) < size - 1:  # the pool refused (interpreter exit)
            first = RuntimeError("rnnkit: cannot start worker threads now; build the layer with threads=1")
    while True:  # every member has stopped before run returns, even if the wait itself is interrupted
        try:
            wait(futures)
            break
        except BaseException as exc:
            barrier.abort()
            first = first if first is not None else exc
    for f in futures:
        exc = f.exception()
        if exc is not None and (first is None or isinstance(first, threading.BrokenBarrierError)):
            first = exc
    if first is not None:
        raise first
