"""The one line every benchmark prints about NumPy's BLAS: the kernel OpenBLAS runs (threadpoolctl) and a warning
when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE force it (users do not set them; run with `env -u` to measure theirs)."""
from __future__ import annotations

import os

FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_line() -> str:
    import numpy  # noqa: F401  (threadpoolctl sees only libraries already loaded)
    from threadpoolctl import threadpool_info

    kernels = sorted({f"{i.get('internal_api')} {i.get('architecture')} ({i.get('num_threads')} threads)"
                      for i in threadpool_info() if i.get("user_api") == "blas"})
    forced = [v for v in FORCING if v in os.environ]
    return (f"BLAS kernel: {', '.join(kernels) or 'unknown'}"
            + (f"  (WARNING: {', '.join(forced)} set: the kernel is forced; run with env -u to measure what "
               "users get)" if forced else ""))
