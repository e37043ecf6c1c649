"""The time-delay layer (TDNN): a 1-D convolution over time on batch-first sequences.

Forward is one GEMM over the unfolded windows, (B*T', K*D) @ (K*D, C); backward is two GEMMs and a
scatter-add over the K taps. Masks make padded batches exact: each case gets the output it gets alone.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.masks import as_mask, sequence_input, to_numpy

PADDINGS = ("causal", "same", "valid")


class TDNN(Layer):
    """ys[b, t, c] = b[c] + sum_{k, d} W[k, d, c] * xpad[b, t*stride + k*dilation, d]

    xs (B, T, D) -> ys (B, T', C) with D = input_size, C = channels_out, K = kernel_size.
    Parameters: ``W`` (K, D, C) and ``b`` (C,); PyTorch's ``nn.Conv1d`` weight (C, D, K) is
    ``W.transpose(2, 1, 0)`` (``torch_state_dict`` / ``load_torch_state_dict`` convert). Initialised like
    Conv1d: U(-1/sqrt(D*K), 1/sqrt(D*K)) for W and b. xpad is xs with zeros added by ``padding``:

    - "causal": (K-1)*dilation zeros before the start, so output t sees inputs
      t*stride - (K-1)*dilation .. t*stride and nothing later; T' = ceil(T / stride).
    - "same": (K-1)*dilation zeros, floor half before and ceil half after (PyTorch's padding="same" at
      stride 1); at stride > 1 the same padding is used and T' = ceil(T / stride).
    - "valid": no padding; T' = floor((T - (K-1)*dilation - 1) / stride) + 1, so T >= (K-1)*dilation + 1.

    mask (B, T) bool, True where a case has data, one contiguous run per row: padding after the data, or
    before it when the run starts at a multiple of ``stride``. Padded inputs count as zeros and outputs
    beyond a case's own output length are zero (their gradient ignored), so each case gets exactly the
    outputs it would get alone, starting at output step start // stride. ``output_mask(mask)`` gives
    the (B, T') mask of those outputs, to pass on to the next layer or pool.
    """

    def __init__(self, input_size: int, channels_out: int, kernel_size: int, dilation: int = 1,
                 stride: int = 1, padding: str = "causal", bias: bool = True, dtype=np.float32, rng=None):
        super().__init__(dtype)
        for name, v in (("input_size", input_size), ("channels_out", channels_out),
                        ("kernel_size", kernel_size), ("dilation", dilation), ("stride", stride)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"TDNN: {name} must be a positive integer, got {v!r}")
        if padding not in PADDINGS:
            raise UserError(f"TDNN: unknown padding {padding!r}; use one of {', '.join(PADDINGS)}")
        self.input_size, self.channels_out, self.kernel_size = int(input_size), int(channels_out), int(kernel_size)
        self.dilation, self.stride, self.padding = int(dilation), int(stride), padding
        rng = as_rng(rng)
        K, D, C = self.kernel_size, self.input_size, self.channels_out
        k = 1.0 / math.sqrt(D * K)
        self.W = self.add_param("W", rng.uniform(-k, k, size=(K, D, C)))
        self.b = self.add_param("b", rng.uniform(-k, k, size=C)) if bias else None
        self._cache = None

    # -- shapes and masks ---------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Input steps one output sees: (K-1)*dilation + 1."""
        return (self.kernel_size - 1) * self.dilation + 1

    def _pads(self) -> tuple[int, int]:
        total = self.receptive_field - 1
        if self.padding == "causal":
            return total, 0
        if self.padding == "same":
            return total // 2, total - total // 2
        return 0, 0

    def _lengths_out(self, lengths):
        """Output count for input lengths (int or array); "valid" gives <= 0 for too-short inputs."""
        s = self.stride
        if self.padding == "valid":
            return (lengths - self.receptive_field) // s + 1
        return (lengths + s - 1) // s

    def output_length(self, T: int) -> int:
        """T' for an input of T steps (UserError when "valid" padding needs more steps)."""
        if self.padding == "valid" and T < self.receptive_field:
            raise UserError(f"TDNN: a sequence of {T} steps is too short for padding='valid' with kernel_size="
                            f"{self.kernel_size}, dilation={self.dilation}; the minimum length is "
                            f"{self.receptive_field} (or use padding='causal' or 'same')")
        return int(self._lengths_out(T))

    def _spans(self, m: np.ndarray):
        """Per row of a (B, T) bool mask: first valid step and valid count, checked to suit this layer."""
        B, T = m.shape
        lengths = m.sum(axis=1)
        start = np.argmax(m, axis=1)
        last = T - 1 - np.argmax(m[:, ::-1], axis=1)
        gaps = np.flatnonzero((lengths > 0) & (last - start + 1 != lengths))
        if gaps.size:
            raise UserError(f"TDNN: mask row(s) {gaps[:5].tolist()} have gaps; each case's valid steps must be "
                            "one contiguous run (padding before and/or after the data)")
        start = np.where(lengths > 0, start, 0)
        off = np.flatnonzero(start % self.stride)
        if off.size:
            raise UserError(f"TDNN: mask row(s) {off[:5].tolist()} start at step(s) {start[off[:5]].tolist()}, "
                            f"not a multiple of stride={self.stride}; pad at the end instead")
        if self.padding == "valid":
            short = np.flatnonzero(lengths < self.receptive_field)
            if short.size:
                raise UserError(f"TDNN: mask row(s) {short[:5].tolist()} have {lengths[short[:5]].tolist()} valid "
                                f"steps; padding='valid' with kernel_size={self.kernel_size}, dilation="
                                f"{self.dilation} needs at least {self.receptive_field} per case")
        return start, lengths

    def output_mask(self, mask):
        """The (B, T') mask of the outputs that belong to each case (None -> None)."""
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.ndim != 2:
            raise UserError(f"TDNN.output_mask: mask must have shape (batch, time), got {m.shape}")
        m = as_mask(m, m.shape[0], m.shape[1], "TDNN")
        T_out = self.output_length(m.shape[1])
        start, lengths = self._spans(m)
        o_start = start // self.stride
        t = np.arange(T_out)
        return (t >= o_start[:, None]) & (t < (o_start + self._lengths_out(lengths))[:, None])

    # -- computation --------------------------------------------------------------------------
    def forward(self, xs, mask=None, training: bool = False):
        xs = sequence_input(xs, self.dtype, "TDNN", self.input_size)
        B, T, D = xs.shape
        K, C, s, dil = self.kernel_size, self.channels_out, self.stride, self.dilation
        T_out = self.output_length(T)
        m_in = as_mask(mask, B, T, "TDNN")
        m_out = None if m_in is None else self.output_mask(m_in)
        left, right = self._pads()
        if left == right == 0 and m_in is None:
            xp = np.ascontiguousarray(xs)
        else:
            xp = np.zeros((B, left + T + right, D), dtype=self.dtype)
            xp[:, left:left + T] = xs if m_in is None else np.where(m_in[:, :, None], xs, 0)
        cols = self._unfold(xp, T_out)
        ys = cols @ self.W.reshape(K * D, C)  # (B*T', C)
        if self.b is not None:
            ys += self.b
        ys = ys.reshape(B, T_out, C)
        if m_out is not None:
            ys *= m_out[:, :, None]
        # keep the padded input, K times smaller than cols; backward unfolds it again (a few % of the time)
        self._cache = (xp, T, T_out, m_in, m_out)
        return ys

    def _unfold(self, xp: np.ndarray, T_out: int) -> np.ndarray:
        """(B*T', K*D) windows: row (b, t) holds xp[b, t*stride + k*dilation] for k = 0..K-1 (im2col)."""
        B, _, D = xp.shape
        sB, sT, sD = xp.strides
        windows = as_strided(xp, shape=(B, T_out, self.kernel_size, D),
                             strides=(sB, self.stride * sT, self.dilation * sT, sD), writeable=False)
        return windows.reshape(B * T_out, self.kernel_size * D)  # copies

    def backward(self, dys):
        if self._cache is None:
            raise RuntimeError("TDNN.backward called before forward")
        xp, T, T_out, m_in, m_out = self._cache
        B, _, D = xp.shape
        K, C, s, dil = self.kernel_size, self.channels_out, self.stride, self.dilation
        dys = np.asarray(dys, dtype=self.dtype)
        if dys.shape != (B, T_out, C):
            raise UserError(f"TDNN.backward: dys must have shape {(B, T_out, C)}, got {dys.shape}")
        # ys *= m_out: outputs outside a case carry no gradient
        dy2 = (dys if m_out is None else dys * m_out[:, :, None]).reshape(B * T_out, C)
        # ys = cols @ W + b
        self.grads["W"] += (self._unfold(xp, T_out).T @ dy2).reshape(K, D, C)
        if self.b is not None:
            self.grads["b"] += np.ones(B * T_out, self.dtype) @ dy2  # GEMV: faster than dy2.sum(0)
        dcols = (dy2 @ self.W.reshape(K * D, C).T).reshape(B, T_out, K, D)
        # cols = unfold(xp): tap k of output t read xp[:, t*s + k*dil]
        dxp = np.zeros(xp.shape, dtype=self.dtype)
        span = (T_out - 1) * s + 1
        for k in range(K):
            dxp[:, k * dil:k * dil + span:s] += dcols[:, :, k]
        left = self._pads()[0]
        dxs = dxp[:, left:left + T]
        if m_in is not None:
            dxs *= m_in[:, :, None]  # padded inputs were replaced by zeros
        return np.ascontiguousarray(dxs)

    # -- PyTorch names ------------------------------------------------------------------------
    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """Copies named and laid out like ``torch.nn.Conv1d``: weight (C, D, K), bias (C,)."""
        sd = {"weight": np.ascontiguousarray(self.W.transpose(2, 1, 0))}
        if self.b is not None:
            sd["bias"] = self.b.copy()
        return sd

    def load_torch_state_dict(self, sd) -> None:
        """Copy a ``torch.nn.Conv1d`` state dict (arrays or tensors) into W and b in place."""
        want = {"weight"} | ({"bias"} if self.b is not None else set())
        if set(sd) != want:
            raise UserError(f"TDNN.load_torch_state_dict: expected keys {sorted(want)}, got {sorted(sd)}")
        C, D, K = self.channels_out, self.input_size, self.kernel_size
        w = to_numpy(sd["weight"])
        if w.shape != (C, D, K):
            raise UserError(f"TDNN.load_torch_state_dict: weight must have shape (out, in, kernel) = {(C, D, K)}, "
                            f"got {w.shape}")
        self.W[...] = w.transpose(2, 1, 0)
        if self.b is not None:
            bias = to_numpy(sd["bias"])
            if bias.shape != (C,):
                raise UserError(f"TDNN.load_torch_state_dict: bias must have shape {(C,)}, got {bias.shape}")
            self.b[...] = bias

    def __repr__(self) -> str:
        return (f"TDNN({self.input_size}, {self.channels_out}, kernel_size={self.kernel_size}, dilation="
                f"{self.dilation}, stride={self.stride}, padding={self.padding!r}, dtype={self.dtype.name})")

