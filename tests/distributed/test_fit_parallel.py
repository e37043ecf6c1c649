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


class NormNet(Layer):
    """Dense -> BatchNorm -> Dense with ``buffers()`` as ClassifierNet has: the running statistics."""

    def __init__(self):
        from rnnkit.nn.norm import BatchNorm

        super().__init__(np.float64)
        self.a = self.add_child("a", Dense(4, 6, dtype=np.float64, rng=0))
        self.bn = self.add_child("bn", BatchNorm(6, dtype=np.float64))
        self.b = self.add_child("b", Dense(6, 2, dtype=np.float64, rng=1))

    def buffers(self):
        return {f"bn.{k}": v for k, v in self.bn.buffers.items()}


def test_batchnorm_buffers_follow_worker_0(ray_local):
    import sys

    from ray import cloudpickle

    from rnnkit.distributed.fit_parallel import DataParallel, split_batch

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test module
    net = NormNet()

    def train_step(batch):
        x, y = batch
        loss, d = softmax_cross_entropy(net.b.forward(net.bn.forward(net.a.forward(x), training=True)), y)
        net.a.backward(net.bn.backward(net.b.backward(d)))
        return loss

    x = np.random.default_rng(2).normal(3.0, 2.0, size=(16, 4))
    y = (x[:, 0] > 3).astype(np.intp)
    fit(net, Adam(net.params, lr=0.01), train_step, [(x, y)], steps=1, parallel=DataParallel(2))
    # worker 0 saw the first 8 rows once, with the weights the run started from
    ref = NormNet()
    ref.bn.forward(ref.a.forward(split_batch((x, y), 2)[0][0]), training=True)
    np.testing.assert_allclose(net.bn.buffers["running_mean"], ref.bn.buffers["running_mean"], rtol=1e-12)
    np.testing.assert_allclose(net.bn.buffers["running_var"], ref.bn.buffers["running_var"], rtol=1e-12)
    assert not np.allclose(net.bn.buffers["running_mean"], 0.0)
