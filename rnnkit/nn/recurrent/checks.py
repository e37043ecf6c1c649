"""Argument checks of the recurrent layers: every bad input gets one message that names what is wrong
(the axis, the expected size) and how to fix it, raised as :class:`~rnnkit.errors.UserError`."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError


class InputChecks:
    """Mixed into :class:`~rnnkit.nn.recurrent.stack.RecurrentLayer`; uses its sizes, dtype and
    ``initial_state``."""

    def _check_float(self, a, what: str) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind in "iub":
            raise UserError(f"{type(self).__name__} {what} must be float features, got integers of shape "
                            f"{a.shape}; for token ids put an Embedding in front")
        if a.dtype.kind != "f":
            raise UserError(f"{type(self).__name__} {what} must be a float array, got dtype {a.dtype}")
        return a

    def _check_input(self, xs) -> np.ndarray:
        xs = self._check_float(xs, "input")
        name = type(self).__name__
        if xs.ndim != 3:
            hint = ("add the batch axis with xs[None] for one sequence, or the feature axis with xs[..., None] "
                    "for one feature per step" if xs.ndim == 2 else "reshape it to (batch, time, features)")
            raise UserError(f"{name} expects input of shape (batch, time, features) = (B, T, "
                            f"{self.input_size}), got a {xs.ndim}-D array of shape {xs.shape}: {hint}")
        if xs.shape[2] != self.input_size:
            raise UserError(f"{name} input axis 2 (features) has size {xs.shape[2]}, but the layer was built "
                            f"with input_size={self.input_size}; build it with input_size={xs.shape[2]} or "
                            f"fix the data")
        if xs.shape[0] < 1 or xs.shape[1] < 1:
            raise UserError(f"{name} input has an empty axis: shape {xs.shape} (need batch >= 1 and time >= 1)")
        return xs.astype(self.dtype, copy=False)

    def _check_projected(self, xs) -> np.ndarray:
        """forward(..., projected=True): x @ W_x of the first layer, (B, T, G*H), unidirectional only."""
        name = type(self).__name__
        if self.bidirectional:
            raise UserError(f"{name}: projected input is x @ W_x of the forward direction only; a bidirectional "
                            f"layer needs the features themselves (projected=False)")
        xs = self._check_float(xs, "projected input")
        width = self.cores[0].params["W_x"].shape[1]
        if xs.ndim != 3 or xs.shape[2] != width or min(xs.shape) < 1:
            raise UserError(f"{name} projected input must be x @ W_x of the first layer, shape (batch, time, "
                            f"{width}), got {xs.shape}")
        return xs.astype(self.dtype, copy=False)

    def _check_state(self, state, batch_size: int, what: str = "state", allow_none: bool = False):
        """A tuple of (num_layers*dirs, batch, size) arrays in the layer's dtype (entries may be None in a
        gradient when ``allow_none``). ``state=None`` means zeros (or, for a gradient, no gradient)."""
        if state is None:
            return (None,) * len(self.state_sizes) if allow_none else self.initial_state(batch_size)
        name = type(self).__name__
        if isinstance(state, np.ndarray):
            if len(self.state_sizes) != 1:
                raise UserError(f"{name} {what} must be a tuple of {len(self.state_sizes)} arrays (h, c), "
                                f"got one array")
            state = (state,)
        state = tuple(state)
        n = self.num_layers * self.num_directions
        if len(state) != len(self.state_sizes):
            raise UserError(f"{name} {what} must be a tuple of {len(self.state_sizes)} array(s), got {len(state)}")
        out = []
        for k, (s, size) in enumerate(zip(state, self.state_sizes)):
            if s is None:
                if allow_none:
                    out.append(None)
                    continue
                raise UserError(f"{name} {what}[{k}] is None; pass an array of shape {(n, batch_size, size)} "
                                f"(or state=None for zeros)")
            s = np.asarray(self._check_float(s, f"{what}[{k}]"), dtype=self.dtype)
            expected = (n, batch_size, size)
            if s.shape != expected:
                if s.ndim == 3:
                    axis = next(a for a in range(3) if s.shape[a] != expected[a])
                    where = f" (axis {axis}: {['layers*directions', 'batch', 'size'][axis]})"
                elif s.shape == expected[1:]:
                    where = f"; add the layer axis with {what}[{k}][None]"
                else:
                    where = ""
                raise UserError(f"{name} {what}[{k}] must have shape (num_layers*directions, batch, size) = "
                                f"{expected}, got {s.shape}{where}")
            out.append(s)
        return tuple(out)

    def _check_mask(self, mask, B: int, T: int) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != (B, T):
            hint = (f"; from lengths, build it as np.arange({T}) < lengths[:, None]" if mask.shape == (B,) else "")
            raise UserError(f"mask must have shape (batch, time) = {(B, T)}, got {mask.shape}{hint}")
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise UserError("mask must hold booleans or 0/1 (True where a row has data)")
        return np.ascontiguousarray(mask.T[:, :, None], dtype=self.dtype)  # (T, B, 1) of 0/1

    def _check_output_grad(self, dys, B: int, T: int) -> np.ndarray | None:
        if dys is None:
            return None
        dys = np.asarray(self._check_float(dys, "output gradient dys"), dtype=self.dtype)
        expected = (B, T, self.output_size) if self.return_sequences else (B, self.output_size)
        if dys.shape != expected:
            names = ["batch", "time", "features"] if self.return_sequences else ["batch", "features"]
            axis = next((a for a in range(min(dys.ndim, len(expected))) if dys.shape[a] != expected[a]), None)
            where = f" (axis {axis}: {names[axis]})" if axis is not None and dys.ndim == len(expected) else ""
            raise UserError(f"{type(self).__name__} output gradient must have the shape of the forward's "
                            f"output, {expected}, got {dys.shape}{where}")
        return dys
