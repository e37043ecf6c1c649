"""Optimizers (SGD, RMSprop, Adagrad, Adam, AdamW), global-norm gradient clipping and learning-rate schedules.

An optimizer is built on a model's ``params`` dict and updates those arrays *in place* from a ``grads`` dict
with the same keys: ``opt = Adam(model.params, lr=1e-3); ...; opt.step(model.grads)``. The update rules
follow ``torch.optim`` (same defaults, same bias correction), so runs can be compared step for step.

Checkpoint form: ``arrays, scalars = opt.state_dict()``. ``arrays`` is a flat ``dict[str, np.ndarray]``
keyed ``"<slot>.<param name>"`` (e.g. ``"m.l0.W_x"``, ``"v.l0.W_x"``, ``"momentum.0.W"``): ready for
safetensors. ``scalars`` is a small JSON-able dict: ``{"type": "Adam", "step": 12, "lr": 0.001, ...
hyper-parameters}``. ``opt.load_state_dict(arrays, scalars)`` copies both back in place.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import UserError


class Optimizer:
    """Base class: holds ``params`` (by reference), ``lr``, a step counter and per-parameter slot arrays."""

    slots: tuple[str, ...] = ()

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        if not isinstance(params, dict) or not params:
            raise UserError(f"{type(self).__name__}: params must be a non-empty dict name -> array (a model's .params)")
        if lr < 0:
            raise UserError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        self.params = params
        self.lr = float(lr)
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {
            slot: {k: np.zeros_like(p) for k, p in params.items()} for slot in self.slots
        }
        self._tmp = {k: np.empty_like(p) for k, p in params.items()}  # scratch, one per parameter

    def hyperparams(self) -> dict:
        return {}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """Apply one update to every parameter in place."""
        missing = [k for k in self.params if k not in grads]
        if missing:
            raise UserError(f"{type(self).__name__}.step: no gradient for {missing}; pass the model's .grads dict")
        self.step_count += 1
        for k, p in self.params.items():
            self._update(k, p, grads[k], self._tmp[k])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, tmp: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _decayed_grad(p, g, weight_decay: float):
        """g + weight_decay * p (PyTorch's coupled L2 penalty) as a fresh array; the grads stay intact."""
        return g + weight_decay * p if weight_decay else g

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {f"{slot}.{k}": a.copy() for slot, per in self.state.items() for k, a in per.items()}
        scalars = {"type": type(self).__name__, "step": self.step_count, "lr": self.lr, **self.hyperparams()}
        return arrays, scalars

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        name = type(self).__name__
        if scalars.get("type", name) != name:
            raise UserError(f"optimizer state is for {scalars['type']}, but this optimizer is {name}")
        expected = {f"{slot}.{k}" for slot, per in self.state.items() for k in per}
        if set(arrays) != expected:
            raise UserError(
                f"{name} state does not match the parameters: missing {sorted(expected - set(arrays))}, "
                f"unexpected {sorted(set(arrays) - expected)}"
            )
        for slot, per in self.state.items():
            for k, a in per.items():
                v = np.asarray(arrays[f"{slot}.{k}"])
                if v.shape != a.shape:
                    raise UserError(f"{name} state {slot}.{k}: expected shape {a.shape}, got {v.shape}")
                a[...] = v
        self.step_count = int(scalars.get("step", self.step_count))
        self.lr = float(scalars.get("lr", self.lr))


class SGD(Optimizer):
    """p -= lr * g, with optional (Nesterov) momentum, dampening and L2 weight decay, as torch.optim.SGD."""

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise UserError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.slots = ("momentum",) if momentum else ()
        super().__init__(params, lr)
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)
        self.weight_decay = float(weight_decay)

    def hyperparams(self) -> dict:
        return {"momentum": self.momentum, "dampening": self.dampening, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, name, p, g, tmp):
        g = self._decayed_grad(p, g, self.weight_decay)
        if self.momentum:
            buf = self.state["momentum"][name]
            if self.step_count == 1:
                buf[...] = g  # torch starts the buffer at the first gradient
            else:
                buf *= self.momentum
                if self.dampening:
                    buf += (1 - self.dampening) * g
                else:
                    buf += g
            if self.nesterov:
                np.multiply(buf, self.momentum, out=tmp)
                tmp += g
                g = tmp
            else:
                g = buf
        np.multiply(g, self.lr, out=tmp)
        p -= tmp


