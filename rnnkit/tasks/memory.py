"""Long-range memory tasks: train a recurrent model until it solves a task or its budget runs out.

Each task (:data:`TASKS`) states its chance baseline and its "solved" criterion. Training data are
fresh sequences every step; "solved" is checked on a fixed validation set and then confirmed on fresh
test sequences. ``save``/``load`` write and read a trained model with its config (one safetensors file).
Also: next-word generation for the word corpus and the exploding-gradient demonstration.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from rnnkit.data import sequences as sq
from rnnkit.errors import UserError
from rnnkit.nn.base import Layer, as_rng
from rnnkit.nn.layers import Dense
from rnnkit.nn.losses import mse, softmax_cross_entropy
from rnnkit.nn.optim import SGD, Adam, clip_grad_norm

CELLS = ("elman", "jordan", "lstm", "gru")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, how it is scored, what chance scores, and what counts as solved."""

    name: str
    make: Callable  # (n, length, rng) -> sq.Batch
    input_size: int
    output_size: int
    output: str  # "last": one prediction per sequence; "seq": one per step
    metric: str  # "mse" (lower is better) or "accuracy" (higher is better)
    chance: float
    solved_at: float
    about: str
    fixed_data: bool = False  # the word corpus: the same sentences every step

    def is_solved(self, value: float) -> bool:
        return value < self.solved_at if self.metric == "mse" else value >= self.solved_at


