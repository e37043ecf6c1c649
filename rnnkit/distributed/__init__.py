"""Ray on top of rnnkit (optional: ``pip install "rnnkit[ray]"``): data-parallel text training (``driver``,
``worker``), data parallelism for any ``fit()`` loop (``fit_parallel``), joining or starting Ray (``cluster``)
and Ray Tune sweeps (``sweep``, ``sweep_tasks``). Ray is imported only when one of these runs; the engine
(``rnnkit.nn``) never imports it."""
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
