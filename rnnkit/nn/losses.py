"""Loss functions. Each returns ``(loss, d...)``: the mean loss as a Python float and its gradient(s).

The mean is over *valid* elements (``mask`` True, target not ``ignore_index``), and the 1/N is already
inside the returned gradients, so they can go straight into a layer's ``backward``.
A ``mask`` may have the input's full shape or only its leading axes (a (B, T) mask for (B, T, D) values).
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


def _leading_mask(mask, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    """A boolean mask broadcastable against ``shape`` (trailing axes added), or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape[: mask.ndim]:
        raise UserError(
            f"{name}: mask shape {mask.shape} does not match the leading axes of {shape}; "
            f"pass a mask of shape {shape[:max(mask.ndim, 1)]} (True where valid)"
        )
    return mask.astype(bool, copy=False).reshape(mask.shape + (1,) * (len(shape) - mask.ndim))


def mse(pred, target, mask=None) -> tuple[float, np.ndarray]:
    """Mean squared error: mean((pred - target)^2) over valid elements; returns (loss, dpred)."""
    pred = np.asarray(pred)
    target = np.asarray(target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise UserError(f"mse: target shape {target.shape} differs from prediction shape {pred.shape}; reshape one to match")
    m = _leading_mask(mask, pred.shape, "mse")
    diff = pred - target
    if m is not None:
        diff *= m
        n = int(m.sum()) * (pred.size // max(m.size, 1))
    else:
        n = pred.size
    if n == 0:
        return 0.0, np.zeros_like(pred)
    loss = float(np.vdot(diff.ravel(), diff.ravel())) / n
    diff *= 2.0 / n
    return loss, diff


def softmax_cross_entropy(logits, targets, mask=None, ignore_index=None) -> tuple[float, np.ndarray]:
    """Fused log-softmax + negative log-likelihood, stable through log-sum-exp.

    logits (..., V) float; targets (...) int in [0, V). Positions where ``mask`` is False or the target
    equals ``ignore_index`` count for nothing. Returns (mean loss over valid positions, dlogits (..., V)).
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if logits.ndim < 1 or targets.shape != logits.shape[:-1]:
        raise UserError(
            f"softmax_cross_entropy: targets shape {targets.shape} must equal logits shape without its last "
            f"(class) axis, {logits.shape[:-1]}; logits are (..., V) and targets (...)"
        )
    if targets.dtype.kind not in "iu":
        raise UserError(f"softmax_cross_entropy: targets must be integer class ids, got dtype {targets.dtype}")
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    valid = None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != targets.shape:
            raise UserError(f"softmax_cross_entropy: mask shape {mask.shape} must equal targets shape {targets.shape}")
        valid = mask.reshape(-1).astype(bool, copy=False)
    if ignore_index is not None:
        keep = t != ignore_index
        valid = keep if valid is None else valid & keep
    if valid is not None:
        t = np.where(valid, t, 0)
        n = int(valid.sum())
    else:
        n = t.size
    if t.size and (t.min() < 0 or t.max() >= V):
        raise UserError(
            f"softmax_cross_entropy: target ids must be in [0, {V}), found min {t.min()}, max {t.max()}; "
            "check the vocabulary / number of classes (or pass ignore_index for padding)"
        )
    if n == 0:
        return 0.0, np.zeros_like(logits)
    flat = np.arange(t.size) * V + t  # flat positions of the target logits
    probs = z - z.max(axis=1, keepdims=True)  # (N, V) shifted logits, reused as the gradient buffer
    picked = probs.reshape(-1).take(flat)  # shifted logit of each target
    np.exp(probs, out=probs)
    sums = probs @ np.ones(V, dtype=probs.dtype)  # row sums as a GEMV: several times faster than .sum(1)
    nll = np.log(sums) - picked  # (N,)
    if valid is not None:
        loss = float(nll[valid].sum(dtype=np.float64)) / n
    else:
        loss = float(nll.sum(dtype=np.float64)) / n
    # d/dz of the mean NLL: (softmax(z) - onehot(t)) / n, zero on invalid rows
    scale = (1.0 / n) / sums
    if valid is not None:
        scale *= valid
    probs *= scale[:, None].astype(probs.dtype, copy=False)
    probs.reshape(-1)[flat] -= (valid if valid is not None else 1.0) * (1.0 / n)
    return loss, probs.reshape(logits.shape)


def gaussian_nll(mean, log_var, target, mask=None, full: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Gaussian negative log-likelihood with a predicted log-variance.

    loss = mean(0.5 * (log_var + (target - mean)^2 * exp(-log_var))) [+ 0.5 log(2 pi) when ``full``].
    Returns (loss, dmean, dlog_var).
    """
    mean = np.asarray(mean)
    log_var = np.asarray(log_var, dtype=mean.dtype)
    target = np.asarray(target, dtype=mean.dtype)
    if not (mean.shape == log_var.shape == target.shape):
        raise UserError(
            f"gaussian_nll: mean {mean.shape}, log_var {log_var.shape} and target {target.shape} must have one shape"
        )
    m = _leading_mask(mask, mean.shape, "gaussian_nll")
    inv_var = np.exp(-log_var)
    diff = mean - target
    sq = diff * diff * inv_var
    per = 0.5 * (log_var + sq)
    if full:
        per += 0.5 * np.log(2 * np.pi)
    if m is not None:
        n = int(m.sum()) * (mean.size // max(m.size, 1))
        per = per * m
    else:
        n = mean.size
    if n == 0:
        return 0.0, np.zeros_like(mean), np.zeros_like(log_var)
    loss = float(per.sum(dtype=np.float64)) / n
    dmean = diff * inv_var * (1.0 / n)
    dlog_var = (0.5 / n) * (1 - sq)
    if m is not None:
        dmean *= m
        dlog_var *= m
    return loss, dmean, dlog_var


def pinball(pred, target, quantiles, mask=None) -> tuple[float, np.ndarray]:
    """Quantile (pinball) loss: pred (..., Q) for quantiles (Q,), target (...) or (..., 1).

    loss = mean(max(q * e, (q - 1) * e)) with e = target - pred, averaged over valid positions and the Q
    quantiles. Returns (loss, dpred).
    """
    pred = np.asarray(pred)
    q = np.asarray(quantiles, dtype=pred.dtype).reshape(-1)
    if pred.ndim < 1 or pred.shape[-1] != q.size:
        raise UserError(f"pinball: pred last axis {pred.shape[-1:]} must equal the number of quantiles {q.size}")
    target = np.asarray(target, dtype=pred.dtype)
    if target.shape == pred.shape[:-1]:
        target = target[..., None]
    if target.shape != pred.shape[:-1] + (1,):
        raise UserError(f"pinball: target shape {target.shape} must be {pred.shape[:-1]} or {pred.shape[:-1] + (1,)}")
    e = target - pred
    m = _leading_mask(mask, pred.shape, "pinball")
    # d/dpred: -q where the target is above the prediction, (1 - q) where it is below
    dpred = np.where(e > 0, -q, 1 - q).astype(pred.dtype, copy=False)
    per = np.maximum(q * e, (q - 1) * e)
    if m is not None:
        n = int(m.sum()) * (pred.size // max(m.size, 1))
        per = per * m
        dpred = dpred * m
    else:
        n = pred.size
    if n == 0:
        return 0.0, np.zeros_like(pred)
    loss = float(per.sum(dtype=np.float64)) / n
    dpred *= 1.0 / n
    return loss, dpred


quantile_loss = pinball