_CORPUS = sq.WordCorpus()
TASKS = {
    "adding": TaskSpec("adding", sq.adding_problem, 2, 1, "last", "mse", sq.ADDING_BASELINE_MSE, 0.01,
                       "sum of the two marked values; chance (predict 1.0) MSE 0.167, solved: test MSE < 0.01"),
    "copy": TaskSpec("copy", sq.copy_task, 10, 10, "seq", "accuracy", 1 / 8, 0.99,
                     "recall 5 symbols (of 8) after LENGTH blank steps; chance accuracy 0.125, "
                     "solved: recall accuracy >= 0.99"),
    "order": TaskSpec("order", sq.temporal_order, 8, 4, "last", "accuracy", 0.25, 0.99,
                      "order of two marked symbols (XX/XY/YX/YY) among distractors; chance 0.25, "
                      "solved: accuracy >= 0.99"),
    "schedule": TaskSpec("schedule", sq.schedule, 4, 3, "seq", "accuracy", 1 / 3, 0.99,
                         "next subject of a 3-day timetable with 30% of days missed; chance 0.33, "
                         "solved: accuracy >= 0.99 on every day"),
    "words": TaskSpec("words", lambda n, length, rng: _CORPUS.batch(), _CORPUS.vocab_size, _CORPUS.vocab_size,
                      "seq", "accuracy", 1 / _CORPUS.vocab_size, 0.99,
                      f"next word of {len(sq.SENTENCES)} short sentences; chance 1/{_CORPUS.vocab_size}, "
                      "solved: accuracy >= 0.99 on every word after the first (training sentences)",
                      fixed_data=True),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


# -- the model --------------------------------------------------------------------------------------
def make_cell(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, return_sequences=True,
              forget_bias: float = 1.0, dtype=np.float32, rng=None, nonlinearity: str = "tanh",
              threads: int | None = None):
    """A recurrent layer by name. Jordan feeds back a tanh output of size ``hidden_size``;
    ``nonlinearity`` applies to Elman only; ``threads`` is the layer's ``threads=``."""
    from rnnkit.nn import recurrent as R

    kw = dict(num_layers=num_layers, return_sequences=return_sequences, dtype=dtype, rng=rng, threads=threads)
    if cell == "lstm":
        return R.LSTM(input_size, hidden_size, forget_bias=forget_bias, **kw)
    if cell == "gru":
        return R.GRU(input_size, hidden_size, **kw)
    if cell == "elman":
        return R.ElmanRNN(input_size, hidden_size, nonlinearity=nonlinearity, **kw)
    if cell == "jordan":
        return R.JordanRNN(input_size, hidden_size, hidden_size, **kw)
    raise UserError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")


class SequenceModel(Layer):
    """A recurrent layer followed by a Dense head, at the last step ("last") or at every step ("seq").
    Parameters are shared as ``rnn.*`` and ``head.*``."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, output: str = "last",
                 num_layers: int = 1, forget_bias: float = 1.0, dtype=np.float32, rng=None,
                 nonlinearity: str = "tanh", threads: int | None = None):
        super().__init__(dtype)
        rng = as_rng(rng)
        self.cell, self.output = cell, output
        self.rnn = self.add_child("rnn", make_cell(cell, input_size, hidden_size, num_layers, output == "seq",
                                                   forget_bias, dtype, rng, nonlinearity, threads))
        self.head = self.add_child("head", Dense(hidden_size, output_size, dtype=dtype, rng=rng))

    def forward(self, xs, mask=None, training: bool = False):
        ys, _ = self.rnn.forward(xs, mask=mask, training=training)
        return self.head.forward(ys, training=training)

    def backward(self, dout):
        return self.rnn.backward(self.head.backward(dout))[0]


def build_model(spec: TaskSpec, cell: str, hidden_size: int = 64, num_layers: int = 1, forget_bias: float = 1.0,
                dtype=np.float32, rng=None, threads: int | None = None) -> SequenceModel:
    return SequenceModel(cell, spec.input_size, hidden_size, spec.output_size, spec.output, num_layers,
                         forget_bias, dtype, rng, threads=threads)


def loss_and_grad(spec: TaskSpec, out: np.ndarray, batch: sq.Batch) -> tuple[float, np.ndarray]:
    if spec.metric == "mse":
        return mse(out, batch.ys)
    return softmax_cross_entropy(out, batch.ys, mask=batch.loss_mask)


def score(spec: TaskSpec, model: SequenceModel, batch: sq.Batch) -> float:
    """The task's metric on a batch: MSE, or accuracy over the steps the loss counts."""
    out = model.forward(batch.xs, mask=batch.valid)
    if spec.metric == "mse":
        return float(np.mean((out - batch.ys) ** 2))
    hit = out.argmax(-1) == batch.ys
    if batch.loss_mask is not None:
        hit = hit[batch.loss_mask]
    return float(np.mean(hit))


# -- training ------------------------------------------------------------------------------------------
@dataclass
class MemoryConfig:
    """Settings of one run. The defaults are the documented ones for the adding problem at T=200."""

    task: str = "adding"
    length: int = 100
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    batch_size: int = 64
    lr: float = 5e-3
    clip: float = 1.0
    forget_bias: float = 1.0
    max_steps: int = 10000
    max_seconds: float = 600.0
    eval_every: int = 50
    eval_size: int = 512
    test_size: int = 2000
    monitor_every: int = 0  # > 0: record gradient diagnostics every N steps (GradientMonitor)
    log_every: int = 10  # steps averaged per "train" record of the history (metrics.csv rows)
    seed: int = 0
    dtype: str = "float32"
    threads: int | None = None  # the recurrent layer's threads= (team and BLAS inside it); None: automatic

    def validate(self) -> "MemoryConfig":
        get_task(self.task)
        if self.cell not in CELLS:
            raise UserError(f"unknown cell {self.cell!r}; choose one of: {', '.join(CELLS)}")
        for name in ("length", "hidden_size", "num_layers", "batch_size", "max_steps", "eval_every",
                     "eval_size", "test_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf or not 0 < self.max_seconds < math.inf:  # NaN fails these too
            raise UserError(f"--lr and --max-seconds must be positive and finite, got {self.lr} and {self.max_seconds}")
        if not 0 <= self.clip < math.inf or not math.isfinite(self.forget_bias) or int(self.seed) < 0:
            raise UserError(f"--clip must be finite and >= 0, --forget-bias finite and --seed >= 0; got "
                            f"{self.clip}, {self.forget_bias} and {self.seed}")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"dtype must be float32 or float64, got {self.dtype!r}")
        from rnnkit.nn.recurrent.threads import check_threads
        check_threads(self.threads)
        return self


@dataclass
class MemoryResult:
    solved: bool
    steps: int  # steps taken (the step at which it was solved, if it was)
    seconds: float
    test_metric: float
    val_metric: float
    config: dict
    history: list = field(default_factory=list)  # one dict per logged step (metrics.csv rows)
    warnings: list = field(default_factory=list)
    stopped: str = ""  # "solved", "max_steps" or "max_seconds"


def run_rngs(seed: int) -> list[np.random.Generator]:
    """The independent generators of a run: model init, training data, validation set, test set."""
    return np.random.default_rng(seed).spawn(4)


def train(config: MemoryConfig, progress: bool = False, log: Callable | None = None,
          model: SequenceModel | None = None, stop: Callable[[], bool] | None = None):
    """Train with :func:`rnnkit.train.fit` until solved or out of steps/seconds (or ``stop()`` turns true:
    polled after every step, the command layer maps Ctrl-C/SIGTERM to it; ``result.stopped`` is then
    "interrupted").

    Every ``eval_every`` steps the metric is computed on a fixed validation set; when it passes, a
    held-out test set (fresh sequences, never trained on) must pass too, and then training stops.
    ``progress`` shows fit's bar; ``log`` (e.g. ``print``) gets fit's header and skipped-step lines.
    Returns ``(model, MemoryResult)``; ``result.history`` holds fit's records (train, eval, skip).
    """
    from rnnkit.train import Callback, fit

    cfg = config.validate()
    spec = get_task(cfg.task)
    dtype = np.dtype(cfg.dtype)
    model_rng, data_rng, val_rng, test_rng = run_rngs(cfg.seed)
    if model is None:
        model = build_model(spec, cfg.cell, cfg.hidden_size, cfg.num_layers, cfg.forget_bias, dtype, model_rng,
                            threads=cfg.threads)
    val = spec.make(cfg.eval_size, cfg.length, val_rng)
    test = spec.make(cfg.test_size, cfg.length, test_rng)

    def next_batch(step):
        return spec.make(cfg.batch_size, cfg.length, data_rng)

    def train_step(batch):
        out = model.forward(batch.xs.astype(dtype, copy=False), mask=batch.valid, training=True)
        loss, dout = loss_and_grad(spec, out, batch)
        model.backward(dout)
        return loss

    monitor = None
    if cfg.monitor_every:
        from rnnkit.diagnostics import GradientMonitor

        monitor = GradientMonitor(model.rnn, every=cfg.monitor_every, prefix="rnn.")
        train_step = monitor.wrap(train_step)

    class UntilSolved(Callback):
        solved_at = None

        def on_eval(self, record):
            if not spec.is_solved(record["val_metric"]):
                return False
            record["test_metric"] = score(spec, model, test)  # confirm on held-out sequences
            if spec.is_solved(record["test_metric"]):
                self.solved_at = record
                return True
            return False

    class Interrupt(Callback):
        def on_step(self, record):
            return bool(stop is not None and stop())

    until = UntilSolved()
    history = fit(model, Adam(model.params, lr=cfg.lr), train_step, next_batch, steps=cfg.max_steps,
                  minutes=cfg.max_seconds / 60.0, clip=cfg.clip if cfg.clip > 0 else None,
                  eval_fn=lambda: {"val_metric": score(spec, model, val)}, eval_every=cfg.eval_every,
                  log_every=cfg.log_every, callbacks=[until, Interrupt()], progress=progress, log=log)
    last = history.last("eval") or {}
    if until.solved_at is not None:
        end, stopped = until.solved_at, "solved"
        test_metric = end["test_metric"]
    else:
        end, stopped = last, {"steps": "max_steps", "time": "max_seconds", "callback": "interrupted"}.get(
            history.stop_reason, str(history.stop_reason))
        test_metric = last["test_metric"] if "test_metric" in last else score(spec, model, test)
    rows = [{k: v for k, v in r.items()} for r in history]
    result = MemoryResult(spec.is_solved(test_metric), int(end.get("step", history.steps)),
                          float(end.get("elapsed", 0.0)), float(test_metric),
                          float(last.get("val_metric", float("nan"))), asdict(cfg), rows,
                          [m for _, m in monitor.warnings_] if monitor else [], stopped)
    return model, result


# -- save / load -----------------------------------------------------------------------------------------
MODEL_FILE = "model.safetensors"  # its name in a `rnnkit memory run` folder
_ARCH = ("task", "cell", "hidden_size", "num_layers", "forget_bias")  # what rebuilding the model needs


def save(model: SequenceModel, path, config: MemoryConfig, step: int = 0) -> Path:
    """Write ``model``'s weights (safetensors) and ``{"config", "step"}`` (JSON metadata) to ``path``,
    atomically."""
    from rnnkit.io import save_checkpoint

    return save_checkpoint(path, model.state_dict(), {"config": asdict(config), "step": int(step)})


def load(path) -> tuple[SequenceModel, MemoryConfig]:
    """``(model, config)`` from a file written by :func:`save`, or from a run folder holding one
    (model.safetensors). Every config field's type, every tensor's name, shape, dtype and finiteness is
    checked; whatever a damaged file still provokes becomes a UserError naming it."""
    from rnnkit import io

    file = Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path)
    if not file.exists():
        raise UserError(f"{path} has no {MODEL_FILE}; give the folder written by `rnnkit memory run`")
    with io.guard_load(file):
        return _load(file)


