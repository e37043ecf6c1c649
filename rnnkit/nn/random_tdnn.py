"""A time-delay layer with fixed random weights and PPV pooling: MiniRocket's features (Dempster, Schmidt and
Webb, KDD 2021) on the engine's batch-first, masked layout. Nothing here learns by gradient: ``fit`` draws the
kernels' channels and biases from training cases, ``transform`` turns (B, T, C) into (B, F) features for a
trained readout (:class:`rnnkit.nn.ridge.RidgeReadout`).
"""
from __future__ import annotations

import itertools

import numpy as np

from rnnkit.nn.base import as_rng

KERNEL = 9  # taps per kernel; weights -1 everywhere except three taps of 2, so every kernel sums to zero
TAPS = np.array(list(itertools.combinations(range(KERNEL), 3)))  # (84, 3): where the three 2s sit
N_KERNELS = len(TAPS)
GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # quantile positions (k * GOLDEN) mod 1 spread evenly without a pattern
N_FEATURES = 10_000  # MiniRocket's default; rounded down to a multiple of the 84 kernels (9,996)
CACHED = 8  # channel subsets whose shifted series are kept while one dilation's 84 kernels run


def dilation_plan(length: int, n_features: int, max_dilations: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(dilations, biases per kernel at each dilation): up to ``max_dilations`` dilations spread exponentially
    from 1 to (length - 1) / 8, so the widest kernel spans the series; ``n_features // 84`` biases per kernel
    shared out among them (a dilation that rounding repeats gets the repeats' share)."""
    per_kernel = max(1, n_features // N_KERNELS)
    n = min(per_kernel, max_dilations)
    top = np.log2((length - 1) / (KERNEL - 1)) if length > KERNEL else 0.0
    dil, repeats = np.unique(np.floor(np.logspace(0, top, n, base=2)).astype(np.int64), return_counts=True)
    counts = (repeats * (per_kernel / n)).astype(np.int64)
    counts[: per_kernel - counts.sum()] += 1  # the remainder, one each to the smallest dilations
    return dil, counts


def _taps(s: np.ndarray, d: int) -> list[np.ndarray]:
    """Nine (B, T) views of series s (B, T): tap j at step t reads step t + (j - 4) * d (zero outside 0..T-1).
    One zero-padded copy of s, padded by at most T on each side (a shift of T or more reads only zeros)."""
    B, T = s.shape
    shifts = [(j - 4) * d for j in range(KERNEL)]
    p = max(abs(k) for k in shifts if abs(k) < T)
    padded = np.zeros((B, T + 2 * p), s.dtype)
    padded[:, p: p + T] = s
    zero = np.broadcast_to(np.zeros((), s.dtype), (B, T))
    return [padded[:, p + k: p + k + T] if abs(k) < T else zero for k in shifts]


def _masks(lengths: np.ndarray, T: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(same, valid), each (B, T) bool. same: the case's own steps (zero padding at its ends). valid: the
    steps whose whole window lies inside the case; a case too short for any falls back to its own steps."""
    t = np.arange(T)[None, :]
    same = t < lengths[:, None]
    valid = (t >= 4 * d) & (t < lengths[:, None] - 4 * d)
    short = ~valid.any(axis=1)
    valid[short] = same[short]
    return same, valid


class RandomTDNN:
    """Random dilated convolutions over time + the proportion of positive values (PPV) per bias.

    Each of the 84 kernels of length 9 runs at every dilation of :func:`dilation_plan`, over a random subset
    of the channels (summed; all channels of a one-channel series), alternately with zero padding ("same")
    and without ("valid" steps only). Its biases are quantiles of its output on one random training case;
    feature = fraction of the case's steps where output > bias. Cases are right-padded with a ``lengths``
    vector: a padded batch gives each case exactly the features it gets alone.

    Learned (drawn) state, all arrays, see :meth:`state`: ``dilations`` (n_dil,), per group of one kernel at
    one dilation (G = 84 * n_dil): ``kernel`` (G,), ``padded`` (G,), ``channels`` (G, C), ``counts`` (G,)
    biases of the group, and ``biases`` (F,).
    """

    def __init__(self, n_features: int = N_FEATURES, max_dilations: int = 32, rng=None, chunk_bytes: int = 64 << 20):
        self.n_features, self.max_dilations = int(n_features), int(max_dilations)
        self.rng = as_rng(rng)
        self.chunk_bytes = int(chunk_bytes)

    # -- drawing the kernels -------------------------------------------------------------------------------------
    def fit(self, xs: np.ndarray, lengths: np.ndarray) -> "RandomTDNN":
        """Draw channels and biases from training cases xs (B, T, C), right-padded, with their ``lengths``."""
        xs = np.asarray(xs, np.float32)
        lengths = np.asarray(lengths, np.int64)
        B, T, C = xs.shape
        rng = self.rng
        self.dilations, per_kernel = dilation_plan(int(lengths.max()), self.n_features, self.max_dilations)
        G = N_KERNELS * len(self.dilations)
        self.kernel = np.tile(np.arange(N_KERNELS), len(self.dilations))
        self.padded = (np.arange(G) % 2 == 0)
        self.counts = np.repeat(per_kernel, N_KERNELS)
        self.channels = np.ones((G, C), dtype=bool)
        if C > 1:  # 1 to min(C, 9) channels, small subsets more likely (uniform in log2)
            for g in range(G):
                k = min(C, int(2 ** rng.uniform(0, np.log2(min(C, KERNEL) + 1))))
                self.channels[g] = False
                self.channels[g, rng.choice(C, k, replace=False)] = True
        examples = rng.integers(0, B, size=G)  # the training case each group draws its biases from
        quantile_at = (np.arange(1, int(self.counts.sum()) + 1) * GOLDEN) % 1.0
        biases, start = [], 0
        for i, d in enumerate(self.dilations):
            groups = np.arange(i * N_KERNELS, (i + 1) * N_KERNELS)
            rows = examples[groups]
            out = self._outputs(xs, lengths, int(d), groups, rows)  # (84, T): group g on its own case
            same, valid = _masks(lengths[rows], T, int(d))
            for j, g in enumerate(groups):
                m = same[j] if self.padded[g] else valid[j]
                n = int(self.counts[g])
                biases.append(np.quantile(out[j][m], quantile_at[start: start + n]))
                start += n
        self.biases = np.concatenate(biases).astype(np.float32)
        return self

    # -- features ---------------------------------------------------------------------------------------------
    def _outputs(self, xs, lengths, d: int, groups: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Convolution outputs of ``groups`` (all at dilation d) on xs (B, T, C) with ``lengths`` (B,):
        (len(groups), B, T), or with ``rows`` group j on case rows[j] only: (len(groups), T). The kernel is
        linear, so a group first sums the channels it reads into one series: the cost does not grow with C.
        Steps past a case's length read as zero whatever the padding holds."""
        B, T, C = xs.shape
        out = np.empty((len(groups), B if rows is None else 1, T), np.float32)
        cache = {}  # (case, channel subset) -> (taps, base): a univariate batch computes them once
        for j, g in enumerate(groups):
            key = (None if rows is None else int(rows[j]), self.channels[g].tobytes())
            if key not in cache:
                if len(cache) >= CACHED:
                    cache.clear()
                r = slice(None) if rows is None else slice(int(rows[j]), int(rows[j]) + 1)
                ch = np.flatnonzero(self.channels[g])
                s = xs[r, :, ch[0]]  # (B, T); the group's channels added one by one, in channel order
                for c in ch[1:]:
                    s = s + xs[r, :, c]
                s = np.where(np.arange(T)[None, :] < lengths[r, None], s, np.float32(0.0))
                taps = _taps(s, d)  # 9 x (B, T)
                cache[key] = taps, -sum(taps)  # every tap at weight -1 ...
            taps, base = cache[key]
            a, b, c = TAPS[self.kernel[g]]  # ... and three of them at 2: add 3x those
            out[j] = base + 3.0 * (taps[a] + taps[b] + taps[c])
        return out if rows is None else out[:, 0]

    def transform(self, xs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Features (B, F) float32 of right-padded cases xs (B, T, C) with their ``lengths``."""
        xs = np.asarray(xs, np.float32)
        lengths = np.asarray(lengths, np.int64)
        B, T, C = xs.shape
        if C != self.channels.shape[1]:
            raise ValueError(f"RandomTDNN was fitted on {self.channels.shape[1]} channel(s), got {C}")
        if lengths.shape != (B,) or (lengths < 1).any() or (lengths > T).any():
            raise ValueError(f"lengths must be {B} numbers between 1 and {T}")
        # bytes per case and step: 84 outputs, the taps, temporaries (float32), one group's steps x biases (bool)
        per_step = 4 * (N_KERNELS + 4 * CACHED + 2 * KERNEL + 8) + int(self.counts.max())
        ordered = bool((np.diff(lengths) >= 0).all())
        order = np.arange(B) if ordered else np.argsort(lengths, kind="stable")  # similar lengths together ...
        sizes = lengths[order] * per_step
        out = np.empty((B, int(self.counts.sum())), np.float32)
        start = 0
        while start < B:
            stop = start + 1
            while stop < B and (stop + 1 - start) * sizes[stop] <= self.chunk_bytes:
                stop += 1
            rows = slice(start, stop) if ordered else order[start: stop]
            T_rows = int(lengths[rows].max())  # ... so that a chunk crops the padding to its longest case
            out[rows] = self._transform(xs[rows, :T_rows], lengths[rows])
            start = stop
        return out

    def _transform(self, xs, lengths) -> np.ndarray:
        B, T, _ = xs.shape
        feats, start = np.empty((B, int(self.counts.sum())), np.float32), 0
        for i, d in enumerate(self.dilations):
            groups = np.arange(i * N_KERNELS, (i + 1) * N_KERNELS)
            same, valid = _masks(lengths, T, int(d))
            n_same, n_valid = same.sum(axis=1), valid.sum(axis=1)
            for g, y in zip(groups, self._outputs(xs, lengths, int(d), groups)):
                m, n = (same, n_same) if self.padded[g] else (valid, n_valid)
                y = np.where(m, y, -np.inf)  # steps outside the case never count as positive
                k = int(self.counts[g])
                b = self.biases[start: start + k]
                feats[:, start: start + k] = (y[:, None, :] > b[None, :, None]).sum(axis=2) / n[:, None]
                start += k
        return feats

    # -- state ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"dilations": self.dilations.astype(np.int64), "kernel": self.kernel.astype(np.int64),
                "padded": self.padded.astype(np.uint8), "channels": self.channels.astype(np.uint8),
                "counts": self.counts.astype(np.int64), "biases": self.biases.astype(np.float32)}

    @staticmethod
    def state_shapes(n_dilations: int, n_channels: int, n_features: int) -> dict[str, tuple]:
        """Name -> (shape, dtype) of :meth:`state` for a layer of this size (to check a file against)."""
        G = N_KERNELS * n_dilations
        return {"dilations": ((n_dilations,), np.int64), "kernel": ((G,), np.int64), "padded": ((G,), np.uint8),
                "channels": ((G, n_channels), np.uint8), "counts": ((G,), np.int64),
                "biases": ((n_features,), np.float32)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "RandomTDNN":
        """The layer :meth:`state` describes; ValueError when the arrays do not fit together."""
        self = cls(n_features=int(np.size(state["biases"])))
        self.dilations = np.asarray(state["dilations"], np.int64)
        self.kernel = np.asarray(state["kernel"], np.int64)
        self.padded = np.asarray(state["padded"]).astype(bool)
        self.channels = np.asarray(state["channels"]).astype(bool)
        self.counts = np.asarray(state["counts"], np.int64)
        self.biases = np.asarray(state["biases"], np.float32)
        G = N_KERNELS * self.dilations.size
        if self.dilations.ndim != 1 or not len(self.dilations) or (self.dilations < 1).any() \
                or (self.dilations > 1 << 24).any():
            raise ValueError("dilations must be one or more numbers between 1 and 2**24")
        if self.padded.shape != (G,) or self.biases.ndim != 1 or not np.isfinite(self.biases).all():
            raise ValueError(f"padded must hold {G} flags and biases must be finite numbers")
        if self.kernel.shape != (G,) or ((self.kernel < 0) | (self.kernel >= N_KERNELS)).any():
            raise ValueError(f"kernel must hold {G} indices in 0..{N_KERNELS - 1}")
        if self.counts.shape != (G,) or (self.counts < 1).any() or self.counts.sum() != len(self.biases):
            raise ValueError(f"counts must be {G} positive numbers summing to the {len(self.biases)} biases")
        if self.channels.ndim != 2 or self.channels.shape[0] != G or not self.channels.any(axis=1).all():
            raise ValueError("every kernel must read at least one channel")
        return self
