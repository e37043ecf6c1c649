"""One thread setting for a recurrent layer, ``threads=N``: the team size of the LSTM and GRU cores, the
background thread of the row-major cores and the BLAS threads (threadpoolctl), chosen together."""
from __future__ import annotations

import contextlib
import functools

from rnnkit.errors import UserError

_controller = None


def blas_limit(n: int):
    """Context manager: BLAS limited to ``n`` threads. threadpoolctl's controller is built once (~7 us per
    use afterwards, instead of a library scan per call)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def check_threads(threads) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserError(f"threads must be a whole number >= 1 (or None: chosen from the cores and the layer "
                        f"size), got {threads!r}")
    return threads


def configure(cores, threads: int | None) -> int | None:
    """Set each core's share of ``threads`` (threads in total, None: automatic); returns the BLAS threads to
    use while the layer computes (None: leave BLAS as it is).

    Team cores (LSTM, GRU): a team of ``threads`` members, each calling BLAS single-threaded. Row-major cores
    (Elman, Jordan, reset-before GRU): with 1, everything inline on the calling thread; with N >= 2 the
    background thread for the large GEMMs and N - 1 BLAS threads. Reference cores: N BLAS threads."""
    if threads is None:  # back to the class defaults (automatic team size, background thread on)
        for core in cores:
            vars(core).pop("threads", None)
            vars(core).pop("overlap", None)
        return None
    blas = threads
    for core in cores:
        if hasattr(core, "team_size"):
            core.threads = threads
            blas = 1
        elif hasattr(core, "overlap"):
            core.overlap = threads > 1
            blas = max(1, threads - 1)
    return blas


def with_threads(method):
    """Run a layer method under the layer's BLAS thread limit (``layer.blas_threads``; None: no limit)."""
    @functools.wraps(method)
    def limited(self, *args, **kwargs):
        n = self.blas_threads
        with contextlib.nullcontext() if n is None else blas_limit(n):
            return method(self, *args, **kwargs)
    return limited
