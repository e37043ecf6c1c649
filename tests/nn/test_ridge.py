"""RidgeReadout: leave-one-out scores against refitting without each case, the chosen penalty and temperature
against their grids, the final fit against a direct solve, probabilities, state round trip and bad states."""
import numpy as np
import pytest

from rnnkit.nn.ridge import ALPHAS, TEMPERATURES, RidgeReadout


def standardised(F):
    """The readout's fixed design: features centred and scaled with statistics of all N cases."""
    F = np.asarray(F, np.float64)
    sd = F.std(axis=0)
    return (F - F.mean(axis=0)) / np.where(sd > 1e-8, sd, 1.0)


def targets(y, K):
    Y = -np.ones((len(y), K))
    Y[np.arange(len(y)), y] = 1.0
    return Y


def ridge_solve(X, Y, alpha):
    """Coefficients of [1, X] -> Y, the intercept unpenalised: (A'A + alpha diag(0, 1, ..., 1))^-1 A'Y."""
    A = np.hstack([np.ones((len(X), 1)), X])
    penalty = alpha * np.eye(A.shape[1])
    penalty[0, 0] = 0.0
    return np.linalg.solve(A.T @ A + penalty, A.T @ Y)


def brute_loo(X, Y, alpha):
    """Each case's scores from the fit on the other N - 1 cases (same fixed standardised features)."""
    preds = np.empty_like(Y)
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        beta = ridge_solve(X[keep], Y[keep], alpha)
        preds[i] = np.concatenate([[1.0], X[i]]) @ beta
    return preds


def log_loss(scores, y, t):
    z = scores / t
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), y])


def problem(N, P, K, seed, signal=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(N) % K
    rng.shuffle(y)
    centres = rng.standard_normal((K, P))
    F = signal * centres[y] + rng.standard_normal((N, P)) + 5.0  # an offset the standardisation removes
    return F, y


@pytest.mark.parametrize("N,P,K", [(12, 30, 3), (40, 6, 3), (3, 20, 3), (25, 25, 2), (26, 25, 2)])
def test_leave_one_out_equals_refitting_without_each_case(N, P, K):
    """Both branches: the Gram matrix (N <= P) and the primal one (N > P)."""
    F, y = problem(N, P, K, seed=N + P)
    alphas = np.logspace(-2, 3, 6)
    readout = RidgeReadout(alphas).fit(F, y, K)
    X, Y = standardised(F), targets(y, K)
    errors, preds = [], {}
    for a in alphas:
        preds[a] = brute_loo(X, Y, a)
        errors.append(np.mean((Y - preds[a]) ** 2))
    np.testing.assert_allclose(readout.loo_errors, errors, rtol=1e-7)
    assert readout.alpha == alphas[int(np.argmin(errors))]  # the penalty with the smallest LOO error
    np.testing.assert_allclose(readout.loo_scores, preds[readout.alpha], rtol=1e-7, atol=1e-9)
    assert readout.loo_accuracy == np.mean(preds[readout.alpha].argmax(axis=1) == y)
    nll = [log_loss(preds[readout.alpha], y, t) for t in TEMPERATURES]
    assert readout.temperature == TEMPERATURES[int(np.argmin(nll))]  # the temperature with the smallest LOO loss


@pytest.mark.parametrize("N,P", [(15, 40), (60, 8)])
def test_final_fit_equals_direct_solve_and_default_grid(N, P):
    F, y = problem(N, P, 3, seed=P, signal=0.7)
    readout = RidgeReadout().fit(F.astype(np.float32), y, 3)
    assert readout.alpha in ALPHAS
    X, Y = standardised(F.astype(np.float32)), targets(y, 3)
    beta = ridge_solve(X, Y, readout.alpha)
    rng = np.random.default_rng(0)
    F_new = F[:5] + rng.standard_normal((5, P))
    X_new = (F_new - F.astype(np.float32).mean(axis=0, dtype=np.float64)) / F.astype(np.float32).std(
        axis=0, dtype=np.float64)
    np.testing.assert_allclose(readout.decision(F_new), np.hstack([np.ones((5, 1)), X_new]) @ beta,
                               rtol=1e-7, atol=1e-9)
    errors = [np.mean((Y - brute_loo(X, Y, a)) ** 2) for a in ALPHAS]
    assert readout.alpha == ALPHAS[int(np.argmin(errors))]
    np.testing.assert_allclose(readout.loo_errors, errors, rtol=1e-5)


def test_probabilities():
    F, y = problem(30, 12, 4, seed=3, signal=2.0)
    readout = RidgeReadout().fit(F, y, 4)
    p = readout.predict_proba(F)
    assert p.shape == (30, 4) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), readout.decision(F).argmax(axis=1))
    z = readout.decision(F) / readout.temperature
    want = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, want / want.sum(axis=1, keepdims=True), rtol=1e-12)
    assert readout.loo_accuracy > 0.9 and (p.argmax(axis=1) == y).mean() == 1.0  # well separated classes


