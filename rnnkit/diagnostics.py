"""Gradient-flow diagnostics for any rnnkit recurrent layer (ElmanRNN, JordanRNN, LSTM, GRU).

* ``dh_norms``: the norm of dL/dh_t at every step, per layer, from ``layer.record_dh`` after a backward.
* ``state_jacobians`` / ``jacobian_norms``: the exact Jacobian d s_T / d h_t of the carried state at the
  last step with respect to the hidden state at every step, per layer, by backpropagating every basis
  vector of s_T in one batched backward pass (no finite differences, no approximation).
* ``early_late_ratio`` and ``flow_warning``: one number that says vanishing (< 1e-3) or exploding (> 1e3).
* ``param_grad_norms``, ``gate_saturation`` (fractions of gate activations below 0.1 / above 0.9), and
  ``GradientMonitor``, a training callback that records all of this per step.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

VANISH = 1e-3
EXPLODE = 1e3
TANH_GATES = frozenset({"g", "n"})  # candidate gates live in (-1, 1); they are rescaled to (0, 1)


# -- dL/dh_t ----------------------------------------------------------------------------------------
def dh_norms(layer) -> list[np.ndarray]:
    """Per layer (index ``l * dirs + d``), a (T,) array: the norm of dL/dh_t over the batch and units.

    Reads ``layer.dhs_``, which the layer fills during ``backward`` when ``layer.record_dh`` is True. The
    norm at step t is the Frobenius norm of the (B, H) slice, i.e. the gradient of the batch loss with
    respect to every sequence's h_t at once.
    """
    dhs = getattr(layer, "dhs_", None)
    if not dhs:
        raise ValueError("no recorded dL/dh: set layer.record_dh = True before forward/backward")
    return [np.sqrt(np.einsum("bth,bth->t", d, d, dtype=np.float64)) for d in dhs]


class _Isolated:
    """Run extra forward/backward passes on a layer without disturbing its gradients or flags."""

    def __init__(self, layer):
        self.layer = layer

    def __enter__(self):
        self.saved = {k: g.copy() for k, g in self.layer.grads.items()}
        self.record = getattr(self.layer, "record_dh", False)
        self.layer.record_dh = True
        return self.layer

    def __exit__(self, *exc):
        for k, g in self.layer.grads.items():
            g[...] = self.saved[k]
        self.layer.record_dh = self.record
        return False


def dh_norms_for(layer, xs, dys, state=None, mask=None) -> list[np.ndarray]:
    """Forward ``xs``, backpropagate the output gradient ``dys``, return :func:`dh_norms`.

    The layer's gradients and ``record_dh`` flag are left as they were (its forward cache is not:
    do not call this between a training forward and its backward).
    """
    with _Isolated(layer):
        layer.forward(xs, state=state, mask=mask, training=False)
        layer.backward(dys)
        return dh_norms(layer)


# -- the Jacobian d s_T / d h_t ---------------------------------------------------------------------
def state_jacobians(layer, xs, mask=None) -> list[np.ndarray]:
    """Exact Jacobians of the final carried state with respect to the hidden state at every step.

    Returns, per layer (index ``l * dirs + d``), an array ``J`` of shape (B, T, S, H) with
    ``J[b, t, j, i] = d s_T[b, j] / d h_t[b, i]``, where s is the state the layer carries (h for Elman
    and GRU, h for LSTM with the cell c_t held fixed, the output y for Jordan) and the inputs from the
    layer below are held fixed, so the product follows that layer's own recurrence only. For a reverse
    direction "final" means t = 0. Method: the batch is repeated S times and row ``j * B + b`` gets the
    basis vector e_j as the gradient of its final state; one backward pass then yields every row of
    every Jacobian in ``layer.dhs_``. Cost: one forward and one backward at batch S*B per layer.
    """
    xs = np.asarray(xs)
    B = xs.shape[0]
    with _Isolated(layer):
        _, state = layer.forward(xs[:1], mask=None if mask is None else mask[:1])
        K, _, S = state[0].shape
        reps = np.concatenate([xs] * S, axis=0)
        rmask = None if mask is None else np.concatenate([mask] * S, axis=0)
        seed = np.repeat(np.eye(S, dtype=xs.dtype), B, axis=0)  # row j*B + b holds e_j
        out = []
        for k in range(K):
            layer.zero_grad()
            _, state = layer.forward(reps, mask=rmask, training=False)
            dstate = tuple(np.zeros_like(s) for s in state)
            dstate[0][k] = seed
            layer.backward(None, dstate)
            d = layer.dhs_[k]  # (S*B, T, H)
            out.append(d.reshape(S, B, *d.shape[1:]).transpose(1, 2, 0, 3).astype(np.float64))
    return out


def jacobian_norms(layer, xs, mask=None, ord=2) -> list[np.ndarray]:
    """Per layer, a (T,) array: ||d s_T / d h_t|| averaged over the batch (spectral norm by default,
    ``ord="fro"`` for Frobenius). See :func:`state_jacobians`."""
    res = []
    for J in state_jacobians(layer, xs, mask):
        if ord == 2:
            n = np.linalg.svd(J, compute_uv=False)[..., 0]
        else:
            n = np.sqrt((J * J).sum(axis=(-2, -1)))
        res.append(n.mean(axis=0))
    return res


# -- summaries and warnings ----------------------------------------------------------------------------
def early_late_ratio(norms: np.ndarray, frac: float = 0.1) -> float:
    """Mean of the first ``frac`` of a per-step norm curve over the mean of its last ``frac``.

    For dL/dh_t of a loss at the last step this is how much of the error signal reaches the start.
    """
    norms = np.asarray(norms, dtype=np.float64)
    k = max(1, int(round(len(norms) * frac)))
    late = norms[-k:].mean()
    early = norms[:k].mean()
    if late == 0:
        return 0.0 if early == 0 else math.inf
    return float(early / late)


def flow_warning(ratio: float, vanish: float = VANISH, explode: float = EXPLODE) -> str | None:
    """A one-line warning when an early-to-late ratio signals vanishing or exploding gradients."""
    if not np.isfinite(ratio):
        return f"exploding gradients: early-to-late dL/dh ratio is {ratio}"
    if ratio < vanish:
        return (f"vanishing gradients: dL/dh at the first steps is {ratio:.1e} of its value at the last "
                f"steps (< {vanish:g}); early inputs barely affect learning (try LSTM/GRU)")
    if ratio > explode:
        return (f"exploding gradients: dL/dh at the first steps is {ratio:.1e} times its value at the last "
                f"steps (> {explode:g}); clip the global gradient norm or lower the learning rate")
    return None


def param_grad_norms(grads: dict) -> dict[str, float]:
    """L2 norm of each gradient array, by name, plus ``"total"`` (the global norm clipping uses)."""
    out = {k: float(np.sqrt(np.sum(np.square(g, dtype=np.float64)))) for k, g in grads.items()}
    out["total"] = float(np.sqrt(sum(v * v for v in out.values())))
    return out


def gate_saturation(layer, low: float = 0.1, high: float = 0.9) -> dict[str, dict[str, dict[str, float]]]:
    """Fraction of each gate's activations from the last forward that are saturated, per layer.

    ``{"l0": {"f": {"left": 0.02, "right": 0.31, "saturated": 0.33}, ...}, ...}``: "left" is the
    fraction below ``low``, "right" above ``high`` (Karpathy, Johnson & Fei-Fei 2015). The tanh
    candidates (LSTM ``g``, GRU ``n``) are mapped from (-1, 1) to (0, 1) first.
    """
    out = {}
    for name, gates in layer.gate_activations().items():
        out[name] = {}
        for gate, a in gates.items():
            v = (np.asarray(a) + 1) / 2 if gate in TANH_GATES else np.asarray(a)
            left, right = float((v < low).mean()), float((v > high).mean())
            out[name][gate] = {"left": left, "right": right, "saturated": left + right}
    return out


# -- a training callback ---------------------------------------------------------------------------------
class GradientMonitor:
    """Records per-step gradient diagnostics of one recurrent layer during training.

    Construct it with the recurrent layer (it switches ``layer.record_dh`` on), then call
    :meth:`record` after each backward (before clipping, so the norms are the raw ones). It returns
    flat metric columns: ``grad_norm`` (global), ``grad_norm/<param>``, ``dh_ratio`` (early-to-late
    ratio of dL/dh_t of the first layer, the one farthest from the loss) and ``dh_first`` / ``dh_last``.
    A vanishing or exploding signal issues a :class:`RuntimeWarning` once per kind (and every
    ``warn_every`` steps after that), and is kept in :attr:`warnings_`.

    With :func:`rnnkit.train.fit`, wrap the train step: ``fit(model, opt, monitor.wrap(train_step), ...)``.
    The wrapped step returns the loss plus the monitor's columns (without ``grad_norm``, which fit logs
    itself), so they land in fit's history, averaged over each ``log_every`` interval; between records
    (``every`` > 1) the last recorded values are repeated so those averages stay right.
    """

    def __init__(self, layer, every: int = 1, vanish: float = VANISH, explode: float = EXPLODE,
                 warn_every: int = 0, prefix: str = ""):
        self.layer = layer
        self.every = max(1, int(every))
        self.vanish, self.explode = vanish, explode
        self.warn_every = int(warn_every)
        self.prefix = prefix
        self.warnings_: list[tuple[int, str]] = []
        self._last_warned: dict[str, int] = {}
        layer.record_dh = True
        self._step = 0
        self._held: dict[str, float] = {}

    def wrap(self, train_step):
        """A train step for :func:`rnnkit.train.fit` that also records this monitor's columns."""

        def monitored_step(batch):
            out = train_step(batch)
            extras = dict(out) if isinstance(out, dict) else {"loss": out}
            self._step += 1
            row = self.record(self._step)
            if row:
                row.pop("grad_norm", None)
                self._held = row
            extras.update(self._held)
            return extras

        return monitored_step

    def record(self, step: int) -> dict[str, float]:
        if step % self.every:
            return {}
        row = {}
        norms = param_grad_norms(self.layer.grads)
        row["grad_norm"] = norms.pop("total")
        for k, v in norms.items():
            row[f"grad_norm/{self.prefix}{k}"] = v
        curve = dh_norms(self.layer)[0]
        ratio = early_late_ratio(curve)
        row.update(dh_ratio=ratio, dh_first=float(curve[0]), dh_last=float(curve[-1]))
        message = flow_warning(ratio, self.vanish, self.explode)
        if message is None and not np.isfinite(row["grad_norm"]):
            message = f"exploding gradients: the gradient norm is {row['grad_norm']}"
        if message:
            kind = message.split(":")[0]
            last = self._last_warned.get(kind)
            if last is None or (self.warn_every and step - last >= self.warn_every):
                self._last_warned[kind] = step
                self.warnings_.append((step, message))
                warnings.warn(f"step {step}: {message}", RuntimeWarning, stacklevel=2)
        return row
