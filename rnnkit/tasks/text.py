"""Character-level language modelling: train a CharRNN on any text, then load, generate, evaluate, score.

    from rnnkit.tasks import text
    lm = text.train("book.txt", text.TextConfig(minutes=5), out="runs/book", log=print)  # None: built-in corpus
    print(text.generate(lm, prime="The ", length=200, temperature=0.8)[0])
    print(text.evaluate(lm, open("other.txt").read())["bits_per_char"])
    lm = text.load("runs/book")                                                  # best checkpoint

Training follows char-rnn: B parallel streams over the training split, truncated BPTT with the hidden state
carried from chunk to chunk, Adam with a warm-up + cosine learning rate whose horizon follows the time
budget, global-norm clipping. Everything a run needs to continue exactly (weights, optimizer moments, step,
schedule, RNG state, carried state; the data position is a function of the step) is in each checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rnnkit import io
from rnnkit.data.text import DEFAULT_SEPARATOR, CharVocab, StreamBatcher, read_texts, split_ids
from rnnkit.errors import UserError
from rnnkit.nn.losses import softmax_cross_entropy
from rnnkit.nn.optim import Adam, CosineWarmupLR
from rnnkit.tasks.text_model import (
    ARCH_KEYS, CharRNN, LanguageModel, build_model, load_model_tensors, model_from_checkpoint, model_tensors,
)
from rnnkit.tasks import text_checks
from rnnkit.tasks.text_run import RunRecorder, TimeHorizon
from rnnkit.tasks.text_sampling import DEFAULT_TEMPERATURE, evaluate, generate, score
from rnnkit.tasks.text_corpus import corpus_fingerprint, training_texts
from rnnkit.tasks.text_spelling import CharNGram, spelling
from rnnkit.train import Callback, StopTraining, fit

__all__ = ["TextConfig", "train", "load", "generate", "evaluate", "score", "LanguageModel", "CharRNN",
           "DEFAULT_MINUTES",
           "DEFAULT_TEMPERATURE", "spelling", "training_texts", "CharNGram"]

WARMUP_CHARS = 512  # training text stored with the model and read before sampling

DEFAULT_MINUTES = 3.0
"""Budget when neither ``minutes`` nor ``steps`` is given (the README's first run)."""


@dataclass
class TextConfig:
    """Every setting of a text run. Defaults were chosen by measurement (see benchmarks/charlm.py)."""

    # model
    cell: str = "gru"               # gru | lstm | elman | jordan (GRU: best in 10-minute trials)
    hidden_size: int = 512          # 2x512 + dropout: the 1x384 of earlier versions overfit at full speed
    num_layers: int = 2
    embedding_dim: int = 64
    dropout: float = 0.25           # between stacked layers and before the output layer
    dtype: str = "float32"
    # data
    batch_size: int = 32            # parallel streams
    seq_len: int = 64               # characters per chunk (truncated BPTT length)
    val_fraction: float = 0.1       # the last 10% of the corpus validates
    separator: str = DEFAULT_SEPARATOR
    replace_bad_bytes: bool = False
    # optimisation
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    clip: float = 5.0
    # budget: the first reached stops; neither given -> DEFAULT_MINUTES
    steps: int | None = None
    minutes: float | None = None
    # evaluation, samples, checkpoints
    eval_every: int | None = None   # steps; None: every eval_minutes, or 10 evaluations over the budget
    eval_minutes: float | None = None  # with a time budget and no eval_every (None: a tenth of the budget)
    eval_chars: int | None = 200_000  # validation characters read at each evaluation (None: all)
    sample_length: int = 200
    sample_temperature: float = DEFAULT_TEMPERATURE
    keep_last: int = 3
    seed: int = 0
    threads: int | None = None      # the recurrent layers' threads= (team and BLAS inside them); None: automatic
    # data-parallel training on Ray (rnnkit.distributed): runtime settings, taken from the caller on resume
    workers: int = 1                # > 1: the batch's streams split over this many Ray workers
    ray_address: str | None = None  # join this Ray cluster (None: start a local one when workers > 1)

    def arch(self) -> dict:
        return {k: getattr(self, k) for k in ARCH_KEYS}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TextConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def check(self) -> None:
        for name in ("batch_size", "seq_len", "keep_last", "sample_length"):
            if getattr(self, name) < (0 if name == "sample_length" else 1):
                raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"--steps must be at least 1, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise UserError(f"--minutes must be positive, got {self.minutes}")
        for name in ("lr", "min_lr", "weight_decay", "clip", "dropout", "val_fraction", "sample_temperature",
                     "minutes", "eval_minutes"):  # NaN passes every comparison below; inf never ends
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise UserError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.eval_minutes is not None and not self.eval_minutes > 0:
            raise UserError(f"--eval-minutes must be positive, got {self.eval_minutes}")
        for name in ("hidden_size", "num_layers", "embedding_dim", "eval_chars"):
            value = getattr(self, name)
            if value is not None and value < (2 if name == "eval_chars" else 1):
                raise UserError(f"--{name.replace('_', '-')} must be at least {2 if name == 'eval_chars' else 1}, "
                                f"got {value}")
        if self.weight_decay < 0 or self.clip < 0 or self.warmup_steps < 0 or self.seed < 0:
            raise UserError("--weight-decay, --clip, --warmup-steps and --seed cannot be negative, got "
                            f"{self.weight_decay}, {self.clip}, {self.warmup_steps}, {self.seed}")
        if not 0 <= self.dropout < 1 or not 0 <= self.val_fraction < 1 or self.sample_temperature < 0:
            raise UserError(f"need 0 <= --dropout < 1 (got {self.dropout}), 0 <= --val-fraction < 1 (got "
                            f"{self.val_fraction}) and a temperature >= 0 (got {self.sample_temperature})")
        if self.cell not in ("gru", "lstm", "elman", "jordan") or self.dtype not in ("float32", "float64"):
            raise UserError(f"--cell must be gru, lstm, elman or jordan and --dtype float32 or float64, got "
                            f"{self.cell!r} and {self.dtype!r}")
        from rnnkit.limits import check_memory, recurrent_bytes

        need = recurrent_bytes(self.hidden_size, self.num_layers, self.embedding_dim, self.batch_size,
                               self.seq_len, gates=4, itemsize=8 if self.dtype == "float64" else 4)
        check_memory(need, f"--hidden-size {self.hidden_size} with --num-layers {self.num_layers}, --batch-size "
                           f"{self.batch_size} and --seq-len {self.seq_len}", "lower them")
        if self.eval_every is not None and self.eval_every < 1:
            raise UserError(f"--eval-every must be at least 1, got {self.eval_every}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 or self.ray_address:
            from rnnkit.distributed import require_ray
            require_ray(f"--workers {self.workers}")


def _load_corpus(data, text, cfg: TextConfig, vocab: CharVocab | None):
    """(ids, vocab, sources): read files (or the built-in corpus, or ``text``) and encode them."""
    if text is not None:
        corpus, sources = text, ["<text given in Python>"]
        if not corpus:
            raise UserError("the text to train on is empty")
    else:
        errors = "replace" if cfg.replace_bad_bytes else "strict"
        corpus, sources = read_texts(data, errors=errors, separator=cfg.separator)
    if vocab is None:
        vocab = CharVocab.from_text(corpus)
        ids = vocab.encode(corpus, check=False)
    else:
        ids = vocab.encode(corpus, what="training text (the checkpoint's vocabulary)")
    return ids, vocab, sources


class _StopWhen(Callback):
    """Ends training after the current step once ``stop()`` is true (the command layer maps Ctrl-C to it)."""

    def __init__(self, stop: Callable[[], bool] | None):
        self.stop = stop
        self.requested = False

    def on_step(self, record):
        if self.stop is not None and self.stop():
            self.requested = True
            raise StopTraining


def train(data=None, config: TextConfig | None = None, out: str | os.PathLike | None = None, *,
          text: str | None = None, resume: str | os.PathLike | None = None,
          init_from: str | os.PathLike | None = None, progress: bool = True, log: Callable[[str], None] | None = None,
          callbacks=(), stop: Callable[[], bool] | None = None,
          on_metrics: Callable[[list, TextConfig], None] | None = None) -> LanguageModel:
    """Train a character model and return it (a :class:`LanguageModel`, ``.history`` holds the log).

    The returned weights are the final ones (what ``resume`` continues from); ``meta["best_step"]`` and
    ``meta["best_val_loss"]`` name the best evaluation, whose weights ``load(out)`` returns.

    data: a file, folder or glob, or a list of them; None (and no ``text``): the built-in corpus.
    text: train on this string instead of files. config: a :class:`TextConfig` (defaults if None).
    out: run folder for config.json, metrics.csv and checkpoints (None: nothing written). resume: a run
        folder to continue exactly where its latest checkpoint stopped (its config and data are reused).
        Without a budget in ``config`` the run finishes its own budget; ``config.steps`` / ``config.minutes``
        train that many steps / minutes MORE (added to what the run already spent). With nothing left to do
        the run's latest model is returned untrained (``meta["trained_steps"] == 0``).
        init_from: a checkpoint or run folder whose weights start a new run (architecture and vocabulary come
        from it; step, optimizer and schedule start from zero).
    log: a callable that takes each line of text (e.g. ``print``; with a progress bar ``tqdm.write``); None:
        silent. progress: fit's progress bar. stop: polled after every step; once it returns True the run
        evaluates, saves a checkpoint and returns (if it is already True before training starts,
        KeyboardInterrupt is raised); ``with rnnkit.commands.interrupt.GracefulStop() as stop:`` maps
        Ctrl-C to it. on_metrics(rows, config): called after each write of metrics.csv (``rnnkit text train``
        redraws learning_curves.png there). The recurrent layers compute with ``config.threads``
        (``rnnkit --threads``); elsewhere BLAS threads are left as the caller set them.
    """
    if log is None:
        def log(line: str) -> None:
            pass
    if resume is not None and init_from is not None:
        raise UserError("--resume continues a run and --init-from starts a new one from weights: give one")
    start_meta, start_tensors, vocab = None, None, None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = io.resolve_checkpoint(run_dir, prefer="latest")
        lm0, start_tensors, start_meta = model_from_checkpoint(ckpt)
        text_checks.resume_meta(ckpt, start_meta)  # all --resume needs, checked before a step is trained
        cfg = TextConfig.from_dict(text_checks.config(ckpt, start_meta["config"], start_meta["arch"], TextConfig))
        spent_steps, spent_minutes = int(start_meta["step"]), float(start_meta["train_seconds"]) / 60.0
        added = config is not None and (config.steps is not None or config.minutes is not None)
        if config is not None:  # only the budget may change when resuming
            config.check()
            cfg.workers, cfg.ray_address = config.workers, config.ray_address
        if added:  # "train N more steps / M more minutes": a new budget, counted from where the run stands
            cfg.steps = None if config.steps is None else spent_steps + config.steps
            cfg.minutes = None if config.minutes is None else spent_minutes + config.minutes
        vocab = lm0.vocab
        data = start_meta.get("data")
        if start_meta.get("text_fingerprint") and text is None:
            raise UserError(f"run {run_dir} was trained on text given in Python; pass the same text= to resume")
        out = run_dir if out is None else out
        total = " and ".join(b for b in (cfg.steps and f"{cfg.steps} steps", cfg.minutes and f"{cfg.minutes:.2f} min")
                             if b)
        more = " and ".join(b for b in (config.steps and f"{config.steps} more steps",
                                        config.minutes and f"{config.minutes:g} more minutes") if b) if added else ""
        log(f"resuming {ckpt} at step {spent_steps} ({spent_minutes:.2f} min trained): "
            + (f"training {more} (added to what the run already spent; {total} in all)" if added
               else f"finishing the run's budget ({total} in all; --steps/--minutes would add more)"))
        left = [f"{cfg.steps} steps"] if cfg.steps is not None and spent_steps >= cfg.steps else []
        left += [f"{cfg.minutes:.2f} min"] if cfg.minutes is not None and spent_minutes >= cfg.minutes else []
        if left:  # nothing to train: the caller gets the run's latest model, unchanged
            log(f"nothing to do: run {run_dir} has already trained its budget ({left[0]}); give --minutes M or "
                "--steps N to train M minutes or N steps more")
            from rnnkit.train import History

            lm0.history, lm0.rows = History(), []
            lm0.meta = dict(start_meta, trained_steps=0)
            return lm0
    else:
        cfg = dataclasses.replace(config) if config is not None else TextConfig()
    if cfg.steps is None and cfg.minutes is None:
        cfg.minutes = DEFAULT_MINUTES
    cfg.check()

    init_lm = None
    if init_from is not None:
        ckpt = io.resolve_checkpoint(init_from, prefer="best")
        init_lm, _, init_meta = model_from_checkpoint(ckpt)
        arch = init_lm.model.arch()
        changed = {k: (getattr(cfg, k), v) for k, v in arch.items() if getattr(cfg, k) != v}
        for k, v in arch.items():
            setattr(cfg, k, v)
        vocab = init_lm.vocab
        log(f"fine-tuning from {ckpt} (trained {init_meta.get('step', '?')} steps): weights loaded; step, "
            f"optimizer moments and learning-rate schedule start from zero"
            + (f"; architecture taken from the checkpoint ({', '.join(f'{k}={b}' for k, (a, b) in changed.items())})"
               if changed else ""))

    ids, vocab, sources = _load_corpus(data, text, cfg, vocab)
    fingerprint = corpus_fingerprint(ids)
    if start_meta is not None and start_meta.get("corpus") != fingerprint:
        raise UserError(f"the corpus ({', '.join(map(str, sources))}) differs from the one run {resume} was trained "
                        "on; an exact resume needs the same data (use --init-from to fine-tune on new text)")
    train_ids, val_ids = split_ids(ids, cfg.val_fraction)
    batcher = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len)
    if len(val_ids) < 2:
        raise UserError(f"the validation split has {len(val_ids)} character(s) of {len(ids):,}; it needs at least 2: "
                        f"raise --val-fraction (now {cfg.val_fraction}) or give more text")

    rng = np.random.default_rng(cfg.seed)
    model = build_model(len(vocab), cfg.arch(), rng=rng, threads=cfg.threads)
    if init_lm is not None:
        load_model_tensors(model, model_tensors(init_lm.model))
    optimizer = Adam(model.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    horizon = cfg.steps if cfg.steps is not None else None
    schedule = CosineWarmupLR(cfg.lr, min(cfg.warmup_steps, horizon or cfg.warmup_steps),
                              horizon or 10**9, min_lr=cfg.min_lr)
    carry = {"state": model.initial_state(cfg.batch_size)}
    step0, seconds0 = 0, 0.0
    if start_meta is not None:
        text_checks.resume_tensors(ckpt, start_tensors, optimizer, carry["state"])
        load_model_tensors(model, start_tensors)
        optim_arrays = {k[len("optim."):]: v for k, v in start_tensors.items() if k.startswith("optim.")}
        optimizer.load_state_dict(optim_arrays, start_meta["optim"])
        rng.bit_generator.state = start_meta["rng"]
        carry["state"] = tuple(start_tensors[f"state.{i}"] for i in range(len(carry["state"])))
        step0, seconds0 = int(start_meta["step"]), float(start_meta["train_seconds"])
        if cfg.steps is None:
            schedule.total_steps = int(start_meta["schedule_total"])
    model.rnn._check_state(carry["state"], cfg.batch_size)

    warmup = vocab.decode(train_ids[-WARMUP_CHARS:])  # read before sampling: see text_sampling._warm_text

    def snapshot_meta() -> tuple[dict, dict]:
        arrays, scalars = optimizer.state_dict()
        tensors = model_tensors(model)
        tensors.update({f"optim.{k}": v for k, v in arrays.items()})
        tensors.update({f"state.{i}": s for i, s in enumerate(group.state() if group else carry["state"])})
        meta = {"kind": "rnnkit-text", "config": cfg.to_dict(), "arch": model.arch(), "vocab": vocab.chars,
                "optim": scalars, "rng": rng.bit_generator.state, "schedule_total": schedule.total_steps,
                "corpus": fingerprint, "data": None if text is not None else _data_spec(data),
                "text_fingerprint": fingerprint if text is not None else None, "sources": sources,
                "warmup": warmup}
        return tensors, meta

    def train_step(batch):
        xs, ys, reset = batch
        if reset:
            carry["state"] = model.initial_state(cfg.batch_size)
        logits, state = model.forward(xs, carry["state"], training=True)
        loss, dlogits = softmax_cross_entropy(logits, ys)
        model.backward(dlogits)
        # a non-finite step is undone by fit; its state must not leak into the next chunk either
        carry["state"] = state if math.isfinite(loss) else model.initial_state(cfg.batch_size)
        return loss

    if out is not None:  # a full disk is said now, not after the first minutes of training
        io.check_room(out, io.checkpoint_bytes(model.num_params(), np.dtype(cfg.dtype).itemsize))
    if stop is not None and stop():
        raise KeyboardInterrupt  # stopped before anything was trained: nothing to save
    group = None
    if cfg.workers > 1 or cfg.ray_address:  # data-parallel: Ray workers own the streams and their state
        from rnnkit.distributed.driver import TextGroup
        group = TextGroup(cfg, model, optimizer, batcher, carry["state"], step0=step0, out=out, log=log)
        train_step = group.train_step
    lm = LanguageModel(model, vocab, {"warmup": warmup})
    recorder = RunRecorder(out, cfg, lm, val_ids, batcher, schedule, snapshot_meta, log,
                           step0=step0, seconds0=seconds0, on_metrics=on_metrics)
    recorder.describe(sources, len(ids), len(train_ids), len(val_ids))
    time_horizon = TimeHorizon(schedule, cfg, step0, seconds0) if cfg.steps is None else None
    remaining_steps = None if cfg.steps is None else max(0, cfg.steps - step0)
    remaining_minutes = None if cfg.minutes is None else max(1e-6, cfg.minutes - seconds0 / 60.0)
    extra = [c for c in (time_horizon, recorder) if c is not None] + list(callbacks)
    interrupt = _StopWhen(stop)
    try:
        history = fit(model, optimizer, train_step, batcher.batch, steps=remaining_steps, minutes=remaining_minutes,
                      clip=cfg.clip, schedule=schedule, callbacks=[c for c in (group,) if c] + extra + [interrupt],
                      tokens_per_step=cfg.batch_size * cfg.seq_len, progress=progress, log=log,
                      start_step=step0, log_every=10, snapshot_every=50)
        recorder.finish(history, interrupted=interrupt.requested)
    finally:
        if group is not None:
            group.close()
    lm.history = history  # fit's log
    lm.rows = recorder.rows  # the rows of metrics.csv (train every 10 steps, val at each evaluation)
    lm.meta = dict(recorder.final_meta, warmup=warmup)
    return lm


def _data_spec(data):
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        return [os.path.abspath(os.fspath(data))]
    return [os.path.abspath(os.fspath(d)) for d in data]


def load(path: str | os.PathLike, prefer: str = "best") -> LanguageModel:
    """A trained model from a run folder (its best checkpoint by validation loss, or ``prefer="latest"``)
    or a checkpoint file."""
    ckpt = io.resolve_checkpoint(path, prefer=prefer)
    lm, _, meta = model_from_checkpoint(ckpt)
    if meta.get("config") is not None:  # read by the view and --spelling: typed like --resume needs it
        text_checks.config(ckpt, meta["config"], meta.get("arch"), TextConfig)
    return lm
