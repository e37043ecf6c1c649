"""The time-delay layer (TDNN): a 1-D convolution over time on batch-first sequences.

The reference forward is one GEMM over the unfolded windows, (B*T', K*D) @ (K*D, C); backward is two
GEMMs and a scatter-add over the K taps. Where it is faster, the same convolution runs through Winograd
transforms instead (``tdnn_winograd``). Masks make padded batches exact: each case gets its output alone.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn import tdnn_winograd as winograd
from rnnkit.nn.masks import as_mask, sequence_input, to_numpy

PADDINGS = ("causal", "same", "valid")
ALGORITHMS = ("auto", "unfold", "winograd")
# "auto" takes the Winograd path for 3..6 taps with at least 32 channels in and out. Measured (float32,
# B=16, T=1460, forward+backward, 1 thread): D=64, C=128, K=5 0.63x the unfold time, K=3 0.74x,
# D=C=32 (T=730) 0.67x; but D=C=16 1.19x, D=8, C=32 1.28x, D=1, C=64 3.2x (transforms outweigh the GEMMs),
# and K=7 (2 outputs per tile) only 0.92x.
WINOGRAD_AUTO_TAPS = range(3, 7)
WINOGRAD_MIN_CHANNELS = 32


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

    algorithm: "unfold" is the reference (one GEMM over the unfolded windows, as above); "winograd"
    computes the same convolution with ~0.4x the multiplies (``rnnkit.nn.tdnn_winograd``; stride 1,
    dilation 1, 2..7 taps, float32 results within ~3e-6 of the output scale); "auto" (default) takes
    it for 3..6 taps at stride 1, dilation 1 with at least 32 channels in and out, where it is faster.
    Scratch arrays (unfolded windows, transforms) are kept between calls: the layer holds a few times
    its last input's size (unfold: about 2K times).
    """

    def __init__(self, input_size: int, channels_out: int, kernel_size: int, dilation: int = 1,
                 stride: int = 1, padding: str = "causal", bias: bool = True, dtype=np.float32, rng=None,
                 algorithm: str = "auto"):
        super().__init__(dtype)
        for name, v in (("input_size", input_size), ("channels_out", channels_out),
                        ("kernel_size", kernel_size), ("dilation", dilation), ("stride", stride)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"TDNN: {name} must be a positive integer, got {v!r}")
        if padding not in PADDINGS:
            raise UserError(f"TDNN: unknown padding {padding!r}; use one of {', '.join(PADDINGS)}")
        if algorithm not in ALGORITHMS:
            raise UserError(f"TDNN: unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
        if algorithm == "winograd" and not winograd.supported(int(kernel_size), int(stride), int(dilation)):
            raise UserError(f"TDNN: algorithm='winograd' needs stride=1, dilation=1 and kernel_size 2..7, got "
                            f"stride={stride}, dilation={dilation}, kernel_size={kernel_size}; use 'auto'")
        self.algorithm = algorithm
        self.input_size, self.channels_out, self.kernel_size = int(input_size), int(channels_out), int(kernel_size)
        self.dilation, self.stride, self.padding = int(dilation), int(stride), padding
        rng = as_rng(rng)
        K, D, C = self.kernel_size, self.input_size, self.channels_out
        k = 1.0 / math.sqrt(D * K)
        self.W = self.add_param("W", rng.uniform(-k, k, size=(K, D, C)))
        self.b = self.add_param("b", rng.uniform(-k, k, size=C)) if bias else None
        self._cache = self._fast = None
        self._work: dict[str, np.ndarray] = {}

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
    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A scratch array kept between calls (grown when too small): on this kind of machine faulting in
        a fresh 10 MB array costs more than the arithmetic done in it."""
        n = math.prod(shape)
        arr = self._work.get(name)
        if arr is None or arr.size < n:
            arr = self._work[name] = np.empty(n, dtype=self.dtype)
        return arr[:n].reshape(shape)

    def uses_winograd(self) -> bool:
        """Whether forward/backward take the Winograd path (``rnnkit.nn.tdnn_winograd``)."""
        if self.algorithm == "unfold" or not winograd.supported(self.kernel_size, self.stride, self.dilation):
            return False
        return self.algorithm == "winograd" or (self.kernel_size in WINOGRAD_AUTO_TAPS and
                                                min(self.input_size, self.channels_out) >= WINOGRAD_MIN_CHANNELS)

    def forward(self, xs, mask=None, training: bool = False):
        xs = sequence_input(xs, self.dtype, "TDNN", self.input_size)
        B, T, D = xs.shape
        K, C = self.kernel_size, self.channels_out
        T_out = self.output_length(T)
        m_in = as_mask(mask, B, T, "TDNN")
        m_out = None if m_in is None else self.output_mask(m_in)
        fast = self.uses_winograd()
        left, right = self._pads()
        Tp = winograd.padded_length(T_out, K) if fast else left + T + right
        xp = self.buffer("xp", (B, Tp, D))  # xs between zeros; padded steps of a mask become zeros too
        xp[:, :left] = 0
        xp[:, left + T:] = 0
        xp[:, left:left + T] = xs
        if m_in is not None:
            np.copyto(xp[:, left:left + T], 0, where=~m_in[:, :, None])
        if fast:
            ys, self._fast = winograd.forward(xp, self.W, T_out, self.buffer)
        else:
            cols = self._unfold(xp, T_out)
            ys = np.matmul(cols, self.W.reshape(K * D, C), out=np.empty((B, T_out, C), self.dtype).reshape(-1, C))
            ys = ys.reshape(B, T_out, C)
        if self.b is not None:
            ys += self.b
        if m_out is not None:
            ys *= m_out[:, :, None]
        self._cache = (fast, B, T, T_out, m_in, m_out)
        return ys

    def _unfold(self, xp: np.ndarray, T_out: int) -> np.ndarray:
        """(B*T', K*D) windows, kept in a buffer: row (b, t) holds xp[b, t*stride + k*dilation], k = 0..K-1."""
        B, _, D = xp.shape
        K = self.kernel_size
        sB, sT, sD = xp.strides
        cols = self.buffer("cols", (B, T_out, K, D))
        np.copyto(cols, as_strided(xp, shape=(B, T_out, K, D),
                                   strides=(sB, self.stride * sT, self.dilation * sT, sD), writeable=False))
        return cols.reshape(B * T_out, K * D)

    def backward(self, dys):
        if self._cache is None:
            raise RuntimeError("TDNN.backward called before forward")
        fast, B, T, T_out, m_in, m_out = self._cache
        D, K, C, s, dil = self.input_size, self.kernel_size, self.channels_out, self.stride, self.dilation
        dys = np.asarray(dys, dtype=self.dtype)
        if dys.shape != (B, T_out, C):
            raise UserError(f"TDNN.backward: dys must have shape {(B, T_out, C)}, got {dys.shape}")
        # ys *= m_out: outputs outside a case carry no gradient
        if m_out is not None:
            dys = np.multiply(dys, m_out[:, :, None], out=self.buffer("dys", dys.shape))
        dy2 = dys.reshape(B * T_out, C)
        # ys += b
        if self.b is not None:
            self.grads["b"] += np.ones(B * T_out, self.dtype) @ dy2  # GEMV: faster than dy2.sum(0)
        if fast:
            dW, dxp = winograd.backward(dys, self._fast, self.buffer)
            self.grads["W"] += dW
        else:
            # ys = cols @ W, cols still in its buffer from forward
            cols = self.buffer("cols", (B * T_out, K * D))
            self.grads["W"] += (cols.T @ dy2).reshape(K, D, C)
            dcols = np.matmul(dy2, self.W.reshape(K * D, C).T, out=self.buffer("dcols", cols.shape))
            dcols = dcols.reshape(B, T_out, K, D)
            # cols = unfold(xp): tap k of output t read xp[:, t*s + k*dil]
            left, right = self._pads()
            dxp = self.buffer("dxp", (B, left + T + right, D))
            dxp.fill(0)
            span = (T_out - 1) * s + 1
            for k in range(K):
                dxp[:, k * dil:k * dil + span:s] += dcols[:, :, k]
        left = self._pads()[0]
        dxs = dxp[:, left:left + T].copy()  # a new array: dxp is a buffer
        if m_in is not None:
            dxs *= m_in[:, :, None]  # padded inputs were replaced by zeros
        return dxs

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

