"""``fit(..., parallel=DataParallel(2))`` for any task built on fit: 2 Ray workers give the weights of one
process after 20 steps (a GRU classifier in float64), batches split by rows, gradients weighted by rows."""
import numpy as np
import pytest

from rnnkit.nn.base import Layer
from rnnkit.nn.layers import Dense
from rnnkit.nn.losses import softmax_cross_entropy
from rnnkit.nn.optim import Adam
from rnnkit.nn.recurrent import GRU
from rnnkit.train import fit


def gru_classifier():
    """A GRU read to its last step, then a Dense head; returns (model, train_step, batches)."""
    rng = np.random.default_rng(0)
    gru = GRU(3, 8, dtype=np.float64, rng=rng)
    head = Dense(8, 2, dtype=np.float64, rng=rng)
    model = Layer(np.float64)
    model.add_child("gru", gru)
    model.add_child("head", head)

    def train_step(batch):
        xs, ys = batch
        hs, _ = gru.forward(xs, training=True)
        loss, dlogits = softmax_cross_entropy(head.forward(hs[:, -1]), ys)
        dhs = np.zeros_like(hs)
        dhs[:, -1] = head.backward(dlogits)
        gru.backward(dhs)
        return loss

    data = np.random.default_rng(1)
    xs = data.normal(size=(60, 6, 3))
    ys = (xs[:, :, 0].sum(1) > 0).astype(np.intp)
    batches = [(xs[i:i + 15], ys[i:i + 15]) for i in range(0, 60, 15)]  # 15 rows: shares of 8 and 7
    return model, train_step, batches


def test_fit_with_two_workers_equals_one_process(ray_local):
    from rnnkit.distributed.fit_parallel import DataParallel

    runs = []
    for parallel in (None, DataParallel(2)):
        model, train_step, batches = gru_classifier()
        start = {k: p.copy() for k, p in model.params.items()}
        history = fit(model, Adam(model.params, lr=0.02), train_step, batches, steps=20, log_every=5,
                      parallel=parallel)
        runs.append((model, history))
    (one, h1), (two, h2) = runs
    moved = max(float(np.abs(one.params[k] - start[k]).max()) for k in start)
    assert moved > 1e-2
    for k in one.params:
        np.testing.assert_allclose(two.params[k], one.params[k], rtol=1e-10, atol=1e-12)
    assert [r["loss"] for r in h2.train] == pytest.approx([r["loss"] for r in h1.train], rel=1e-10)
