"""Optimizers against torch.optim step for step, convergence on known problems, clipping, schedules, state."""
import math

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn.optim import (SGD, Adagrad, Adam, AdamW, ConstantLR, CosineWarmupLR, RMSprop, StepLR,
                             clip_grad_norm, global_norm)

CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    (RMSprop, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
]


def _problem(seed=0):
    """A small least-squares problem: params W (3, 2), b (2,)."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    return X, Y, params


def _grads(X, Y, params):
    r = X @ params["W"] + params["b"] - Y
    loss = float(np.mean(r ** 2))
    dr = 2 * r / r.size
    return loss, {"W": X.T @ dr, "b": dr.sum(0)}


@pytest.mark.parametrize("cls,kw", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)])
def test_matches_torch(cls, kw):
    torch = pytest.importorskip("torch")
    X, Y, params = _problem()
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = getattr(torch.optim, cls.__name__)(list(tparams.values()), **kw)
    opt = cls(params, **kw)
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(8):
        _, grads = _grads(X, Y, params)
        opt.step(grads)
        topt.zero_grad()
        loss = ((torch.tensor(X) @ tparams["W"] + tparams["b"] - torch.tensor(Y)) ** 2).mean()
        loss.backward()
        topt.step()
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-10, atol=1e-12)
        assert id(params[k]) == ids[k]  # updated in place, never rebound


@pytest.mark.parametrize("cls,kw", [(SGD, dict(lr=0.2, momentum=0.5)), (RMSprop, dict(lr=0.01)),
                                    (Adagrad, dict(lr=0.5)), (Adam, dict(lr=0.05)), (AdamW, dict(lr=0.05, weight_decay=0.0))])
def test_converges_on_linear_regression(cls, kw):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    W_true = np.array([[1.0], [-2.0], [0.5]], np.float32)
    Y = X @ W_true + 0.3
    params = {"W": np.zeros((3, 1), np.float32), "b": np.zeros(1, np.float32)}
    opt = cls(params, **kw)
    for _ in range(600):
        _, grads = _grads(X, Y, params)
        opt.step({k: g.astype(np.float32) for k, g in grads.items()})
    assert params["W"].dtype == np.float32
    np.testing.assert_allclose(params["W"], W_true, atol=0.02)
    np.testing.assert_allclose(params["b"], [0.3], atol=0.02)


def test_grads_left_intact_and_missing_grad_error():
    X, Y, params = _problem()
    _, grads = _grads(X, Y, params)
    before = {k: g.copy() for k, g in grads.items()}
    Adam(params, lr=0.1, weight_decay=0.1).step(grads)
    SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1).step(grads)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])
    with pytest.raises(UserError, match="no gradient"):
        Adam(params).step({"W": grads["W"]})


def test_state_dict_round_trip_continues_identically():
    X, Y, p1 = _problem()
    opt1 = Adam(p1, lr=0.05)
    for _ in range(3):
        opt1.step(_grads(X, Y, p1)[1])
    arrays, scalars = opt1.state_dict()
    assert set(arrays) == {"m.W", "m.b", "v.W", "v.b"}
    assert scalars["step"] == 3 and scalars["type"] == "Adam"
    import json
    scalars = json.loads(json.dumps(scalars))
    p2 = {k: v.copy() for k, v in p1.items()}
    opt2 = Adam(p2, lr=0.0)
    opt2.load_state_dict(arrays, scalars)
    assert opt2.lr == 0.05 and opt2.step_count == 3
    for _ in range(3):
        opt1.step(_grads(X, Y, p1)[1])
        opt2.step(_grads(X, Y, p2)[1])
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    with pytest.raises(UserError, match="missing"):
        opt2.load_state_dict({"m.W": arrays["m.W"]}, scalars)
    with pytest.raises(UserError, match="SGD"):
        opt2.load_state_dict(arrays, {**scalars, "type": "SGD"})


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    assert clip_grad_norm(g, 10.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3.0, 0.0])  # under the limit: untouched
    total = clip_grad_norm(g, 1.0)
    assert total == pytest.approx(5.0)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(g["b"], [[0.8]], rtol=1e-5)
    bad = {"a": np.array([1.0, np.nan]), "b": np.array([2.0])}
    assert math.isnan(clip_grad_norm(bad, 1.0))
    assert bad["b"][0] == 2.0  # not scaled
    huge = {"a": np.full(4, 1e30, np.float32)}  # squares overflow float32, values are finite
    assert clip_grad_norm(huge, 1.0) == pytest.approx(2e30, rel=1e-5)
    assert np.all(np.isfinite(huge["a"])) and global_norm(huge) == pytest.approx(1.0, rel=1e-4)


def test_schedules():
    assert ConstantLR(0.1)(0) == ConstantLR(0.1)(1000) == 0.1
    s = StepLR(1.0, step_size=10, gamma=0.5)
    assert [s(0), s(9), s(10), s(25)] == [1.0, 1.0, 0.5, 0.25]
    c = CosineWarmupLR(1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert c(0) == pytest.approx(0.1) and c(4) == pytest.approx(0.5) and c(9) == pytest.approx(1.0)
    assert c(10) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.55)  # halfway through the cosine
    assert c(110) == c(500) == 0.1
    assert all(c(i) >= c(i + 1) for i in range(9, 120))
    with pytest.raises(UserError):
        CosineWarmupLR(1.0, warmup_steps=10, total_steps=5)
