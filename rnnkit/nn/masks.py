"""Checks shared by the sequence layers (TDNN, pools, BatchNorm): the (B, T) mask, the (B, T, D) input,
and reading a PyTorch state-dict entry as a NumPy array."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


def as_mask(mask, B: int, T: int, who: str) -> np.ndarray | None:
    """A (B, T) bool mask (True where a case has data) from bools or 0/1 values; None stays None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != (B, T):
        hint = f"; from lengths, build it as np.arange({T}) < lengths[:, None]" if m.shape == (B,) else ""
        raise UserError(f"{who}: mask must have shape (batch, time) = {(B, T)}, got {m.shape}{hint}")
    if m.dtype != bool:
        if m.dtype.kind not in "iufb" or not np.isin(m, (0, 1)).all():
            raise UserError(f"{who}: mask must hold booleans or 0/1 (True where a case has data)")
        m = m.astype(bool)
    return m


def sequence_input(xs, dtype: np.dtype, who: str, size: int | None = None) -> np.ndarray:
    """xs as a (B, T, size) array of the layer's float dtype, or a UserError saying what shape was expected."""
    xs = np.asarray(xs)
    if xs.dtype.kind not in "fiub":
        raise UserError(f"{who}: input has dtype {xs.dtype}; pass a real-valued float array")
    want = "(batch, time, features)" if size is None else f"(batch, time, {size})"
    if xs.ndim != 3 or (size is not None and xs.shape[2] != size):
        raise UserError(f"{who}: input must have shape {want}, got {xs.shape}; "
                        "a single sequence needs a batch axis (xs[None])")
    if xs.shape[0] == 0 or xs.shape[1] == 0:
        raise UserError(f"{who}: input has shape {xs.shape}; batch and time must both be at least 1")
    return xs if xs.dtype == dtype else xs.astype(dtype)


def to_numpy(v) -> np.ndarray:
    """A NumPy copy of an array or a torch tensor (detached, on the CPU)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.array(v)
