"""Training a forecast network: Adam on shuffled mini-batches of windows, global-norm clipping, early
stopping on the validation windows (the best weights are restored), non-finite losses never applied.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.optim import Adam, clip_grad_norm
from rnnkit.tasks.forecast_models import batches, gaussian_loss


def _val_loss(net, val) -> float:
    xs, fut, ys = val
    mu, _ = net.forward(xs, fut)
    return float(np.mean((ys - mu) ** 2))


def train_net(net, train, val, cfg, rng: np.random.Generator, callback=None) -> list[dict]:
    """Train ``net`` in place on ``train`` = (xs, fut, targets); returns the per-epoch log.

    ``val`` (same form, or None) drives early stopping with ``cfg.patience`` epochs of patience.
    ``callback(epoch, record)`` is called after each epoch (for progress bars).
    """
    xs, fut, ys = train
    dtype = net.dtype
    xs, ys = xs.astype(dtype), ys.astype(dtype)
    fut = None if fut is None else fut.astype(dtype)
    if val is not None:
        val = (val[0].astype(dtype), None if val[1] is None else val[1].astype(dtype), val[2].astype(dtype))
    opt = Adam(net.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, since_best, log = math.inf, net.state_dict(), 0, []
    for epoch in range(1, cfg.epochs + 1):
        total, count = 0.0, 0
        for idx in batches(len(xs), cfg.batch_size, rng):
            net.zero_grad()
            mu, ls = net.forward(xs[idx], None if fut is None else fut[idx], training=True)
            loss, dmu, dls = gaussian_loss(mu, ls, ys[idx])
            if not math.isfinite(loss):
                net.load_state_dict(best_state)
                raise UserError(f"training diverged at epoch {epoch} (loss {loss}); the last good weights "
                                "were restored; lower --lr")
            net.backward(dmu, dls)
            clip_grad_norm(net.grads, cfg.clip)
            opt.step(net.grads)
            total += loss * len(idx)
            count += len(idx)
        record = {"epoch": epoch, "train_loss": total / count}
        if val is not None:
            v = _val_loss(net, val)
            record["val_mse"] = v
            if v < best - 1e-9:
                best, best_state, since_best = v, net.state_dict(), 0
            else:
                since_best += 1
        log.append(record)
        if callback is not None:
            callback(epoch, record)
        if val is not None and since_best >= cfg.patience:
            break
    if val is not None:
        net.load_state_dict(best_state)
    return log