def _load(file: Path) -> tuple[SequenceModel, MemoryConfig]:
    from rnnkit import io
    from rnnkit.io import load_checkpoint, read_meta

    meta = read_meta(file)
    cfg = meta.get("config")
    missing = [k for k in _ARCH if k not in cfg] if isinstance(cfg, dict) else list(_ARCH)
    if missing:
        raise UserError(f"{file} was not written by `rnnkit memory run` (config lacks {', '.join(missing)})")
    io.check_keys(meta, ("config", "step"), f"checkpoint {file} metadata")
    io.field(meta, "step", int, f"checkpoint {file} metadata", optional=True, low=0)
    io.dataclass_dict(MemoryConfig, cfg, f"checkpoint {file} metadata field 'config'")
    config = MemoryConfig(**{**cfg, "threads": None}).validate()  # threads: the training machine's, not the model's
    if config.hidden_size * config.num_layers > file.stat().st_size:  # each unit has weights in the file
        raise UserError(f"checkpoint {file}: config hidden_size {config.hidden_size} x num_layers "
                        f"{config.num_layers} is larger than the file can hold; the metadata is damaged")
    model = build_model(get_task(config.task), config.cell, config.hidden_size, config.num_layers,
                        config.forget_bias, np.dtype(config.dtype), rng=0)
    tensors, _ = load_checkpoint(file, expected=model.params)
    model.load_state_dict(tensors)
    return model, config


