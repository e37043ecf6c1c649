"""BatchNorm: gradient checks (train and eval, masks), PyTorch BatchNorm1d parity, masks, state, errors."""
import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.nn import BatchNorm
from rnnkit.nn.gradcheck import gradcheck

LENGTHS = [5, 3, 4]


def lengths_mask(lengths, T):
    return np.arange(T) < np.asarray(lengths)[:, None]


def scrambled(C, rng):
    """A BatchNorm with non-trivial gamma, beta and running statistics."""
    bn = BatchNorm(C, dtype=np.float64)
    bn.gamma[...] = rng.uniform(0.5, 2, C)
    bn.beta[...] = rng.standard_normal(C)
    bn.running_mean[...] = rng.standard_normal(C)
    bn.running_var[...] = rng.uniform(0.5, 2, C)
    return bn


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(training, masked):
    rng = np.random.default_rng(1)
    bn = scrambled(3, rng)
    xs = rng.standard_normal((3, 5, 3)) * 2 + 1
    mask = lengths_mask(LENGTHS, 5) if masked else None
    res = gradcheck(bn, xs, rng=rng, forward_kwargs={"mask": mask, "training": training})
    assert set(res) == {"gamma", "beta", "input"} and res.passed(1e-6), res


def test_gradcheck_two_dimensional_input():
    rng = np.random.default_rng(2)
    res = gradcheck(scrambled(4, rng), rng.standard_normal((6, 4)), rng=rng, forward_kwargs={"training": True})
    assert res.passed(1e-6), res


def test_hand_values_and_running_update():
    bn = BatchNorm(1, momentum=0.5, eps=1e-12, dtype=np.float64)
    xs = np.array([[[1.0], [3.0], [99.0]], [[5.0], [7.0], [-99.0]]])
    mask = np.array([[1, 1, 0], [1, 1, 0]], bool)
    ys = bn.forward(xs, mask=mask, training=True)
    # valid values 1, 3, 5, 7: mean 4, biased var 5, unbiased 20/3
    np.testing.assert_allclose(ys[:, :2, 0], (np.array([[1, 3], [5, 7]]) - 4) / np.sqrt(5))
    assert not ys[:, 2].any()
    np.testing.assert_allclose(bn.running_mean, [0.5 * 4])
    np.testing.assert_allclose(bn.running_var, [0.5 * 1 + 0.5 * 20 / 3])
    assert bn.num_batches_tracked == 1
    ye = bn.forward(xs, mask=mask)  # eval: running statistics
    np.testing.assert_allclose(ye[0, :2, 0], (np.array([1, 3]) - 2) / np.sqrt(0.5 + 10 / 3))


def test_eval_treats_each_case_alone_and_padding_is_ignored():
    rng = np.random.default_rng(3)
    bn = scrambled(3, rng)
    T = max(LENGTHS)
    xs = rng.standard_normal((3, T, 3))
    mask = lengths_mask(LENGTHS, T)
    xs[~mask] = np.nan
    dys = rng.standard_normal(xs.shape)
    ys = bn.forward(xs, mask=mask)
    dxs = bn.backward(dys)
    assert np.isfinite(ys).all() and not ys[~mask].any() and not dxs[~mask].any()
    for i, L in enumerate(LENGTHS):
        np.testing.assert_allclose(ys[i, :L], bn.forward(xs[i:i + 1, :L])[0], rtol=1e-13)
        np.testing.assert_allclose(dxs[i, :L], bn.backward(dys[i:i + 1, :L])[0], rtol=1e-13)
    # training: statistics over the valid positions only, whatever the padding holds
    valid = xs[mask]  # (N, C)
    ys = bn.forward(xs, mask=mask, training=True)
    np.testing.assert_allclose(ys[mask], bn.gamma * (valid - valid.mean(0)) / np.sqrt(valid.var(0) + bn.eps)
                               + bn.beta, rtol=1e-12)


def torch_bn(torch, bn):
    tb = torch.nn.BatchNorm1d(bn.num_features, momentum=bn.momentum, eps=bn.eps, dtype=torch.float64)
    tb.load_state_dict({k: torch.tensor(v) for k, v in bn.torch_state_dict().items()})
    return tb


