"""Plotting: the only package that imports matplotlib (Agg backend, writes PNG files, never shows windows).

One module per subject (``curves``, ``forecast``, ``gradients``); each function takes arrays and a path.
"""
from __future__ import annotations

import os


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend selected."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> str:
    """Write ``fig`` to ``path`` atomically (temporary file, then rename) and close it."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    pyplot().close(fig)
    return path