def test_constant_features_predict_the_majority_class():
    F = np.full((5, 7), 0.25)
    F[:, 3] = [0.0, 0.1, 0.2, 0.3, 0.4]  # one informative-looking column, the rest constant
    y = np.array([0, 0, 0, 1, 0])
    readout = RidgeReadout().fit(F, y, 2)
    assert np.isfinite(readout.weight).all() and (readout.scale[np.arange(7) != 3] == 1.0).all()
    flat = RidgeReadout().fit(np.full((5, 7), 0.5), y, 2)
    p = flat.predict_proba(np.random.default_rng(0).uniform(size=(4, 7)))
    assert np.isfinite(p).all() and (p.argmax(axis=1) == 0).all()
    np.testing.assert_allclose(p, p[:1].repeat(4, axis=0))  # nothing to tell the cases apart


def test_state_round_trip_and_bad_states():
    F, y = problem(20, 10, 3, seed=5)
    readout = RidgeReadout().fit(F, y, 3)
    state = readout.state()
    shapes = RidgeReadout.state_shapes(10, 3)
    assert {k: (v.shape, v.dtype) for k, v in state.items()} == {k: (s, np.dtype(t)) for k, (s, t) in shapes.items()}
    back = RidgeReadout.from_state(state)
    np.testing.assert_array_equal(back.predict_proba(F), readout.predict_proba(F))
    assert back.alpha == readout.alpha and back.temperature == readout.temperature
    bad = {
        "scale": np.zeros(10),
        "temperature": np.array([-1.0]),
        "weight": np.zeros((9, 3)),
        "bias": np.zeros(4),
        "mean": np.full(10, np.nan),
        "alpha": np.array([np.inf]),
    }
    for name, value in bad.items():
        with pytest.raises(ValueError):
            RidgeReadout.from_state({**state, name: value})


@pytest.mark.parametrize("N,P", [(300, 40), (160, 400)])  # primal (N > P) and dual (N <= P) final solves
def test_many_cases_choose_on_a_sample_and_solve_on_all(N, P):
    """Beyond max_loo_cases: the penalty is the sample's leave-one-out choice scaled by N / sample size, the
    weights are the exact ridge solution on all N cases at that penalty, and the sample keeps every class."""
    rng = np.random.default_rng(5)
    K = 4
    y = rng.integers(0, K, N)
    y[:3] = 3  # a rare class still sampled
    F = rng.normal(size=(N, P)) + 0.8 * np.eye(K)[y] @ rng.normal(size=(K, P))
    small = RidgeReadout(max_loo_cases=60).fit(F, y, K)
    n_sample = small.loo_scores.shape[0]
    assert 55 <= n_sample <= 65
    sample = RidgeReadout()
    X = standardised(F)
    # the same sample, drawn the way the readout draws it, refitted exactly: same penalty choice
    from rnnkit.nn.ridge import _stratified_rows

    picked = _stratified_rows(y, 60)
    assert set(np.unique(y[picked])) == set(range(K)) and len(picked) == n_sample
    Xs = X[picked] - X[picked].mean(axis=0)  # the sample centred on its own mean, as the readout does
    ref_alpha, _, ref_errors, _ = sample._loo(Xs, targets(y, K)[picked], weights=False)
    np.testing.assert_allclose(small.loo_errors, ref_errors, rtol=1e-10)
    assert small.alpha == pytest.approx(ref_alpha * N / n_sample)
    beta = ridge_solve(X, targets(y, K), small.alpha)
    np.testing.assert_allclose(small.weight, beta[1:], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(small.bias, beta[0], rtol=1e-7, atol=1e-9)
    # and it classifies the training data about as well as the exact leave-one-out fit
    exact = RidgeReadout().fit(F, y, K)
    acc = lambda r: np.mean(r.decision(F).argmax(axis=1) == y)  # noqa: E731
    assert acc(small) >= acc(exact) - 0.05