@pytest.mark.parametrize("masked", [False, True])
def test_torch_parity_train_then_eval(masked):
    """Three training steps then eval; unmasked via (B, C, T) input, masked via the valid positions as (N, C)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    bn = scrambled(3, rng)
    tb = torch_bn(torch, bn)
    T = 6
    for step in range(4):
        training = step < 3
        tb.train(training)
        xs = rng.standard_normal((4, T, 3)) * 3 + 1
        mask = lengths_mask([6, 2, 5, 3], T) if masked else None
        w = rng.standard_normal(xs.shape)
        bn.zero_grad()
        ys = bn.forward(xs, mask=mask, training=training)
        dxs = bn.backward(w)
        xt = torch.tensor(xs, requires_grad=True)
        if masked:
            m = torch.tensor(mask)
            yt_valid = tb(xt[m])  # (N, C)
            np.testing.assert_allclose(ys[mask], yt_valid.detach().numpy(), rtol=0, atol=1e-8)
            (yt_valid * torch.tensor(w)[m]).sum().backward()
        else:
            yt = tb(xt.transpose(1, 2)).transpose(1, 2)
            np.testing.assert_allclose(ys, yt.detach().numpy(), rtol=0, atol=1e-8)
            (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(dxs, xt.grad.numpy(), rtol=0, atol=1e-8)
        np.testing.assert_allclose(bn.grads["gamma"], tb.weight.grad.numpy(), rtol=0, atol=1e-8)
        np.testing.assert_allclose(bn.grads["beta"], tb.bias.grad.numpy(), rtol=0, atol=1e-8)
        tb.zero_grad()
        np.testing.assert_allclose(bn.running_mean, tb.running_mean.numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(bn.running_var, tb.running_var.numpy(), rtol=0, atol=1e-12)
    sd = bn.torch_state_dict()
    assert sd["num_batches_tracked"] == tb.num_batches_tracked.item() == 3
    back = BatchNorm(3, dtype=np.float64)
    back.load_torch_state_dict(tb.state_dict())
    for k, v in tb.state_dict().items():
        np.testing.assert_array_equal(back.torch_state_dict()[k], v.numpy())


def test_state_dict_carries_running_statistics():
    rng = np.random.default_rng(5)
    bn = BatchNorm(2, rng=rng)
    bn.forward(rng.standard_normal((4, 3, 2)), training=True)
    sd = bn.state_dict()
    assert set(sd) == {"gamma", "beta", "running_mean", "running_var"} and set(bn.params) == {"gamma", "beta"}
    fresh = BatchNorm(2)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.running_var, bn.running_var)
    assert fresh.running_mean.dtype == np.float32 and fresh.running_mean.any()
    with pytest.raises(ValueError, match="missing"):
        fresh.load_state_dict({"gamma": sd["gamma"], "beta": sd["beta"]})


def test_bad_inputs_name_the_problem():
    bn = BatchNorm(3, dtype=np.float64)
    with pytest.raises(UserError, match=r"\(batch, time, 3\) or \(batch, 3\), got \(2, 4, 2\)"):
        bn.forward(np.zeros((2, 4, 2)))
    with pytest.raises(UserError, match="a mask needs"):
        bn.forward(np.zeros((2, 3)), mask=np.ones((2, 3), bool))
    with pytest.raises(UserError, match="more than 1 valid position per channel, got 1"):
        bn.forward(np.zeros((2, 2, 3)), mask=np.array([[1, 0], [0, 0]]), training=True)
    with pytest.raises(UserError, match=r"mask must have shape \(batch, time\) = \(2, 2\)"):
        bn.forward(np.zeros((2, 2, 3)), mask=np.ones((2, 3)))
    with pytest.raises(UserError, match="momentum must be in"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(UserError, match="num_features must be a positive integer"):
        BatchNorm(0)
    with pytest.raises(RuntimeError, match="before forward"):
        bn.backward(np.zeros((2, 3)))
    bn.forward(np.zeros((2, 4, 3)))
    with pytest.raises(UserError, match=r"dys must have shape \(2, 4, 3\)"):
        bn.backward(np.zeros((2, 3)))
    with pytest.raises(UserError, match="expected keys"):
        bn.load_torch_state_dict({"weight": np.ones(3), "bias": np.zeros(3)})
    with pytest.raises(UserError, match=r"running_var must have shape \(3,\)"):
        bn.load_torch_state_dict({"weight": np.ones(3), "bias": np.zeros(3), "running_mean": np.zeros(3),
                                  "running_var": np.ones(4)})
