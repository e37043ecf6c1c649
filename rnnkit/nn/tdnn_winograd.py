"""Winograd minimal filtering for the TDNN at stride 1, dilation 1: the same convolution, fewer multiplies.

Lavin & Gray (2016), 1-D F(m, K): m outputs of a K-tap correlation from one tile of a = m + K - 1 inputs,
``y_tile = A^T [(G w) * (B^T x_tile)]``. With D input and C output channels the elementwise product
becomes one GEMM (tiles, D) @ (D, C) per tile position, so the GEMM work is a / (m K) of the unfolded
GEMM's (0.4 at K = 5). Points 0, +-1, +-2, +-1/2 and infinity (a = 8); float32 outputs are within ~3e-6
of the output scale of the exact sum (unfolded: ~1e-6), float64 within ~1e-14. Backward is the adjoint.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and the point at infinity
ALPHA = len(POINTS) + 1  # inputs per tile


def supported(kernel_size: int, stride: int, dilation: int) -> bool:
    """Kernels of 2..7 taps at stride 1 and dilation 1 (a tile then gives at least 2 outputs)."""
    return stride == 1 and dilation == 1 and 2 <= kernel_size <= ALPHA - 1


def tile_size(kernel_size: int) -> int:
    """Outputs per tile: m = a - K + 1."""
    return ALPHA - kernel_size + 1


def _vandermonde(n: int) -> np.ndarray:
    """(a, n): the polynomial of n coefficients evaluated at each point; the last row is its leading
    coefficient (the value 'at infinity')."""
    V = np.zeros((ALPHA, n))
    V[:-1] = np.power.outer(np.array(POINTS), np.arange(n))
    V[-1, -1] = 1.0
    return V


@functools.lru_cache(maxsize=None)
def matrices(kernel_size: int, dtype: str):
    """A^T (m, a), G (a, K), B^T (a, a) of F(m, K).

    Toom-Cook: the linear convolution s = T_w x (T_w the (a, m) banded matrix of w) of lengths m and K
    is V_a^-1 [(V_K w) * (V_m x)]; the correlation y = T_w^T d transposes it, so A^T = V_m^T, G = V_K and
    B^T = V_a^-T.
    """
    m = tile_size(kernel_size)
    AT, G, BT = _vandermonde(m).T, _vandermonde(kernel_size), np.linalg.inv(_vandermonde(ALPHA)).T
    return tuple(np.ascontiguousarray(M, dtype=dtype) for M in (AT, G, BT))


def padded_length(T_out: int, kernel_size: int) -> int:
    """Input steps needed for whole tiles covering T_out outputs (the extra ones are zeros)."""
    m = tile_size(kernel_size)
    return -(-T_out // m) * m + kernel_size - 1


def _tiled(a: np.ndarray, n: int, m: int) -> np.ndarray:
    """(B, n, m, X) view of the first n*m steps of a (B, T, X) array (writeable when ``a`` is)."""
    sB, sT, sX = a.strides
    return as_strided(a, shape=(a.shape[0], n, m, a.shape[2]), strides=(sB, m * sT, sT, sX))


def forward(xp: np.ndarray, W: np.ndarray, T_out: int, buffer):
    """xp (B, padded_length, D) zero-padded input, W (K, D, C) -> ys (B, T_out, C) (a new array).

    ``buffer(name, shape)`` gives scratch arrays kept between calls; U stays in one for ``backward``.
    """
    B, Tp, D = xp.shape
    K, _, C = W.shape
    AT, G, BT = matrices(K, xp.dtype.str)
    m = tile_size(K)
    nT = (Tp - K + 1) // m
    N = B * nT
    sB, sT, sD = xp.strides
    # (a, B, nT, D) view: tiles[j, b, n] = xp[b, n*m + j]; neighbouring tiles overlap by K - 1 steps
    tiles = buffer("tiles", (ALPHA, B, nT, D))
    np.copyto(tiles, as_strided(xp, shape=(ALPHA, B, nT, D), strides=(sT, sB, m * sT, sD), writeable=False))
    U = np.matmul(BT, tiles.reshape(ALPHA, N * D), out=buffer("U", (ALPHA, N * D))).reshape(ALPHA, N, D)
    Wt = (G @ W.reshape(K, D * C)).reshape(ALPHA, D, C)  # filter transform
    M = np.matmul(U, Wt, out=buffer("M", (ALPHA, N, C)))  # a GEMMs (N, D) @ (D, C)
    Y = np.matmul(AT, M.reshape(ALPHA, N * C), out=buffer("Y", (m, N * C))).reshape(m, B, nT, C)
    ys = np.empty((B, T_out, C), dtype=xp.dtype)
    # ys[b, n*m + i] = Y[i, b, n]; the last tile may run past T_out
    full, rest = divmod(T_out, m)
    _tiled(ys, full, m)[...] = Y[:, :, :full].transpose(1, 2, 0, 3)
    if rest:
        ys[:, full * m:] = Y[:rest, :, full].transpose(1, 0, 2)
    return ys, (Wt, xp.shape, T_out, K)


def backward(dys: np.ndarray, cache, buffer):
    """dys (B, T_out, C) -> dW (K, D, C) and dxp (B, padded_length, D) (in a buffer): the adjoint of
    ``forward``, whose U must still be in ``buffer("U")``."""
    Wt, xp_shape, T_out, K = cache
    B, Tp, D = xp_shape
    C = Wt.shape[2]
    AT, G, BT = matrices(K, dys.dtype.str)
    m = tile_size(K)
    nT = (Tp - K + 1) // m
    N = B * nT
    U = buffer("U", (ALPHA, N * D)).reshape(ALPHA, N, D)
    # ys[b, n*m + i] = Y[i, b, n]: dY (m, B, nT, C), zero past T_out
    dY = buffer("Y", (m, B, nT, C))
    full, rest = divmod(T_out, m)
    dY[:, :, :full] = _tiled(dys, full, m).transpose(2, 0, 1, 3)
    if rest:
        dY[:rest, :, full] = dys[:, full * m:].transpose(1, 0, 2)
        dY[rest:, :, full] = 0
    # Y = A^T M
    dM = np.matmul(AT.T, dY.reshape(m, N * C), out=buffer("M", (ALPHA, N * C))).reshape(ALPHA, N, C)
    # M = U @ Wt (U is left intact: a second backward after one forward is allowed)
    # as (dM^T U)^T: the same at 1 BLAS thread, ~15x faster than U^T dM at 2 on a busy machine (measured)
    dWt = np.matmul(dM.transpose(0, 2, 1), U).transpose(0, 2, 1)  # (a, D, C)
    dU = np.matmul(dM, Wt.transpose(0, 2, 1), out=buffer("dU", (ALPHA, N, D)))
    # Wt = G W
    dW = np.tensordot(G.T, dWt, axes=1)  # (K, D, C)
    # U = B^T tiles
    dtiles = np.matmul(BT.T, dU.reshape(ALPHA, N * D), out=buffer("tiles", (ALPHA, N * D)))
    dtiles = dtiles.reshape(ALPHA, B, nT, D)
    # tiles[j, b, n] = xp[b, n*m + j]: scatter-add over the a tile positions
    dxp = buffer("dxp", xp_shape)
    dxp.fill(0)
    for j in range(ALPHA):
        dxp[:, j:j + nT * m:m] += dtiles[j]
    return dW, dxp
