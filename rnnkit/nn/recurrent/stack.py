"""Public recurrent layers: stacks of cores over layers and directions, with PyTorch's state layout.

``LSTM``, ``GRU``, ``ElmanRNN`` and ``JordanRNN`` share one class, :class:`RecurrentLayer`: batch-first
input, explicit state in and out, masks for padded batches, dropout between layers, bidirectional
concatenation, one-step streaming, and weight interchange with ``torch.nn.LSTM``/``GRU``/``RNN`` by name.
"""
from __future__ import annotations

import warnings

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.recurrent import reference
from rnnkit.nn.recurrent.bptt import ReferenceCore
from rnnkit.nn.recurrent.checks import InputChecks
from rnnkit.nn.recurrent.fast import ElmanCore, GRUCore, GRUResetBeforeCore, JordanCore, LSTMCore
from rnnkit.nn.recurrent.fast.base import FastCore
from rnnkit.nn.recurrent.threads import check_threads, configure, with_threads


class RecurrentLayer(InputChecks, Layer):
    """A stack of ``num_layers`` recurrent layers, each one- or two-directional.

    forward(xs (B, T, D), state=None, mask=None, training=False, projected=False) -> (ys, state)
        ys: (B, T, O*dirs) with ``return_sequences`` (zero where the mask is False), else (B, O*dirs): the
        top layer's final output of each direction (the last valid step going forward, step 0 going back).
        state: a tuple like PyTorch's, each array (num_layers*dirs, B, S): (h,) or (h, c) for LSTM.
        mask: (B, T) of booleans (or 0/1), True where a row has data. At a masked step the state is carried
        over unchanged and the output and its gradients are zero, so a padded row (padding at either end)
        gives exactly the numbers it would give alone.
        projected: xs is already ``x @ W_x`` of the first layer, (B, T, G*H) (unidirectional only; as in
        ``step``): what a model that owns an embedding can compute once per vocabulary entry.
    backward(dys, dstate=None) -> (dxs, dstate0): accumulates into ``grads``; either argument may be None.
        dxs is the gradient of forward's xs, whatever its form: (B, T, D), or (B, T, G*H) for projected
        input (then no gradient goes into the first layer's W_x: the caller owns that product). The state
        returned by forward may be fed to the next forward (truncated BPTT): gradients stop there.
    step(x (B, D), state=None) -> (y (B, O), state): one time step (unidirectional only), any batch size.

    Parameters are named ``l{k}.W_x``, ``l{k}.W_h``, ``l{k}.b_x``, ``l{k}.b_h`` (``l{k}_reverse.*`` for the
    backward direction); see :mod:`rnnkit.nn.recurrent.reference` for the equations and gate order.

    ``engine="fast"`` (default) runs the fast cores; ``engine="reference"`` runs the plain reference cells
    step by step (:mod:`~rnnkit.nn.recurrent.reference`, :mod:`~rnnkit.nn.recurrent.bptt`): the same
    parameters, initialisation and results (to round-off), slower, and readable.

    ``threads=N`` is how many threads the layer computes with, its own and BLAS's together: the LSTM's and
    GRU's team of N (each member on one BLAS thread), or the background thread and N - 1 BLAS threads of
    the others (1: all on the calling thread); forward and backward set BLAS to that (``step`` leaves BLAS
    as it is). None (default) chooses from the cores available and the layer size, and leaves BLAS to the
    caller. ``layer.threads = N`` changes it later; it is the only thread setting.
    """

    core_class: type[FastCore] = FastCore
    reference_cell: type[reference.Cell] = reference.Cell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, return_sequences: bool = True, dtype=np.float32, rng=None,
                 engine: str = "fast", threads: int | None = None, **core_options):
        super().__init__(dtype)
        if engine not in ("fast", "reference"):
            raise UserError(f"engine must be 'fast' (the default) or 'reference' (the plain cells of "
                            f"rnnkit/nn/recurrent/reference.py), got {engine!r}")
        self.engine = engine
        check_threads(threads)  # before any work
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise UserError(f"input_size, hidden_size and num_layers must be >= 1, got "
                            f"{input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {dropout}")
        if np.dtype(dtype).kind != "f":
            raise UserError(f"dtype must be a float type (np.float32 or np.float64), got {np.dtype(dtype)}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout acts between stacked layers; with num_layers=1 it does nothing", stacklevel=3)
        self.rng = as_rng(rng)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout, self.return_sequences = bidirectional, dropout, return_sequences
        self.num_directions = 2 if bidirectional else 1
        self.cores: list[FastCore | ReferenceCore] = []
        size = input_size
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                if engine == "reference":
                    core = ReferenceCore(size, hidden_size, cell=self.reference_cell, dtype=dtype, rng=self.rng,
                                         **core_options)
                else:
                    core = self.core_class(size, hidden_size, dtype=dtype, rng=self.rng, **core_options)
                self.cores.append(self.add_child(self._name(layer, direction), core))
            size = self.cores[-1].output_size * self.num_directions
        self.output_size = size
        self.threads = threads
        self._dropout_masks: list[np.ndarray | None] = []
        self._shape = None

    @property
    def threads(self) -> int | None:
        return self._threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._threads = check_threads(value)
        self.blas_threads = configure(self.cores, self._threads)  # what forward and backward set BLAS to

    @staticmethod
    def _name(layer: int, direction: int) -> str:
        return f"l{layer}" + ("_reverse" if direction else "")

    # -- state ----------------------------------------------------------------------------------
    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.cores[0].state_sizes

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """Zeros, shaped like the state forward returns."""
        n = self.num_layers * self.num_directions
        return tuple(np.zeros((n, batch_size, s), self.dtype) for s in self.state_sizes)

    # -- forward / backward ---------------------------------------------------------------------
    @with_threads
    def forward(self, xs, state=None, mask=None, training: bool = False, projected: bool = False):
        self._shape = None  # set again only when this forward completes
        if projected:
            xs = self._check_projected(xs)
            B, T, _ = xs.shape
            x = xs.transpose(1, 0, 2)  # (T, B, G*H) view: the first core reads it once, column block by block
        else:
            xs = self._check_input(xs)
            B, T, _ = xs.shape
            x = xs.transpose(1, 0, 2).copy()  # (T, B, D), our own copy: each step one contiguous block
        state = self._check_state(state, B)
        m = self._check_mask(mask, B, T)
        dirs = self.num_directions
        finals: list[tuple[np.ndarray, ...]] = []
        self._dropout_masks = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                core_state = tuple(s[k] for s in state)
                if d == 0:
                    ys, final = self.cores[k].forward(x, core_state, m, training, projected and layer == 0)
                else:  # the reverse direction runs on the time-reversed sequence
                    ys, final = self.cores[k].forward(np.ascontiguousarray(x[::-1]), core_state,
                                                      None if m is None else np.ascontiguousarray(m[::-1]),
                                                      training)
                    ys = ys[::-1]
                outs.append(ys)
                finals.append(final)
            x = outs[0] if dirs == 1 else np.concatenate(outs, axis=2)
            drop = None
            if training and self.dropout > 0 and layer < self.num_layers - 1:
                drop = (self.rng.random(x.shape) >= self.dropout).astype(self.dtype) / (1 - self.dropout)
                x = x * drop
            self._dropout_masks.append(drop)
        new_state = tuple(np.stack([f[j] for f in finals]) for j in range(len(self.state_sizes)))
        self._shape = (B, T)
        if self.return_sequences:  # always a copy: x may be a work buffer the next call overwrites
            return x.transpose(1, 0, 2).copy(), new_state
        top = finals[-dirs:]
        return np.concatenate([f[0] for f in top], axis=1), new_state

    @with_threads
    def backward(self, dys, dstate=None):
        if self._shape is None:
            raise RuntimeError("backward needs a completed forward first")
        B, T = self._shape
        dirs, n_state = self.num_directions, len(self.state_sizes)
        n_cores = len(self.cores)
        dys = self._check_output_grad(dys, B, T)
        dstate = self._check_state(dstate, B, what="dstate", allow_none=True)
        # per-core incoming state gradients (copies: the cores update them in place)
        core_dstate: list[list[np.ndarray | None]] = [
            [None if ds is None else ds[k].copy() for ds in dstate] for k in range(n_cores)]
        dx = None
        if dys is not None:
            if self.return_sequences:
                dx = np.ascontiguousarray(dys.transpose(1, 0, 2))
            else:  # the output was the top layer's final state: its gradient joins dstate
                O = self.cores[-1].output_size
                for d in range(dirs):
                    k = n_cores - dirs + d
                    g = dys[:, d * O:(d + 1) * O]
                    core_dstate[k][0] = g.copy() if core_dstate[k][0] is None else core_dstate[k][0] + g
        dstate0: list[tuple] = [()] * n_cores
        for layer in range(self.num_layers - 1, -1, -1):
            if dx is not None and self._dropout_masks[layer] is not None:
                dx = dx * self._dropout_masks[layer]
            O = self.cores[layer * dirs].output_size
            dinput = None
            for d in range(dirs):
                k = layer * dirs + d
                dy = None
                if dx is not None:
                    dy = dx[:, :, d * O:(d + 1) * O]
                    dy = np.ascontiguousarray(dy[::-1] if d else dy)
                dxs, ds0 = self.cores[k].backward(dy, tuple(core_dstate[k]))
                if d:
                    dxs = dxs[::-1]
                dinput = dxs if dinput is None else dinput + dxs
                dstate0[k] = ds0
            dx = dinput
        dstate0 = tuple(np.stack([ds[j] for ds in dstate0]) for j in range(n_state))
        # batch-first; free for projected input, whose gradient the core wrote batch-first
        return np.ascontiguousarray(dx.transpose(1, 0, 2)), dstate0

    # -- streaming ------------------------------------------------------------------------------
    def step(self, x, state=None, projected: bool = False):
        """One time step for every row of a batch. ``projected=True`` means ``x`` is already ``x @ W_x`` of
        the first layer, shape (B, G*H) (for example rows of a precomputed ``embedding @ W_x`` table)."""
        if self.bidirectional:
            raise UserError("step() needs the whole sequence for a bidirectional layer; use forward()")
        if type(x) is not np.ndarray or x.dtype != self.dtype:
            x = np.asarray(self._check_float(x, "step input"), dtype=self.dtype)
        width = self.cores[0].params["W_x"].shape[1 if projected else 0]
        what = "x @ W_x of the first layer" if projected else "features"
        if x.ndim != 2 or x.shape[1] != width:
            raise UserError(f"step() expects one time step of shape (batch, {width}) ({what}), got shape "
                            f"{x.shape}" + ("; for a whole sequence use forward()" if x.ndim == 3 else ""))
        B = x.shape[0]
        if not self._is_own_state(state, B):  # the common case, a state this layer returned, skips the checks
            state = self._check_state(state, B)
        new = tuple(np.empty((len(self.cores), B, size), self.dtype) for size in self.state_sizes)
        for k, core in enumerate(self.cores):
            x, st = core.step(x, tuple(s[k] for s in state), projected=projected and k == 0)
            for j, s in enumerate(st):
                new[j][k] = s
        return x, new

    def _is_own_state(self, state, batch_size: int) -> bool:
        """True for a tuple of arrays of exactly this layer's state shapes and dtype."""
        return (type(state) is tuple and len(state) == len(self.state_sizes)
                and all(type(s) is np.ndarray and s.dtype == self.dtype
                        and s.shape == (len(self.cores), batch_size, size)
                        for s, size in zip(state, self.state_sizes)))

    # -- introspection --------------------------------------------------------------------------
    @property
    def record_dh(self) -> bool:
        return self.cores[0].record_dh

    @record_dh.setter
    def record_dh(self, value: bool) -> None:
        for core in self.cores:
            core.record_dh = bool(value)

    @property
    def dhs_(self) -> list[np.ndarray]:
        """Per core (index layer*dirs + d), the total dL/dh_t of the last backward, (B, T, H) in time order."""
        out = []
        for d_index, core in enumerate(self.cores):
            rec = core.dh_record_
            if rec is None:
                raise RuntimeError("set layer.record_dh = True before backward to record dL/dh_t")
            if d_index % self.num_directions:
                rec = rec[::-1]
            out.append(np.ascontiguousarray(rec.transpose(1, 0, 2)))
        return out

    def gate_activations(self) -> dict[str, dict[str, np.ndarray]]:
        """Gate values of the last forward per core name, each gate (B, T, H) in time order."""
        out = {}
        for k, core in enumerate(self.cores):
            values = core.gate_values()
            if not values:
                continue
            rev = k % self.num_directions == 1
            out[self._name(k // self.num_directions, k % self.num_directions)] = {
                g: np.ascontiguousarray((v[::-1] if rev else v).transpose(1, 0, 2)) for g, v in values.items()}
        return out

    # -- PyTorch interchange --------------------------------------------------------------------
    _TORCH = {"W_x": "weight_ih", "W_h": "weight_hh", "b_x": "bias_ih", "b_h": "bias_hh"}

    def torch_state_dict(self, grads: bool = False) -> dict[str, np.ndarray]:
        """Parameters (or accumulated gradients) under ``torch.nn.LSTM/GRU/RNN`` names and layouts."""
        source = self.grads if grads else self.params
        out = {}
        for k in range(len(self.cores)):
            layer, d = divmod(k, self.num_directions)
            name = self._name(layer, d)
            suffix = "_reverse" if d else ""
            for ours, theirs in self._TORCH.items():
                a = source[f"{name}.{ours}"]
                out[f"{theirs}_l{layer}{suffix}"] = np.ascontiguousarray(a.T if a.ndim == 2 else a)
        return out

    def load_torch_state_dict(self, state: dict) -> None:
        """Load weights from a ``torch.nn.LSTM/GRU/RNN`` state dict (tensors or arrays), exactly."""
        ours = self.torch_state_dict()
        missing = sorted(set(ours) - set(state))
        unexpected = sorted(set(state) - set(ours))
        if missing or unexpected:
            raise UserError(f"torch state dict does not fit this {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected}")
        for k in range(len(self.cores)):
            layer, d = divmod(k, self.num_directions)
            name, suffix = self._name(layer, d), ("_reverse" if d else "")
            for mine, theirs in self._TORCH.items():
                v = state[f"{theirs}_l{layer}{suffix}"]
                v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
                target = self.params[f"{name}.{mine}"]
                v = v.T if v.ndim == 2 else v
                if v.shape != target.shape:
                    raise UserError(f"{theirs}_l{layer}{suffix}: expected shape {target.T.shape if v.ndim == 2 else target.shape}, "
                                     f"got {v.T.shape if v.ndim == 2 else v.shape}")
                target[...] = v


class LSTM(RecurrentLayer):
    """Stacked LSTM; see :class:`RecurrentLayer` and :class:`~rnnkit.nn.recurrent.fast.lstm.LSTMCore`.

    ``forget_bias`` (default 1.0) sets the initial forget-gate bias; pass None for PyTorch's initialisation.
    """

    core_class, reference_cell = LSTMCore, reference.LSTMCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=True, forget_bias=1.0, dtype=np.float32, rng=None, engine="fast",
                 threads=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, return_sequences,
                         dtype, rng, engine, threads, forget_bias=forget_bias)


