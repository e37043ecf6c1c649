"""``fit()``: the one task-agnostic training loop, with callbacks, a step/time budget and divergence guard.

Each step: lr from the schedule -> ``model.zero_grad()`` -> ``train_step(batch)`` (the caller's forward,
loss and backward) -> global-norm clip -> ``optimizer.step`` -> log. A non-finite loss or gradient is never
applied: the step is skipped, the culprit is named, and the last good parameters and optimizer state
(an in-memory copy taken at every evaluation and every ``snapshot_every`` steps) are restored.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from rnnkit.errors import UserError
from rnnkit.nn.optim import clip_grad_norm, global_norm


class TrainingDiverged(UserError):
    """Too many consecutive non-finite steps. The model holds the last good parameters; ``.history`` is kept."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


class StopTraining(Exception):
    """Raise from a callback (or from ``train_step``) to end training cleanly after the current step."""


class History(list):
    """Everything ``fit`` logged, in order: a list of dicts, each with a ``"kind"``.

    - ``"train"`` every ``log_every`` steps: ``step`` (steps done), ``loss`` and ``grad_norm`` (means over the
      interval; the norm is before clipping), ``lr``, ``elapsed`` (s), ``steps_per_s``, ``tokens_per_s`` (when
      ``tokens_per_step`` is given), plus the mean of any extra metrics ``train_step`` returned.
    - ``"eval"``: ``step``, ``elapsed`` and the metrics ``eval_fn`` returned.
    - ``"skip"``: ``step`` and ``reason`` for a step dropped because of a non-finite loss or gradient.

    After ``fit`` returns, ``stop_reason`` is one of "steps", "time", "data", "callback".
    """

    stop_reason: str | None = None
    steps: int = 0

    def of(self, kind: str) -> list[dict]:
        return [r for r in self if r["kind"] == kind]

    @property
    def train(self) -> list[dict]:
        return self.of("train")

    @property
    def evals(self) -> list[dict]:
        return self.of("eval")

    @property
    def skips(self) -> list[dict]:
        return self.of("skip")

    def last(self, kind: str = "eval") -> dict | None:
        for r in reversed(self):
            if r["kind"] == kind:
                return r
        return None

    def series(self, key: str, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``key`` over the records of ``kind`` that have it, e.g. for a plot."""
        rows = [(r["step"], r[key]) for r in self if r["kind"] == kind and key in r]
        if not rows:
            return np.zeros(0, int), np.zeros(0)
        s, v = zip(*rows)
        return np.asarray(s), np.asarray(v, dtype=float)


class Callback:
    """Hooks called by ``fit``. Return True from ``on_step``/``on_eval`` (or raise StopTraining) to stop.

    ``on_step(record)``: after every applied step, record = {"step", "loss", "grad_norm", "lr", ...extras};
    ``on_eval(record)``: after each evaluation; ``on_end(history)``: once, when the loop ends.
    Any object with some of these methods works; this class only provides no-op defaults.
    """

    def on_step(self, record: dict) -> bool | None:
        return None

    def on_eval(self, record: dict) -> bool | None:
        return None

    def on_end(self, history: History) -> None:
        return None


class EarlyStopping(Callback):
    """Stop when eval metric ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations.

    With ``model`` given and ``restore_best=True``, the best parameters are copied back at the end.
    """

    def __init__(self, metric: str = "val_loss", patience: int = 5, mode: str = "min", min_delta: float = 0.0,
                 model=None, restore_best: bool = False):
        if mode not in ("min", "max"):
            raise UserError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.metric, self.patience, self.mode, self.min_delta = metric, int(patience), mode, float(min_delta)
        self.model, self.restore_best = model, restore_best
        self.best: float | None = None
        self.best_step: int | None = None
        self._best_params: dict | None = None
        self._bad = 0

    def on_eval(self, record):
        if self.metric not in record:
            raise UserError(f"EarlyStopping: eval metrics have no {self.metric!r}; available: {sorted(record)}")
        value = float(record[self.metric])
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_step, self._bad = value, record["step"], 0
            if self.model is not None and self.restore_best:
                self._best_params = {k: p.copy() for k, p in self.model.params.items()}
            return False
        self._bad += 1
        return self._bad >= self.patience

    def on_end(self, history):
        if self._best_params is not None:
            for k, p in self.model.params.items():
                p[...] = self._best_params[k]


def _batch_source(batches) -> Callable[[int], Any]:
    """A function step -> batch, raising StopIteration when the data run out (one pass of a one-shot iterator).

    A callable is called with the step; a re-iterable (list, dataset object) is restarted every epoch; a
    one-shot iterator is used once.
    """
    if callable(batches) and not hasattr(batches, "__iter__"):
        return batches
    state = {"it": iter(batches), "epoch": 0}
    reiterable = state["it"] is not batches

    def next_batch(step: int):
        try:
            return next(state["it"])
        except StopIteration:
            if not reiterable:
                raise
            state["epoch"] += 1
            state["it"] = iter(batches)
            return next(state["it"])  # an empty iterable stops here

    next_batch.state = state
    return next_batch


def _snapshot(model, optimizer) -> tuple[dict, tuple]:
    return {k: p.copy() for k, p in model.params.items()}, optimizer.state_dict()


def _restore(model, optimizer, snap) -> None:
    params, (arrays, scalars) = snap
    for k, p in model.params.items():
        p[...] = params[k]
    optimizer.load_state_dict(arrays, scalars)


def _call(callbacks, hook: str, arg) -> bool:
    stop = False
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None and fn(arg):
            stop = True
    return stop


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def fit(model, optimizer, train_step: Callable[[Any], Any], batches, *, steps: int | None = None,
        epochs: int | None = None, minutes: float | None = None, clip: float | None = 5.0, schedule=None,
        eval_fn: Callable[[], dict] | None = None, eval_every: int | None = None, log_every: int = 50,
        callbacks: Iterable = (), tokens_per_step=None, progress: bool = False, snapshot_every: int = 100,
        max_bad_steps: int = 5, log: Callable[[str], None] | None = None, start_step: int = 0,
        parallel=None) -> History:
    """Train ``model`` until the step, epoch or time budget runs out (or the data, or a callback says stop).

    model: a Layer (``params``, ``grads``, ``zero_grad``); optimizer: built on ``model.params``.
    train_step(batch): forward + loss + backward on ``model``; returns the loss (float), or a dict with
        "loss" and other scalar metrics to log. It must not zero or apply gradients (fit does).
    batches: a re-iterable (restarted each epoch), a one-shot iterator (one pass) or ``f(step) -> batch``.
    steps / epochs / minutes: budgets (any combination; the first reached stops; with none given and a
        re-iterable, one epoch). clip: global gradient-norm limit (None: no clipping).
    schedule: ``lr_at(step) -> lr`` (e.g. CosineWarmupLR), applied before every step; None keeps optimizer.lr.
    eval_fn(): returns a dict of metrics, called every ``eval_every`` steps and once at the end.
    callbacks: objects with on_step / on_eval / on_end (see :class:`Callback`).
    tokens_per_step: int or ``f(batch) -> int``, for a tokens/s figure in logs and the progress bar.
    progress: show a tqdm bar. snapshot_every: copy the good parameters every N steps (and at each eval).
    max_bad_steps: stop with :class:`TrainingDiverged` after this many consecutive non-finite steps.
    log: where to send text lines (the run header, skipped steps), e.g. ``print``; None: skips go to warnings.
    start_step: global step to resume from (the schedule sees start_step + i).
    parallel: e.g. ``rnnkit.distributed.fit_parallel.DataParallel(N)``: N Ray workers run ``train_step`` on
        shares of each batch; fit clips and applies their averaged gradient as usual.

    Returns a :class:`History`. Example, a classifier on (x, y) batches::

        net = Sequential(Dense(2, 8, rng=0), Tanh(), Dense(8, 2, rng=1))
        opt = Adam(net.params, lr=0.05)
        def train_step(batch):
            x, y = batch
            loss, dlogits = softmax_cross_entropy(net.forward(x, training=True), y)
            net.backward(dlogits)
            return loss
        history = fit(net, opt, train_step, [(X, Y)], steps=500, log_every=100)
        print(history.last("train")["loss"])
    """
    callbacks = list(callbacks)
    if parallel is not None:  # the workers compute the gradient; everything below is unchanged
        train_step = parallel.attach(model, optimizer, train_step)
        callbacks.insert(0, parallel)
    next_batch = _batch_source(batches)
    if steps is None and minutes is None and epochs is None and getattr(next_batch, "state", None) is not None:
        epochs = 1
    history = History()
    params, grads = model.params, model.grads
    if log is not None:
        budget = ", ".join(b for b in (steps and f"{steps} steps", epochs and f"{epochs} epochs",
                                       minutes and f"{minutes:g} min") if b) or "until the data end"
        log(f"fit: {sum(p.size for p in params.values()):,} parameters | {type(optimizer).__name__} "
            f"lr={optimizer.lr:g} | clip {clip if clip else 'off'} | budget {budget}")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, unit="step", dynamic_ncols=True, leave=False)

    t_start = time.perf_counter()
    deadline = None if minutes is None else t_start + 60.0 * minutes
    step = start_step
    done = 0
    snap, snap_step = _snapshot(model, optimizer), step
    bad = 0
    acc: dict[str, float] = {}
    acc_n, acc_tokens, acc_time = 0, 0, 0.0
    last_eval_step = None
    reason = None

    def flush():
        nonlocal acc, acc_n, acc_tokens, acc_time
        if not acc_n:
            return
        rec = {"kind": "train", "step": step, **{k: v / acc_n for k, v in acc.items()},
               "lr": optimizer.lr, "elapsed": time.perf_counter() - t_start,
               "steps_per_s": acc_n / max(acc_time, 1e-12)}
        if tokens_per_step is not None:
            rec["tokens_per_s"] = acc_tokens / max(acc_time, 1e-12)
        history.append(rec)
        if bar is not None:
            post = {"loss": f"{rec['loss']:.4f}"}
            if "tokens_per_s" in rec:
                post["tok/s"] = f"{rec['tokens_per_s']:,.0f}"
            if deadline is not None:
                post["left"] = _fmt_time(deadline - time.perf_counter())
            bar.set_postfix(post, refresh=False)
        acc, acc_n, acc_tokens, acc_time = {}, 0, 0, 0.0

    def evaluate() -> bool:
        nonlocal snap, snap_step, last_eval_step
        metrics = eval_fn()
        rec = {"kind": "eval", "step": step, "elapsed": time.perf_counter() - t_start, **metrics}
        history.append(rec)
        last_eval_step = step
        snap, snap_step = _snapshot(model, optimizer), step
        return _call(callbacks, "on_eval", rec)

    try:
        while True:
            if steps is not None and done >= steps:
                reason = "steps"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                reason = "time"
                break
            try:
                batch = next_batch(step)
            except StopIteration:
                reason = "data"
                break
            state = getattr(next_batch, "state", None)
            if epochs is not None and state is not None and state["epoch"] >= epochs:
                reason = "data"
                break
            t0 = time.perf_counter()
            if schedule is not None:
                optimizer.lr = float(schedule(step))
            model.zero_grad()
            out = train_step(batch)
            extras = dict(out) if isinstance(out, dict) else {"loss": out}
            loss = float(extras.pop("loss"))
            problem = None
            if not math.isfinite(loss):
                problem = f"loss is {loss}"
                norm = float("nan")
            else:
                norm = clip_grad_norm(grads, clip) if clip else global_norm(grads)
                if not math.isfinite(norm):
                    culprit = next((k for k, g in grads.items() if not np.isfinite(g).all()), "?")
                    problem = f"gradient of parameter {culprit!r} is not finite"
            step += 1
            done += 1
            if problem is not None:
                bad += 1
                _restore(model, optimizer, snap)
                msg = (f"step {step}: {problem}; step skipped, parameters and optimizer restored to step "
                       f"{snap_step} ({bad} in a row)")
                history.append({"kind": "skip", "step": step, "reason": msg})
                if log is not None:
                    log(msg)
                else:
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                if bad >= max_bad_steps:
                    raise TrainingDiverged(
                        f"training stopped at step {step}: {bad} consecutive steps were non-finite (last: {problem}); "
                        f"the model holds the parameters of step {snap_step}. Lower the learning rate or the "
                        f"clip norm, or check the data for inf/nan", history)
                continue
            optimizer.step(grads)
            bad = 0
            dt = time.perf_counter() - t0
            acc["loss"] = acc.get("loss", 0.0) + loss
            acc["grad_norm"] = acc.get("grad_norm", 0.0) + norm
            for k, v in extras.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            acc_n += 1
            acc_time += dt
            if tokens_per_step is not None:
                acc_tokens += tokens_per_step(batch) if callable(tokens_per_step) else tokens_per_step
            if bar is not None:
                bar.update(1)
            stop = False
            if callbacks:
                stop = _call(callbacks, "on_step",
                             {"step": step, "loss": loss, "grad_norm": norm, "lr": optimizer.lr, **extras})
            if log_every and done % log_every == 0:
                flush()
            if eval_fn is not None and eval_every and done % eval_every == 0:
                stop = evaluate() or stop
            elif snapshot_every and done % snapshot_every == 0:
                snap, snap_step = _snapshot(model, optimizer), step
            if stop:
                reason = "callback"
                break
    except StopTraining:
        reason = "callback"
    finally:
        if bar is not None:
            bar.close()
        if parallel is not None:
            parallel.close()
    flush()
    if eval_fn is not None and last_eval_step != step:
        try:
            evaluate()
        except StopTraining:
            pass
    history.stop_reason, history.steps = reason, step
    _call(callbacks, "on_end", history)
    if log is not None:
        last = history.last("train")
        summary = f"loss {last['loss']:.4f}" if last else "no step applied"
        log(f"fit: stopped after {done} steps ({reason}) in {_fmt_time(time.perf_counter() - t_start)}, {summary}")
    return history
