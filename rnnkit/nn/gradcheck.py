"""Float64 central-difference gradient checking for layers and losses.

Relative error of an analytic gradient ``a`` against the numeric one ``n`` is taken over the whole array:
``||a - n|| / max(||a|| + ||n||, 1e-12)`` (L2 norms), so a single tiny component cannot blow it up, and two
exactly-zero gradients give 0. Well-implemented layers score ~1e-9 .. 1e-11 with ``eps=1e-6``; 1e-6 is
the usual pass mark.

``gradcheck(layer, x, ...)`` handles plain layers (``forward(x) -> y``, ``backward(dy) -> dx``) and
recurrent ones (``forward(xs, state=, mask=) -> (ys, state)``, ``backward(dys, dstate) -> (dxs, dstate0)``).
The scalar checked is ``sum(w * y)`` (+ ``sum(w_s * s)`` over the final state) with random weights ``w``.
``check_loss(loss_fn, args, wrt=...)`` checks functions returning ``(loss, grad, ...)``.
"""
from __future__ import annotations

import inspect

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import as_rng

TOLERANCE = 1e-6


def relative_error(analytic, numeric) -> float:
    """||a - n|| / max(||a|| + ||n||, 1e-12) over the whole arrays."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {n.shape}")
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12))


class GradcheckResult(dict):
    """name -> relative error. Names: parameter names as in ``layer.params``, "input", "state[i]"
    (initial state arrays), or the argument names of a checked function."""

    @property
    def max_error(self) -> float:
        return max(self.values(), default=0.0)

    def passed(self, tol: float = TOLERANCE) -> bool:
        return all(err <= tol for err in self.values())

    def failures(self, tol: float = TOLERANCE) -> dict[str, float]:
        return {k: v for k, v in self.items() if not v <= tol}


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central differences of the scalar ``f()`` w.r.t. ``x`` (perturbed in place and restored).

    ``indices``: optional flat indices to probe (the rest stay 0), for big arrays.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numeric_grad: x must be contiguous so it can be perturbed in place")
    gflat = grad.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def _is_recurrent(layer) -> bool:
    try:
        return "state" in inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return False


def _sample(size: int, max_checks, rng) -> np.ndarray | None:
    if max_checks is None or size <= max_checks:
        return None
    return np.sort(rng.choice(size, size=max_checks, replace=False))


def gradcheck(layer, x, *, state=None, mask=None, rng=None, eps: float = 1e-6, check_input: bool = True,
              check_state: bool = True, max_checks: int | None = None, forward_kwargs=None) -> GradcheckResult:
    """Check every parameter gradient of ``layer`` (and the input and initial-state gradients).

    layer: a float64 rnnkit layer; x: its input (a float array is checked, an int array is not);
    state / mask: passed to a recurrent layer's forward (the state is also checked when ``check_state``);
    max_checks: probe at most this many random elements per array (None: all);
    forward_kwargs: extra keyword arguments for forward. Returns a :class:`GradcheckResult`.
    """
    rng = as_rng(rng)
    not64 = sorted(k for k, p in layer.params.items() if p.dtype != np.float64)
    if not64:
        raise UserError(f"gradcheck: {type(layer).__name__} has non-float64 parameters {not64}; "
                        "build it with dtype=np.float64")
    recurrent = _is_recurrent(layer)
    kwargs = dict(forward_kwargs or {})
    x = np.array(x, copy=True)
    x_is_float = x.dtype.kind == "f"
    if x_is_float:
        x = x.astype(np.float64)
    state = None if state is None else tuple(np.array(s, dtype=np.float64, copy=True) for s in state)
    if recurrent:
        kwargs.update(state=state, mask=mask)

    out = layer.forward(x, **kwargs)
    ys, state_n = (out if recurrent else (out, None))
    w_y = rng.standard_normal(np.shape(ys))
    w_s = None if state_n is None else tuple(rng.standard_normal(np.shape(s)) for s in state_n)

    def loss() -> float:
        res = layer.forward(x, **kwargs)
        y, s = (res if recurrent else (res, None))
        total = float(np.sum(w_y * y))
        if w_s is not None:
            total += sum(float(np.sum(w * si)) for w, si in zip(w_s, s))
        return total

    # analytic
    layer.zero_grad()
    layer.forward(x, **kwargs)
    if recurrent:
        dx, dstate0 = layer.backward(w_y, w_s)
    else:
        dx, dstate0 = layer.backward(w_y), None
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    result = GradcheckResult()
    for name, p in layer.params.items():
        idx = _sample(p.size, max_checks, rng)
        num = numeric_grad(loss, p, eps, idx)
        a = analytic[name] if idx is None else analytic[name].reshape(-1)[idx]
        result[name] = relative_error(a, num if idx is None else num.reshape(-1)[idx])
    if check_input and x_is_float:
        if dx is None:
            raise UserError(f"gradcheck: {type(layer).__name__}.backward returned no input gradient; pass check_input=False")
        idx = _sample(x.size, max_checks, rng)
        num = numeric_grad(loss, x, eps, idx)
        result["input"] = relative_error(
            dx if idx is None else np.asarray(dx).reshape(-1)[idx], num if idx is None else num.reshape(-1)[idx]
        )
    if recurrent and check_state and state is not None:
        for i, s in enumerate(state):
            idx = _sample(s.size, max_checks, rng)
            num = numeric_grad(loss, s, eps, idx)
            a = dstate0[i] if idx is None else np.asarray(dstate0[i]).reshape(-1)[idx]
            result[f"state[{i}]"] = relative_error(a, num if idx is None else num.reshape(-1)[idx])
    layer.zero_grad()
    return result


def check_loss(loss_fn, args, wrt=(0,), kwargs=None, eps: float = 1e-6, names=None) -> GradcheckResult:
    """Check a loss ``loss_fn(*args, **kwargs) -> (loss, g_0, g_1, ...)`` where ``g_j`` is the gradient
    w.r.t. ``args[wrt[j]]``. Float arguments are promoted to float64 copies first."""
    args = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a for a in args]
    kwargs = dict(kwargs or {})
    out = loss_fn(*args, **kwargs)
    grads = out[1:]
    if len(grads) != len(wrt):
        raise ValueError(f"check_loss: {loss_fn.__name__} returned {len(grads)} gradients for wrt={wrt}")
    result = GradcheckResult()
    for j, pos in enumerate(wrt):
        num = numeric_grad(lambda: float(loss_fn(*args, **kwargs)[0]), args[pos], eps)
        name = names[j] if names else f"arg{pos}"
        result[name] = relative_error(grads[j], num)
    return result