class GRU(RecurrentLayer):
    """Stacked GRU. ``reset_after=True`` (default) is PyTorch's/cuDNN's form
    (:class:`~rnnkit.nn.recurrent.fast.gru.GRUCore`); False is the form of Cho et al. 2014, reset applied
    before the recurrent product (:class:`~rnnkit.nn.recurrent.fast.gru_before.GRUResetBeforeCore`)."""

    core_class, reference_cell = GRUCore, reference.GRUCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=True, reset_after=True, dtype=np.float32, rng=None, engine="fast",
                 threads=None):
        self.reset_after = reset_after
        self.core_class = GRUCore if reset_after else GRUResetBeforeCore
        self.reference_cell = reference.GRUCell if reset_after else reference.GRUResetBeforeCell
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, return_sequences,
                         dtype, rng, engine, threads)

    def torch_state_dict(self, grads=False):
        self._check_torch_form()
        return super().torch_state_dict(grads)

    def load_torch_state_dict(self, state):
        self._check_torch_form()
        super().load_torch_state_dict(state)

    def _check_torch_form(self):
        if not self.reset_after:
            raise NotImplementedError("torch.nn.GRU is the reset-after form; build GRU(..., reset_after=True) "
                                      "to exchange weights with PyTorch")


class ElmanRNN(RecurrentLayer):
    """Stacked Elman RNN (PyTorch's ``nn.RNN``), ``nonlinearity`` 'tanh' or 'relu'."""

    core_class, reference_cell = ElmanCore, reference.ElmanCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=True, nonlinearity="tanh", dtype=np.float32, rng=None, engine="fast",
                 threads=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, return_sequences,
                         dtype, rng, engine, threads, nonlinearity=nonlinearity)


class JordanRNN(RecurrentLayer):
    """Stacked Jordan RNN: each layer feeds back its previous output y (size ``output_size``)."""

    core_class, reference_cell = JordanCore, reference.JordanCell

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, bidirectional=False, dropout=0.0,
                 return_sequences=True, output_activation="tanh", dtype=np.float32, rng=None, engine="fast",
                 threads=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, return_sequences,
                         dtype, rng, engine, threads, output_size=output_size,
                         output_activation=output_activation)

    def torch_state_dict(self, grads=False):
        raise NotImplementedError("PyTorch has no Jordan RNN; use params/state_dict() instead")

    def load_torch_state_dict(self, state):
        raise NotImplementedError("PyTorch has no Jordan RNN; use load_state_dict() instead")
