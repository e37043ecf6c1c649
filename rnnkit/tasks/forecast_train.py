"""Training a forecast network through :func:`rnnkit.train.fit`: Adam on shuffled mini-batches of windows,
global-norm clipping, early stopping on the validation windows with the best weights restored.
"""
from __future__ import annotations

import numpy as np

from rnnkit.nn.optim import Adam
from rnnkit.tasks.forecast_models import gaussian_loss
from rnnkit.train import EarlyStopping, History, fit


class _ShuffledBatches:
    """Re-iterable: every pass is a new permutation of the window indices, cut into batches."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        self.n, self.batch_size, self.rng = n, batch_size, rng

    def __iter__(self):
        order = self.rng.permutation(self.n)
        return (order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def train_net(net, train, val, cfg, rng: np.random.Generator, callback=None, epochs: int | None = None):
    """Train ``net`` in place on ``train`` = (xs, fut, targets) for ``epochs`` (default ``cfg.epochs``);
    returns fit's History with ``best_epoch``: the epochs behind the weights kept (what a refit repeats).

    ``val`` (same form, or None) is scored (MSE of the mean, scaled units) after every epoch; training
    stops after ``cfg.patience`` epochs without improvement and the best weights are restored (epoch 0,
    the untrained network, is a candidate).
    ``callback``: an object with ``on_step``/``on_eval`` hooks (e.g. a progress display), or None.
    """
    dtype = net.dtype

    def cast(part):
        xs, fut, ys = part
        return xs.astype(dtype), None if fut is None else fut.astype(dtype), ys.astype(dtype)

    xs, fut, ys = cast(train)
    val = None if val is None else cast(val)

    def train_step(idx):
        mu, log_sigma = net.forward(xs[idx], None if fut is None else fut[idx], training=True)
        loss, dmu, dlog_sigma = gaussian_loss(mu, log_sigma, ys[idx])
        net.backward(dmu, dlog_sigma)
        return loss

    def eval_fn():
        vx, vf, vy = val
        mu, _ = net.forward(vx, vf)
        return {"val_mse": float(np.mean((vy - mu) ** 2))}

    batches = _ShuffledBatches(len(xs), cfg.batch_size, rng)
    callbacks = [] if callback is None else [callback]
    if val is not None:
        stopper = EarlyStopping("val_mse", patience=cfg.patience, model=net, restore_best=True)
        # the untrained network (close to "no change", i.e. naive) is a candidate too
        stopper.on_eval({"step": 0, **eval_fn()})
        callbacks.append(stopper)
    epochs = cfg.epochs if epochs is None else int(epochs)
    if epochs < 1:
        history = History()
        history.best_epoch = 0
        return history
    opt = Adam(net.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    from rnnkit.distributed.fit_parallel import data_parallel  # Ray itself only if cfg.workers > 1

    history = fit(net, opt, train_step, batches, epochs=epochs, clip=cfg.clip,
                  eval_fn=None if val is None else eval_fn, eval_every=len(batches), log_every=len(batches),
                  callbacks=callbacks, parallel=data_parallel(cfg.workers, cfg.ray_address))
    done = -(-history.steps // len(batches))
    history.best_epoch = done if val is None else stopper.best_step // len(batches)
    return history
