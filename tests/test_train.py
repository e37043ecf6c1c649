"""fit(): learns XOR, budgets, schedules, evaluation, callbacks, and the non-finite guard."""
import numpy as np
import pytest

from rnnkit.nn.layers import Dense, Sequential, Tanh
from rnnkit.nn.losses import softmax_cross_entropy
from rnnkit.nn.optim import SGD, Adam, StepLR
from rnnkit.train import Callback, EarlyStopping, StopTraining, TrainingDiverged, fit

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y = np.array([0, 1, 1, 0])


def _xor_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Dense(2, 8, rng=rng), Tanh(), Dense(8, 2, rng=rng))


def _step_fn(net):
    def train_step(batch):
        x, y = batch
        loss, dlogits = softmax_cross_entropy(net.forward(x, training=True), y)
        net.backward(dlogits)
        return loss
    return train_step


def test_fit_learns_xor():
    net = _xor_net()
    opt = Adam(net.params, lr=0.05)
    lines = []
    hist = fit(net, opt, _step_fn(net), [(X, Y)], steps=400, log_every=100, log=lines.append,
               eval_fn=lambda: {"acc": float((net.forward(X).argmax(-1) == Y).mean())}, eval_every=200)
    assert hist.stop_reason == "steps" and hist.steps == 400
    assert [r["step"] for r in hist.train] == [100, 200, 300, 400]
    assert hist.train[-1]["loss"] < 0.05 < hist.train[0]["loss"]
    assert [r["step"] for r in hist.evals] == [200, 400] and hist.last()["acc"] == 1.0
    assert "clip 5.0" in lines[0] and "stopped after 400 steps" in lines[-1]
    steps, losses = hist.series("loss")
    assert list(steps) == [100, 200, 300, 400] and losses[-1] < losses[0]


def test_nonfinite_gradient_is_skipped_and_named():
    net = _xor_net()
    opt = SGD(net.params, lr=0.1, momentum=0.9)
    good = _step_fn(net)
    calls = {"n": 0}

    def train_step(batch):
        calls["n"] += 1
        loss = good(batch)
        if calls["n"] > 3:
            net.grads["2.W"][0, 0] = np.nan
        return loss

    hist = fit(net, opt, train_step, [(X, Y)], steps=3, log_every=1, snapshot_every=1)
    before = {k: p.copy() for k, p in net.params.items()}
    momentum_before = opt.state["momentum"]["0.W"].copy()
    with pytest.warns(RuntimeWarning, match="'2.W'"):
        hist = fit(net, opt, train_step, [(X, Y)], steps=2, log_every=1)
    for k in before:
        np.testing.assert_array_equal(net.params[k], before[k])
    np.testing.assert_array_equal(opt.state["momentum"]["0.W"], momentum_before)
    assert len(hist.skips) == 2 and "'2.W'" in hist.skips[0]["reason"]
    assert hist.train == []


def test_nonfinite_loss_restores_last_good_and_stops_after_k():
    net = _xor_net()
    opt = Adam(net.params, lr=0.05)
    good = _step_fn(net)
    calls = {"n": 0}

    def train_step(batch):
        calls["n"] += 1
        if calls["n"] > 10:
            # a bad step after the snapshot at step 10 would otherwise have changed the weights
            return float("nan")
        return good(batch)

    lines = []
    with pytest.raises(TrainingDiverged, match="3 consecutive.*loss is nan") as info:
        fit(net, opt, train_step, [(X, Y)], steps=50, snapshot_every=5, max_bad_steps=3, log=lines.append)
    assert len(info.value.history.skips) == 3
    assert sum("loss is nan" in line for line in lines) == 3
    # restored to the snapshot of step 10 = the state after 10 good steps
    ref = _xor_net()
    ref_opt = Adam(ref.params, lr=0.05)
    fit(ref, ref_opt, _step_fn(ref), [(X, Y)], steps=10)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    assert opt.step_count == 10


def test_time_budget():
    net = _xor_net()
    opt = Adam(net.params, lr=0.01)
    slow = _step_fn(net)

    def train_step(batch):
        import time
        time.sleep(0.01)
        return slow(batch)

    hist = fit(net, opt, train_step, lambda step: (X, Y), minutes=0.2 / 60)
    assert hist.stop_reason == "time"
    assert 5 <= hist.steps <= 25


def test_callbacks_can_stop_and_see_every_step():
    net = _xor_net()
    opt = Adam(net.params, lr=0.01)
    seen = []

    class StopAt(Callback):
        def on_step(self, record):
            seen.append(record["step"])
            return record["step"] >= 7

        def on_end(self, history):
            seen.append("end")

    hist = fit(net, opt, _step_fn(net), [(X, Y)], steps=100, callbacks=[StopAt()])
    assert hist.stop_reason == "callback" and hist.steps == 7
    assert seen == [1, 2, 3, 4, 5, 6, 7, "end"]

    class Raise:
        def on_step(self, record):
            if record["step"] == 3:
                raise StopTraining

    assert fit(net, opt, _step_fn(net), [(X, Y)], steps=100, callbacks=[Raise()]).steps == 3


def test_early_stopping_restores_best():
    net = _xor_net()
    opt = Adam(net.params, lr=0.01)
    values = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    es = EarlyStopping("val", patience=2, model=net, restore_best=True)
    snaps = {}

    def eval_fn():
        snaps[len(snaps)] = {k: p.copy() for k, p in net.params.items()}
        return {"val": next(values)}

    hist = fit(net, opt, _step_fn(net), [(X, Y)], steps=100, eval_fn=eval_fn, eval_every=5, callbacks=[es])
    assert hist.stop_reason == "callback" and hist.steps == 20
    assert es.best == 2.0 and es.best_step == 10
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], snaps[1][k])


def test_schedule_epochs_and_extras():
    net = _xor_net()
    opt = SGD(net.params, lr=1.0)
    step_fn = _step_fn(net)
    lrs = []

    def train_step(batch):
        lrs.append(opt.lr)
        return {"loss": step_fn(batch), "n": len(batch[0])}

    data = [(X[:2], Y[:2]), (X[2:], Y[2:])]
    hist = fit(net, opt, train_step, data, epochs=3, schedule=StepLR(0.1, step_size=2, gamma=0.5),
               log_every=2, tokens_per_step=lambda b: len(b[0]))
    assert hist.stop_reason == "data" and hist.steps == 6
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert hist.train[0]["n"] == 2 and hist.train[0]["tokens_per_s"] > 0
    # a one-shot iterator is used once
    assert fit(net, opt, train_step, iter(data)).steps == 2


def test_clipping_applied_before_step():
    net = _xor_net()
    opt = SGD(net.params, lr=1.0)
    before = {k: p.copy() for k, p in net.params.items()}

    def train_step(batch):
        for g in net.grads.values():
            g.fill(100.0)
        return 1.0

    fit(net, opt, train_step, [None], steps=1, clip=1.0)
    delta = np.sqrt(sum(np.sum((net.params[k] - before[k]) ** 2) for k in before))
    assert delta == pytest.approx(1.0, rel=1e-4)


def test_progress_bar_runs(capsys):
    net = _xor_net()
    hist = fit(net, Adam(net.params), _step_fn(net), [(X, Y)], steps=20, progress=True, log_every=5,
               tokens_per_step=4)
    assert hist.steps == 20