class RMSprop(Optimizer):
    """Divide the gradient by a running RMS: v = alpha v + (1-alpha) g^2, p -= lr g / (sqrt(v) + eps)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        self.slots = ("square_avg",) + (("momentum",) if momentum else ()) + (("grad_avg",) if centered else ())
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)

    def hyperparams(self) -> dict:
        return {"alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered}

    def _update(self, name, p, g, tmp):
        g = self._decayed_grad(p, g, self.weight_decay)
        v = self.state["square_avg"][name]
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.alpha
        v *= self.alpha
        v += tmp
        if self.centered:
            ga = self.state["grad_avg"][name]
            ga *= self.alpha
            ga += (1 - self.alpha) * g
            np.multiply(ga, ga, out=tmp)
            np.subtract(v, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)  # g / avg
        if self.momentum:
            buf = self.state["momentum"][name]
            buf *= self.momentum
            buf += tmp
            np.multiply(buf, self.lr, out=tmp)
        else:
            tmp *= self.lr
        p -= tmp


class Adagrad(Optimizer):
    """Per-coordinate step lr / sqrt(sum of squared gradients), as torch.optim.Adagrad."""

    slots = ("sum",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = float(lr_decay), float(weight_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        for a in self.state["sum"].values():
            a.fill(initial_accumulator_value)

    def hyperparams(self) -> dict:
        return {"lr_decay": self.lr_decay, "weight_decay": self.weight_decay, "eps": self.eps,
                "initial_accumulator_value": self.initial_accumulator_value}

    def _update(self, name, p, g, tmp):
        g = self._decayed_grad(p, g, self.weight_decay)
        clr = self.lr / (1 + (self.step_count - 1) * self.lr_decay)
        acc = self.state["sum"][name]
        np.multiply(g, g, out=tmp)
        acc += tmp
        np.sqrt(acc, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= clr
        p -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is the coupled L2 form, like torch.optim.Adam.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    slots = ("m", "v")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def hyperparams(self) -> dict:
        return {"betas": [self.beta1, self.beta2], "eps": self.eps, "weight_decay": self.weight_decay}

    def step(self, grads):
        t = self.step_count + 1
        # per-step scalars, shared by every parameter
        bc2_sqrt = math.sqrt(1 - self.beta2 ** t)
        self._step_size = self.lr * bc2_sqrt / (1 - self.beta1 ** t)
        self._eps_hat = self.eps * bc2_sqrt
        super().step(grads)

    def _update(self, name, p, g, tmp):
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p  # coupled L2: a fresh array, grads stay untouched
        m, v = self.state["m"][name], self.state["v"][name]
        # m = b1 m + (1 - b1) g, written as m += (1 - b1) (g - m)
        np.subtract(g, m, out=tmp)
        tmp *= 1 - self.beta1
        m += tmp
        # v = b2 v + (1 - b2) g^2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v *= self.beta2
        v += tmp
        # p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), with sqrt(bc2) moved out of the denominator
        np.sqrt(v, out=tmp)
        tmp += self._eps_hat
        np.divide(m, tmp, out=tmp)
        tmp *= self._step_size
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * wd before the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adam": Adam, "adamw": AdamW}


def global_norm(grads) -> float:
    """L2 norm of all arrays together (float64 accumulation across arrays)."""
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for g in arrays:
            flat = g.reshape(-1)
            total += float(np.dot(flat, flat))
    if not math.isfinite(total) and all(np.isfinite(g).all() for g in arrays):
        # float32 squares overflowed although every value is finite: redo in float64
        total = sum(float(np.dot(g.reshape(-1).astype(np.float64), g.reshape(-1).astype(np.float64))) for g in arrays)
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Returns the norm *before* clipping. If it is inf or nan, nothing is scaled (the caller should skip the
    step); the non-finite value is returned as is.
    """
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    total = global_norm(arrays)
    if math.isfinite(total) and max_norm is not None and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in arrays:
            g *= scale
    return total


# -- learning-rate schedules: callables step -> lr (step counts from 0) ---------------------------------
class ConstantLR:
    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def __repr__(self) -> str:
        return f"ConstantLR({self.lr:g})"


class StepLR:
    """lr = base_lr * gamma ** (step // step_size)."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise UserError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.base_lr, self.step_size, self.gamma = float(base_lr), int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)

    def __repr__(self) -> str:
        return f"StepLR({self.base_lr:g}, step_size={self.step_size}, gamma={self.gamma:g})"


class CosineWarmupLR:
    """Linear warm-up then cosine decay to ``min_lr``.

    step < warmup_steps: base_lr * (step + 1) / warmup_steps (reaches base_lr at step warmup_steps - 1);
    warmup_steps <= step < total_steps: min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * r)),
    r = (step - warmup_steps) / (total_steps - warmup_steps);  step >= total_steps: min_lr.
    """

    def __init__(self, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        if warmup_steps < 0 or total_steps < warmup_steps:
            raise UserError(f"CosineWarmupLR: need 0 <= warmup_steps <= total_steps, got {warmup_steps}, {total_steps}")
        self.base_lr, self.min_lr = float(base_lr), float(min_lr)
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr
        r = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * r))

    def __repr__(self) -> str:
        return (f"CosineWarmupLR({self.base_lr:g}, warmup_steps={self.warmup_steps}, "
                f"total_steps={self.total_steps}, min_lr={self.min_lr:g})")
