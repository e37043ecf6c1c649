"""Ray on top of rnnkit (optional: ``pip install "rnnkit[ray]"``): data-parallel text training
(``driver``, ``worker``, ``cluster``) and Ray Tune sweeps (``sweep``). Nothing outside this package and the
commands that use it imports Ray; the engine (``rnnkit.nn``) never does."""
from __future__ import annotations

from rnnkit.errors import UserError

INSTALL_HINT = 'pip install "rnnkit[ray]"'


def require_ray(what: str = "--workers"):
    """The ``ray`` module, or a UserError naming the install command (the CLI turns it into exit status 2)."""
    try:
        import ray
    except ImportError:
        raise UserError(f"{what} needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray
