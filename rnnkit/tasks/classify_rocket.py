"""The classifier's "rocket" members: a random time-delay layer (rnnkit.nn.random_tdnn) whose PPV features feed a
closed-form ridge readout (rnnkit.nn.ridge). Fitting one member reads the training cases twice and solves one
eigenproblem; nothing is trained by gradient, so there is no validation split and no early stopping: the ridge
penalty and the softmax temperature are chosen by exact leave-one-out on the training cases (on a stratified
sample of them beyond 3,000; see rnnkit.nn.ridge).
"""
from __future__ import annotations

import time

import numpy as np

from rnnkit.nn.random_tdnn import N_FEATURES, RandomTDNN
from rnnkit.nn.ridge import RidgeReadout


class RocketMember:
    """One random TDNN and its readout. ``fit`` on a :class:`rnnkit.tasks.classify_train.Padded` of
    normalised training cases; ``predict_proba`` on another."""

    def __init__(self, tdnn: RandomTDNN, readout: RidgeReadout):
        self.tdnn, self.readout = tdnn, readout

    @classmethod
    def fit(cls, data, ys: np.ndarray, n_classes: int, seed: int, n_features: int = N_FEATURES) -> "RocketMember":
        tdnn = RandomTDNN(n_features, rng=seed).fit(data.xs, data.lengths)
        readout = RidgeReadout().fit(tdnn.transform(data.xs, data.lengths), ys, n_classes)
        return cls(tdnn, readout)

    def predict_proba(self, data) -> np.ndarray:
        return self.readout.predict_proba(self.tdnn.transform(data.xs, data.lengths))

    # -- save / load ------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """What the checkpoint's metadata keeps to know the tensors' shapes (see :meth:`expected`)."""
        return {"n_dilations": int(len(self.tdnn.dilations)), "n_features": int(len(self.tdnn.biases)),
                "alpha": float(self.readout.alpha), "loo_accuracy": float(self.readout.loo_accuracy)}

    def tensors(self, prefix: str) -> dict[str, np.ndarray]:
        return {**{f"{prefix}.tdnn.{k}": v for k, v in self.tdnn.state().items()},
                **{f"{prefix}.ridge.{k}": v for k, v in self.readout.state().items()}}

    @staticmethod
    def expected(prefix: str, info: dict, n_channels: int, n_classes: int) -> dict[str, tuple]:
        n_dil, n_feat = int(info["n_dilations"]), int(info["n_features"])
        if not (1 <= n_dil <= 64 and 84 <= n_feat <= 1_000_000):
            raise ValueError(f"n_dilations {n_dil} / n_features {n_feat} out of range")
        return {**{f"{prefix}.tdnn.{k}": v for k, v in RandomTDNN.state_shapes(n_dil, n_channels, n_feat).items()},
                **{f"{prefix}.ridge.{k}": v for k, v in RidgeReadout.state_shapes(n_feat, n_classes).items()}}

    @classmethod
    def from_tensors(cls, tensors: dict, prefix: str, info: dict) -> "RocketMember":
        """The member saved under ``prefix``; ``info`` is its :meth:`describe` from the metadata."""
        def part(name):
            head = f"{prefix}.{name}."
            return {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}

        readout = RidgeReadout.from_state(part("ridge"))
        readout.loo_accuracy = float(info["loo_accuracy"])
        return cls(RandomTDNN.from_state(part("tdnn")), readout)


def fit_members(data, ys: np.ndarray, n_classes: int, seeds, t0: float, max_minutes: float | None, log=None,
                stop=None) -> list[RocketMember]:
    """One member per seed, each with its own kernels, until the seeds or ``stop()`` run out, or the next member
    would end past the time budget (``max_minutes`` since ``t0``, each member taking as long as the average so
    far); at least one member is always fitted."""
    members = []
    for k, seed in enumerate(seeds):
        spent = time.perf_counter() - t0
        if k and ((stop is not None and stop()) or (max_minutes is not None
                                                     and spent * (k + 1) / k > 60.0 * max_minutes)):
            if log is not None:
                log(f"stopped after {k} of {len(seeds)} members (time budget or interrupt)")
            break
        members.append(RocketMember.fit(data, ys, n_classes, int(seed)))
        if log is not None:
            info = members[-1].describe()
            log(f"member {k + 1}/{len(seeds)}: {info['n_features']:,} random-TDNN features over "
                f"{info['n_dilations']} dilations, ridge penalty {info['alpha']:.3g}, leave-one-out accuracy "
                f"{info['loo_accuracy']:.4f} ({time.perf_counter() - t0:.1f} s)")
    return members
