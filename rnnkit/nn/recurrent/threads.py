"""One thread setting for a recurrent layer, ``threads=N``: the team size of the feature-major cores (LSTM,
GRU), the background thread of the row-major cores (Elman, Jordan, reset-before GRU) and the BLAS threads
(threadpoolctl), chosen together. ``rnnkit --threads N`` hands the same N to the layers the tasks build."""
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
    """Hand ``threads`` (None: automatic) to every core; returns the BLAS threads to use while the layer
    computes (None: leave BLAS as it is).

    Feature-major cores (LSTM, reset-after GRU): a team of ``threads`` members, each calling BLAS
    single-threaded. Row-major cores (Elman, Jordan, reset-before GRU): with 1, everything inline on the
    calling thread; with N >= 2 the background thread for the large GEMMs and N - 1 BLAS threads.
    Reference cores: N BLAS threads."""
    blas = [core.use_threads(threads) for core in cores]
    return blas[0] if blas else None


def with_threads(method):
    """Run a layer method under the layer's BLAS thread limit (``layer.blas_threads``; None: no limit)."""
    @functools.wraps(method)
    def limited(self, *args, **kwargs):
        n = self.blas_threads
        with contextlib.nullcontext() if n is None else blas_limit(n):
            return method(self, *args, **kwargs)
    return limited
