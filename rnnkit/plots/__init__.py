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
    """Write ``fig`` to ``path`` atomically (temporary file, then rename) and close it. A failed write (full
    disk, read-only folder) or an interrupt removes the temporary file; the failure is a UserError."""
    from rnnkit.errors import UserError

    path = os.fspath(path)
    tmp = f"{path}.tmp.png"
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; free some space or choose another "
                        "folder") from None
    finally:
        pyplot().close(fig)
        try:
            os.unlink(tmp)  # gone after a successful rename
        except OSError:
            pass
    return path
