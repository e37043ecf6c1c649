"""Losses: values against direct formulas, float64 gradient checks, masks and ignore_index, errors."""
import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn.gradcheck import check_loss
from rnnkit.nn.losses import gaussian_nll, mse, pinball, softmax_cross_entropy


def _direct_ce(logits, targets, valid):
    z = logits.reshape(-1, logits.shape[-1])
    t, v = targets.reshape(-1), valid.reshape(-1)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(t.size), t][v].mean()


def test_cross_entropy_value_and_grad():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((3, 4, 6)), rng.integers(0, 6, (3, 4))
    loss, d = softmax_cross_entropy(logits, targets)
    assert loss == pytest.approx(_direct_ce(logits, targets, np.ones((3, 4), bool)), rel=1e-12)
    assert d.shape == logits.shape
    res = check_loss(softmax_cross_entropy, (logits, targets))
    assert res.passed(1e-6), res


def test_cross_entropy_mask_and_ignore_index():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 5, 4))
    targets = rng.integers(0, 4, (2, 5))
    mask = np.ones((2, 5), bool)
    mask[0, 3:] = False
    t_ign = targets.copy()
    t_ign[1, 4] = -100
    valid = mask.copy()
    valid[1, 4] = False
    loss, d = softmax_cross_entropy(logits, t_ign, mask=mask, ignore_index=-100)
    assert loss == pytest.approx(_direct_ce(logits, np.where(valid, targets, 0), valid), rel=1e-12)
    assert np.all(d[~valid] == 0)
    res = check_loss(softmax_cross_entropy, (logits, t_ign), kwargs=dict(mask=mask, ignore_index=-100))
    assert res.passed(1e-6), res
    # a masked position equals dropping it
    keep = valid.reshape(-1)
    loss2, _ = softmax_cross_entropy(logits.reshape(-1, 4)[keep], targets.reshape(-1)[keep])
    assert loss == pytest.approx(loss2, rel=1e-12)
    # nothing valid: zero loss, zero gradient
    loss0, d0 = softmax_cross_entropy(logits, targets, mask=np.zeros((2, 5), bool))
    assert loss0 == 0.0 and not d0.any()


def test_cross_entropy_stable_and_float32():
    logits = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    loss, d = softmax_cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(1000.0, rel=1e-6)
    assert d.dtype == np.float32 and np.all(np.isfinite(d))
    np.testing.assert_allclose(d, [[1.0, -1.0, 0.0]], atol=1e-6)


def test_cross_entropy_errors():
    with pytest.raises(UserError, match="targets shape"):
        softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 4), int))
    with pytest.raises(UserError, match=r"\[0, 4\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(UserError, match="integer"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0.0, 1.0]))


def test_mse_value_grad_and_mask():
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    loss, d = mse(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    np.testing.assert_allclose(d, 2 * (pred - target) / pred.size)
    mask = rng.random((3, 4)) > 0.4  # leading-axes mask
    loss_m, d_m = mse(pred, target, mask=mask)
    assert loss_m == pytest.approx(np.mean((pred[mask] - target[mask]) ** 2), rel=1e-12)
    assert np.all(d_m[~mask] == 0)
    assert check_loss(mse, (pred, target), kwargs=dict(mask=mask)).passed(1e-6)
    with pytest.raises(UserError, match="mask shape"):
        mse(pred, target, mask=np.ones((4, 3), bool))
    with pytest.raises(UserError, match="target shape"):
        mse(pred, target[..., :1])


def test_gaussian_nll():
    rng = np.random.default_rng(3)
    mean, log_var, target = (rng.standard_normal((4, 3)) for _ in range(3))
    loss, dm, dlv = gaussian_nll(mean, log_var, target, full=True)
    direct = np.mean(0.5 * (np.log(2 * np.pi) + log_var + (target - mean) ** 2 / np.exp(log_var)))
    assert loss == pytest.approx(direct, rel=1e-12)
    mask = np.array([True, False, True, True])
    res = check_loss(gaussian_nll, (mean, log_var, target), wrt=(0, 1), kwargs=dict(mask=mask),
                     names=("mean", "log_var"))
    assert res.passed(1e-6), res


def test_pinball():
    rng = np.random.default_rng(4)
    q = np.array([0.1, 0.5, 0.9])
    pred, target = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2))
    loss, d = pinball(pred, target, q)
    e = target[..., None] - pred
    assert loss == pytest.approx(np.mean(np.maximum(q * e, (q - 1) * e)), rel=1e-12)
    mask = rng.random((5, 2)) > 0.3
    assert check_loss(pinball, (pred, target, q), kwargs=dict(mask=mask)).passed(1e-6)
    # the median quantile is half the absolute error
    l_med, _ = pinball(pred[..., 1:2], target, [0.5])
    assert l_med == pytest.approx(0.5 * np.mean(np.abs(target - pred[..., 1])), rel=1e-12)
