"""A linear softmax readout fitted in closed form: ridge regression on one-vs-rest targets, the penalty chosen
by exact leave-one-out error from one eigendecomposition (on a stratified sample beyond ``max_loo_cases``, then
one linear solve on all cases), and a softmax temperature fitted to the leave-one-out scores so that
probabilities are calibrated on cases the fit did not see.
"""
from __future__ import annotations

import numpy as np

ALPHAS = np.logspace(-3, 5, 17)  # penalties tried, on standardised features
# softmax temperatures tried. The floor of 0.01 keeps probabilities off exact 0 and 1 when every leave-one-out
# prediction is right (the log-loss would then keep falling as the temperature does): scores live on the
# +-1 scale of the targets, so a gap of 2 still gives exp(-200), not 0.
TEMPERATURES = np.logspace(-2, 1.5, 36)


def _eigh(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.linalg.eigh with one BLAS thread: LAPACK's tridiagonal reduction synchronises its threads at every
    column, and with the other core busy 2 threads were 15x slower (N = 2,000: 42.7 s vs 2.8 s)."""
    from rnnkit.nn.recurrent.threads import blas_limit

    with blas_limit(1):
        return np.linalg.eigh(G)


def _stratified_rows(y: np.ndarray, n: int) -> np.ndarray:
    """About n row indices, sorted, with every class in proportion (at least one case each); seeded, so the
    same data give the same sample."""
    rng = np.random.default_rng(0)
    rows = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        take = max(1, int(round(n * len(idx) / len(y))))
        rows.append(rng.choice(idx, min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(rows))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class RidgeReadout:
    """Fit ``scores = standardise(F) @ weight + bias`` to targets +1 (own class) / -1 (others).

    Leave-one-out residuals of ridge regression with an unpenalised intercept are exact and cheap:
    e_i / (1 - h_ii) with h the hat matrix, whose diagonal comes from the eigendecomposition of the N x N Gram
    matrix (or of the F x F one when there are more cases than features).
    """

    def __init__(self, alphas=ALPHAS, max_loo_cases: int = 3000):
        self.alphas = np.asarray(alphas, np.float64)
        self.max_loo_cases = int(max_loo_cases)

    def fit(self, F: np.ndarray, y: np.ndarray, n_classes: int) -> "RidgeReadout":
        """F (N, P) features, y (N,) class indices in 0..n_classes-1.

        Up to ``max_loo_cases`` cases the penalty comes from exact leave-one-out on all of them. Beyond, the
        eigendecomposition (cubic in the cases) would take minutes: the penalty and temperature are chosen by
        leave-one-out on a stratified sample of ``max_loo_cases`` cases, the penalty scaled by N / sample
        size (X^T X grows with N), and the weights come from one linear solve on all cases."""
        F = np.asarray(F)
        N, P = F.shape
        self.mean = F.mean(axis=0, dtype=np.float64)
        sd = F.std(axis=0, dtype=np.float64)
        self.scale = np.where(sd > 1e-8, sd, 1.0)
        X = F.astype(np.float64)  # (N, P), standardised in place: one float64 copy of the features
        X -= self.mean
        X /= self.scale
        Y = -np.ones((N, n_classes))
        Y[np.arange(N), y] = 1.0
        self.bias = Y.mean(axis=0)  # features are centred: the intercept is the targets' mean
        Yc = Y - self.bias
        if N <= self.max_loo_cases:
            self.alpha, loo_scores, self.loo_errors, self.weight = self._loo(X, Y, weights=True)
            ys = y
        else:
            rows = _stratified_rows(y, self.max_loo_cases)
            sample = X[rows]  # a copy, centred on its own mean
            sample -= sample.mean(axis=0)
            alpha, loo_scores, self.loo_errors, _ = self._loo(sample, Y[rows], weights=False)
            self.alpha = alpha * N / len(rows)
            ys = y[rows]
            G = X @ X.T if N <= P else X.T @ X  # the smaller of the dual (N x N) and primal (P x P) systems
            G.flat[:: len(G) + 1] += self.alpha
            self.weight = X.T @ np.linalg.solve(G, Yc) if N <= P else np.linalg.solve(G, X.T @ Yc)
            del G
        self.loo_scores = loo_scores  # (n, K) scores of each (sampled) case from the fit without it
        nll = [-np.mean(np.log(_softmax(loo_scores / t)[np.arange(len(ys)), ys] + 1e-300)) for t in TEMPERATURES]
        self.temperature = float(TEMPERATURES[int(np.argmin(nll))])
        self.loo_accuracy = float(np.mean(loo_scores.argmax(axis=1) == ys))
        return self

    def _loo(self, X: np.ndarray, Y: np.ndarray, weights: bool):
        """(chosen penalty, leave-one-out scores (N, K) at it, mean squared leave-one-out residual per penalty,
        weights (P, K) at it or None) for centred features X and targets Y (centred here)."""
        N = len(X)
        ym = Y.mean(axis=0)
        Yc = Y - ym
        if N <= X.shape[1]:
            s, Q = _eigh(X @ X.T)  # X X^T = Q diag(s) Q^T
            U, QtY = Q, Q.T @ Yc
        else:
            s, V = _eigh(X.T @ X)
            U, QtY = None, None
            XV = X @ V  # columns: X's projections on the eigenvectors, squared norms s
        s = np.maximum(s, 0.0)
        squares = U ** 2 if U is not None else XV ** 2  # the hat matrix's diagonal is squares @ (shrinkage)
        best, errors = None, []
        for a in self.alphas:
            if U is not None:
                f = s / (s + a)
                fitted = U @ (f[:, None] * QtY)
                h = squares @ f
            else:
                inv = 1.0 / (s + a)
                fitted = XV @ (inv[:, None] * (XV.T @ Yc))
                h = squares @ inv
            h = np.minimum(h + 1.0 / N, 1.0 - 1e-9)  # + the intercept's share of the hat matrix
            loo = (Yc - fitted) / (1.0 - h)[:, None]  # leave-one-out residuals
            errors.append(float(np.mean(loo ** 2)))
            if best is None or errors[-1] < best[0]:
                best = (errors[-1], a, Y - loo)
        _, alpha, loo_scores = best
        weight = None
        if weights:
            if U is not None:
                weight = X.T @ (U @ ((1.0 / (s + alpha))[:, None] * QtY))
            else:
                weight = V @ ((1.0 / (s + alpha))[:, None] * (XV.T @ Yc))
        return alpha, loo_scores, np.array(errors), weight

    def decision(self, F: np.ndarray) -> np.ndarray:
        """Scores (N, K): larger is more likely."""
        F = np.asarray(F)
        out = np.empty((len(F), len(self.bias)))
        for a in range(0, len(F), 1024):  # row chunks: float64 temporaries of 1,024 rows, not of all N
            out[a: a + 1024] = ((F[a: a + 1024] - self.mean) / self.scale) @ self.weight + self.bias
        return out

    def predict_proba(self, F: np.ndarray) -> np.ndarray:
        return _softmax(self.decision(F) / self.temperature)

    # -- state ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "weight": self.weight, "bias": self.bias,
                "alpha": np.array([self.alpha]), "temperature": np.array([self.temperature])}

    @staticmethod
    def state_shapes(n_features: int, n_classes: int) -> dict[str, tuple]:
        return {"mean": ((n_features,), np.float64), "scale": ((n_features,), np.float64),
                "weight": ((n_features, n_classes), np.float64), "bias": ((n_classes,), np.float64),
                "alpha": ((1,), np.float64), "temperature": ((1,), np.float64)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "RidgeReadout":
        self = cls()
        self.mean, self.scale = np.asarray(state["mean"], np.float64), np.asarray(state["scale"], np.float64)
        self.weight, self.bias = np.asarray(state["weight"], np.float64), np.asarray(state["bias"], np.float64)
        self.alpha = float(np.asarray(state["alpha"]).reshape(-1)[0])
        self.temperature = float(np.asarray(state["temperature"]).reshape(-1)[0])
        P, K = self.mean.shape[0], self.bias.shape[0] if self.bias.ndim == 1 else -1
        if self.mean.ndim != 1 or self.scale.shape != (P,) or self.weight.shape != (P, K) or K < 2:
            raise ValueError(f"mean {self.mean.shape}, scale {self.scale.shape}, weight {self.weight.shape} and bias "
                             f"{self.bias.shape} do not fit together: (P,), (P,), (P, K), (K,) with K >= 2")
        if not all(np.isfinite(v).all() for v in (self.mean, self.scale, self.weight, self.bias)):
            raise ValueError("mean, scale, weight and bias must be finite")
        if not ((self.scale > 0).all() and 0 < self.temperature < np.inf and 0 <= self.alpha < np.inf):
            raise ValueError("scale and temperature must be positive, alpha finite and >= 0")
        return self
