"""Batch normalisation over the channels of (B, T, C) sequences, with masks: statistics over valid steps only.

Names and running-statistics rules follow ``torch.nn.BatchNorm1d``, so state dicts port both ways.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer
from rnnkit.nn.masks import as_mask, to_numpy

BUFFERS = ("running_mean", "running_var")


class BatchNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel; xs (B, T, C) or (B, C) -> same shape.

    training=True: mean and (biased) var over the valid (batch, time) positions of this batch; the
    running statistics move by ``momentum``: running = (1 - momentum) * running + momentum * batch value,
    with the unbiased var (N / (N - 1)) for running_var, as PyTorch does. training=False: the running
    statistics, so each case is normalised independently of the rest of the batch.
    mask (B, T): masked positions do not enter the statistics, give zero output and get zero gradient.
    Parameters gamma (C,) = 1 and beta (C,) = 0 at the start. ``buffers`` holds running_mean (0) and
    running_var (1): updated in place, not learned, and therefore not in ``params`` -- save them too
    (``state_dict()`` includes them; so does ``torch_state_dict()``, with PyTorch's names).
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32, rng=None):
        super().__init__(dtype)
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise UserError(f"BatchNorm: num_features must be a positive integer, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise UserError(f"BatchNorm: momentum must be in [0, 1], got {momentum}")
        if not eps > 0:
            raise UserError(f"BatchNorm: eps must be positive, got {eps}")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        C = self.num_features
        self.gamma = self.add_param("gamma", np.ones(C))
        self.beta = self.add_param("beta", np.zeros(C))
        self.buffers = {"running_mean": np.zeros(C, self.dtype), "running_var": np.ones(C, self.dtype)}
        self.num_batches_tracked = 0
        self._cache = None

    @property
    def running_mean(self) -> np.ndarray:
        return self.buffers["running_mean"]

    @property
    def running_var(self) -> np.ndarray:
        return self.buffers["running_var"]

    def _rows(self, xs, mask):
        """xs as (N, C) rows and the (N,) bool mask of valid rows (None: all valid)."""
        xs = np.asarray(xs)
        C = self.num_features
        if xs.dtype.kind not in "fiub":
            raise UserError(f"BatchNorm: input has dtype {xs.dtype}; pass a real-valued float array")
        if xs.ndim not in (2, 3) or xs.shape[-1] != C or xs.shape[0] == 0:
            raise UserError(f"BatchNorm: input must have shape (batch, time, {C}) or (batch, {C}), got {xs.shape}")
        if mask is not None and xs.ndim != 3:
            raise UserError(f"BatchNorm: a mask needs (batch, time, {C}) input, got {xs.shape}")
        m = None if mask is None else as_mask(mask, xs.shape[0], xs.shape[1], "BatchNorm").reshape(-1)
        return xs.astype(self.dtype, copy=False).reshape(-1, C), m

    def forward(self, xs, mask=None, training: bool = False):
        shape = np.shape(xs)
        x2, m = self._rows(xs, mask)
        if m is not None:
            x2 = np.where(m[:, None], x2, 0).astype(self.dtype, copy=False)  # padding may hold anything
        if training:
            w = None if m is None else m.astype(self.dtype)  # (N,) 1 at valid rows
            n = x2.shape[0] if m is None else int(m.sum())
            if n < 2:
                raise UserError(f"BatchNorm: training needs more than 1 valid position per channel, got {n}; "
                                "use a larger batch or training=False")
            mean = (x2.sum(axis=0) if w is None else w @ x2) / n
            xc = x2 - mean
            if w is not None:
                xc *= w[:, None]
            var = np.einsum("nc,nc->c", xc, xc) / n  # biased: what normalises this batch
            inv_std = 1.0 / np.sqrt(var + self.eps)
            mom = self.momentum
            self.running_mean[...] = (1 - mom) * self.running_mean + mom * mean
            self.running_var[...] = (1 - mom) * self.running_var + mom * var * (n / (n - 1))
            self.num_batches_tracked += 1
        else:
            n = None
            xc = x2 - self.running_mean
            inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
        xhat = xc * inv_std  # (N, C)
        ys = self.gamma * xhat + self.beta
        if m is not None:
            xhat *= m[:, None]
            ys *= m[:, None]
        self._cache = (xhat, inv_std.astype(self.dtype, copy=False), m, n, shape)
        return ys.reshape(shape)

    def backward(self, dys):
        if self._cache is None:
            raise RuntimeError("BatchNorm.backward called before forward")
        xhat, inv_std, m, n, shape = self._cache
        dys = np.asarray(dys, dtype=self.dtype)
        if dys.shape != shape:
            raise UserError(f"BatchNorm.backward: dys must have shape {shape}, got {dys.shape}")
        dy2 = dys.reshape(-1, self.num_features)
        if m is not None:
            dy2 = dy2 * m[:, None]  # ys *= mask
        # ys = gamma * xhat + beta
        self.grads["beta"] += dy2.sum(axis=0)
        self.grads["gamma"] += np.einsum("nc,nc->c", dy2, xhat)
        dxhat = dy2 * self.gamma
        if n is None:
            # xhat = (x - running_mean) * inv_std, constants in eval
            dx2 = dxhat * inv_std
        else:
            # xhat = (x - mean(x)) * inv_std(x) over the n valid rows
            dx2 = (inv_std / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * np.einsum("nc,nc->c", dxhat, xhat))
            if m is not None:
                dx2 *= m[:, None]
        return dx2.reshape(shape)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters and the running statistics, by name."""
        return {**super().state_dict(), **{k: v.copy() for k, v in self.buffers.items()}}

    def load_state_dict(self, state) -> None:
        """Parameters and running statistics (names as in ``state_dict()``), copied in place."""
        state = dict(state)
        bufs = {k: state.pop(k) for k in BUFFERS if k in state}
        missing = sorted(set(BUFFERS) - set(bufs))
        if missing:
            raise ValueError(f"state dict does not match BatchNorm: missing {missing}")
        self._load_buffers(bufs)
        super().load_state_dict(state)

    def _load_buffers(self, bufs) -> None:
        for k in BUFFERS:
            v = to_numpy(bufs[k])
            if v.shape != (self.num_features,):
                raise UserError(f"BatchNorm: {k} must have shape {(self.num_features,)}, got {v.shape}")
            self.buffers[k][...] = v

    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """Copies named like ``torch.nn.BatchNorm1d``'s state dict (num_batches_tracked included)."""
        return {"weight": self.gamma.copy(), "bias": self.beta.copy(),
                "running_mean": self.running_mean.copy(), "running_var": self.running_var.copy(),
                "num_batches_tracked": np.array(self.num_batches_tracked, dtype=np.int64)}

    def load_torch_state_dict(self, sd) -> None:
        """Copy a ``torch.nn.BatchNorm1d`` state dict (arrays or tensors) in place."""
        need = {"weight", "bias", *BUFFERS}
        if not need <= set(sd) <= need | {"num_batches_tracked"}:
            raise UserError(f"BatchNorm.load_torch_state_dict: expected keys {sorted(need)} "
                            f"(and optionally num_batches_tracked), got {sorted(sd)}")
        C = self.num_features
        for name, target in (("weight", self.gamma), ("bias", self.beta)):
            v = to_numpy(sd[name])
            if v.shape != (C,):
                raise UserError(f"BatchNorm.load_torch_state_dict: {name} must have shape {(C,)}, got {v.shape}")
            target[...] = v
        self._load_buffers(sd)
        if "num_batches_tracked" in sd:
            self.num_batches_tracked = int(to_numpy(sd["num_batches_tracked"]))

    def __repr__(self) -> str:
        return f"BatchNorm({self.num_features}, momentum={self.momentum}, eps={self.eps}, dtype={self.dtype.name})"