def schedule_report(model: SequenceModel, length: int, n: int = 500, seed: int = 12345) -> dict:
    """Accuracy of a schedule model on fresh timetables: overall, and on the steps whose input is
    "missed" (where only the model's own prediction for that day tells it what comes next)."""
    batch = sq.schedule(n, length, np.random.default_rng(seed), dtype=model.dtype)
    hit = model.forward(batch.xs).argmax(-1) == batch.ys
    missed = batch.xs[..., sq.MISSED] == 1
    return {"accuracy": float(hit.mean()), "accuracy_after_missed_day": float(hit[missed].mean()),
            "missed_days": int(missed.sum())}


# -- next-word generation --------------------------------------------------------------------------------
def generate_words(model: SequenceModel, prompt: str, max_words: int = 15, corpus: sq.WordCorpus = _CORPUS) -> str:
    """Greedy continuation of ``prompt`` (words of the corpus) until "." or ``max_words`` words."""
    words = prompt.split()
    if not words:
        raise UserError("generation needs a prompt of at least one word")
    ids = corpus.encode(words)
    eye = np.eye(corpus.vocab_size, dtype=model.dtype)
    state = None
    for i in ids:
        y, state = model.rnn.step(eye[i][None], state)
    out = list(words)
    while len(out) < max_words and out[-1] != ".":
        nxt = int(model.head.forward(y)[0].argmax())
        out.append(corpus.vocab_[nxt])
        y, state = model.rnn.step(eye[nxt][None], state)
    return " ".join(out)


# -- exploding gradients ------------------------------------------------------------------------------------
def exploding_demo(clip: float | None, steps: int = 300, length: int = 50, hidden_size: int = 32,
                   gain: float = 1.5, lr: float = 0.1, batch_size: int = 32, nonlinearity: str = "tanh",
                   seed: int = 0) -> dict:
    """Elman network whose recurrent weights have spectral radius ``gain`` (> 1), trained with plain SGD on
    the adding problem, with global-norm clipping at ``clip`` or without it (None).

    With tanh and a gain above 1 the forward pass stays bounded but the dynamics are chaotic: ||dh_T/dh_0||
    grows geometrically with T, and plain SGD steps make it worse, so without clipping the loss becomes
    non-finite within a few dozen steps (defaults: gain 1.5, lr 0.1, T=50, H=32). This uses its own
    loop because :func:`rnnkit.train.fit` would refuse the non-finite steps the demonstration is about. Returns
    ``{"loss": [...], "grad_norm": [...]}`` per step (norm before clipping); the run ends at the first
    non-finite loss or gradient (that value is recorded).
    """
    rng = np.random.default_rng(seed)
    model_rng, data_rng = rng.spawn(2)
    spec = TASKS["adding"]
    model = SequenceModel("elman", 2, hidden_size, 1, "last", rng=model_rng, nonlinearity=nonlinearity)
    W = model.params["rnn.l0.W_h"]  # rescaled in place to spectral radius `gain`
    W[...] = W * (gain / max(np.abs(np.linalg.eigvals(W.astype(np.float64))).max(), 1e-12))
    opt = SGD(model.params, lr=lr)
    losses, norms = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            batch = spec.make(batch_size, length, data_rng)
            model.zero_grad()
            out = model.forward(batch.xs, training=True)
            loss, dout = loss_and_grad(spec, out, batch)
            model.backward(dout)
            norm = clip_grad_norm(model.grads, clip) if clip else float(np.sqrt(sum(
                np.sum(np.square(g, dtype=np.float64)) for g in model.grads.values())))
            losses.append(float(loss))
            norms.append(float(norm))
            if not (np.isfinite(loss) and np.isfinite(norm)):
                break
            opt.step(model.grads)
    return {"loss": losses, "grad_norm": norms}
