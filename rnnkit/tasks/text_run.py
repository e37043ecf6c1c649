"""The bookkeeping of a text training run: evaluations, samples, checkpoints, metrics.csv, config.json.

``RunRecorder`` is a ``fit`` callback: every ``eval_every`` steps (or a tenth of the time budget) it measures
the validation loss in nats and bits per character, logs a short sample, appends to ``metrics.csv`` (then
calls ``on_metrics``, where the command layer redraws its plot) and saves a checkpoint (last N kept, plus the
best); once, it warns when the validation loss stops improving while the training loss still falls. ``TimeHorizon`` keeps the cosine schedule's end at the end of a time budget by re-estimating the
number of steps it allows.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from rnnkit import io
from rnnkit.train import Callback
from rnnkit.tasks.text_sampling import LN2, evaluate, generate

METRIC_FIELDS = ("kind", "step", "epoch", "minutes", "loss", "bits_per_char", "lr", "tokens_per_s")
TRAIN_ROW_EVERY = 10  # steps per "train" row of metrics.csv
MAX_EVAL_SHARE_RATIO = 9.0  # timed evaluations: at least 9 s of training per second of evaluation


class TimeHorizon(Callback):
    """Sets ``schedule.total_steps`` to the step count the remaining time allows, from the measured pace.

    The estimate includes the time evaluations take. With a step budget the horizon is fixed instead
    (and runs are bit-for-bit reproducible); with a time budget it depends on the machine's speed.
    """

    def __init__(self, schedule, cfg, step0: int, seconds0: float = 0.0):
        self.schedule, self.step0, self.seconds0 = schedule, step0, seconds0
        self.budget = cfg.minutes * 60.0
        self.t0 = time.perf_counter()

    def on_step(self, record):
        done = record["step"] - self.step0
        if done < 3:
            return None
        elapsed = time.perf_counter() - self.t0
        left = self.budget - self.seconds0 - elapsed
        self.schedule.total_steps = max(record["step"] + 1, int(record["step"] + left * done / max(elapsed, 1e-9)))
        return None


class RunRecorder(Callback):
    """Periodic evaluation + samples + checkpoints + metrics for one run (``out`` None: print only)."""

    def __init__(self, out, cfg, lm, val_ids, batcher, schedule, snapshot_meta, log, step0: int = 0,
                 seconds0: float = 0.0, on_metrics=None):
        self.out = None if out is None else Path(out)
        self.cfg, self.lm, self.val_ids, self.batcher = cfg, lm, val_ids, batcher
        self.schedule, self.snapshot_meta, self.log = schedule, snapshot_meta, log
        self.on_metrics = on_metrics
        self.step, self.step0, self.seconds0 = step0, step0, seconds0
        self.t0 = time.perf_counter()
        self.rows: list[dict] = []
        self.manager = None
        self.final_meta: dict = {}
        self.last_eval_step = step0 if step0 else None
        self.best = None
        self.overfit_warned = False
        self._acc, self._n = 0.0, 0
        self._row_t, self._eval_time = time.perf_counter(), 0.0
        self._eval_cost, self._eval_end = 0.0, seconds0  # duration and end (run seconds) of the last evaluation
        if cfg.eval_every:
            self.every, self.interval = cfg.eval_every, None
        elif cfg.steps is not None and cfg.minutes is None:
            self.every, self.interval = max(1, cfg.steps // 10), None
        else:
            self.every, self.interval = None, 60.0 * (cfg.eval_minutes or cfg.minutes / 10.0)
        self.next_time = None if self.interval is None else (math.floor(seconds0 / self.interval) + 1) * self.interval
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            self.manager = io.CheckpointManager(self.out, keep_last=cfg.keep_last)
            self.best = self.manager.best_metric
            self.rows = [r for r in self._read_rows() if int(r["step"]) <= step0]

    # -- files --------------------------------------------------------------------------------
    def _read_rows(self) -> list[dict]:
        path = self.out / "metrics.csv"
        if not path.exists():
            return []
        return io.read_metrics_csv(path, METRIC_FIELDS, numeric=("step", "loss"))

    def _write_files(self) -> None:
        if self.out is None:
            return
        import io as _io

        buf = _io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        io.atomic_write_text(self.out / "metrics.csv", buf.getvalue())
        if self.on_metrics is not None:
            self.on_metrics(self.rows, self.cfg)

    def describe(self, sources, n_chars, n_train, n_val) -> None:
        cfg, model = self.cfg, self.lm.model
        budget = " and ".join(b for b in (cfg.steps and f"{cfg.steps} steps", cfg.minutes and f"{cfg.minutes:g} min") if b)
        shown = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
        self.log(f"corpus: {shown}: {n_chars:,} characters, {len(self.lm.vocab)} distinct; "
                 f"train {n_train:,} / validation {n_val:,} (last {cfg.val_fraction:.0%})")
        self.log(f"model: {cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embedding {cfg.embedding_dim}, "
                 f"{model.num_params():,} parameters | batch {cfg.batch_size} streams x {cfg.seq_len} chars | "
                 f"Adam lr {cfg.lr:g} (warm-up {cfg.warmup_steps}, cosine to {cfg.min_lr:g}) | budget {budget}"
                 + (f" | run folder {self.out}" if self.out else ""))
        if self.out is not None and self.step == 0:
            info = {"config": cfg.to_dict(), "sources": list(sources), "corpus_chars": n_chars,
                    "train_chars": n_train, "val_chars": n_val, "vocab_size": len(self.lm.vocab),
                    "num_params": model.num_params(), "chunks_per_epoch": self.batcher.num_chunks}
            io.write_json(self.out / "config.json", info)

    # -- callback -------------------------------------------------------------------------------
    def seconds(self) -> float:
        return self.seconds0 + time.perf_counter() - self.t0

    def on_step(self, record):
        self.step = record["step"]
        self._acc += record["loss"]
        self._n += 1
        if self.step % TRAIN_ROW_EVERY == 0:
            now = time.perf_counter()
            dt = max(now - self._row_t - self._eval_time, 1e-9)
            loss = self._acc / self._n
            self.rows.append(self._row("train", loss, record["lr"], self._n * self.cfg.batch_size * self.cfg.seq_len / dt))
            self._acc, self._n, self._row_t, self._eval_time = 0.0, 0, now, 0.0
        # a timed evaluation also waits until training since the last one took 9x its cost: on a busy machine an
        # evaluation of the validation split can take longer than a minute of training (at most 10% of the time)
        due = (self.every is not None and self.step % self.every == 0) or \
              (self.next_time is not None and self.seconds() >= self.next_time
               and self.seconds() - self._eval_end >= MAX_EVAL_SHARE_RATIO * self._eval_cost)
        if due:
            self.evaluate()
        return None

    def _row(self, kind, loss, lr, tokens_per_s=None) -> dict:
        return {"kind": kind, "step": self.step, "epoch": round(self.step / self.batcher.num_chunks, 4),
                "minutes": round(self.seconds() / 60.0, 4), "loss": round(loss, 6),
                "bits_per_char": round(loss / LN2, 6), "lr": f"{lr:.6g}",
                "tokens_per_s": "" if tokens_per_s is None else round(tokens_per_s)}

    def evaluate(self, final: bool = False) -> dict:
        t = time.perf_counter()
        metrics = evaluate(self.lm, self.val_ids, max_chars=self.cfg.eval_chars)
        loss = metrics["loss"]
        self.rows.append(self._row("val", loss, self.schedule(max(self.step - 1, 0))))
        self.last_eval_step = self.step
        if self.interval is not None:  # the next multiple of the interval (a loop adding it could spin for hours)
            self.next_time = (math.floor(self.seconds() / self.interval) + 1) * self.interval
        epoch = self.step / self.batcher.num_chunks
        self.log(f"step {self.step:>6} | {self.seconds() / 60:5.1f} min | epoch {epoch:5.2f} | "
                 f"val {loss:.4f} nats/char ({loss / LN2:.3f} bits/char)")
        if self.cfg.sample_length and not final:
            sample = generate(self.lm, length=self.cfg.sample_length, temperature=self.cfg.sample_temperature,
                              seed=self.cfg.seed + self.step)[0]
            self.log("  | " + sample.replace("\n", "\n  | "))
        self.save(loss)
        self._warn_overfit()
        self._eval_cost = time.perf_counter() - t
        self._eval_time += self._eval_cost
        self._eval_end = self.seconds()
        return metrics

    def best_eval(self) -> tuple[int, float] | None:
        """(step, validation loss) of the best evaluation in metrics.csv so far (the first of equal ones)."""
        vals = [(int(r["step"]), float(r["loss"])) for r in self.rows if r["kind"] == "val"]
        return min(vals, key=lambda sv: (sv[1], sv[0])) if vals else None

    def _warn_overfit(self) -> None:
        """Once: the last two validation losses are no better than the best before them while the training loss
        kept falling (one bump is common noise: the main job's run had one and then improved again).

        The training loss of an evaluation is the mean of the "train" rows since the evaluation before it.
        """
        if self.overfit_warned:
            return
        evals, train_sum, train_n, prev_step = [], 0.0, 0, None
        for r in self.rows:
            if r["kind"] == "train":
                train_sum, train_n = train_sum + float(r["loss"]), train_n + 1
            elif r["kind"] == "val":
                if train_n and int(r["step"]) != prev_step:
                    evals.append((int(r["step"]), float(r["loss"]), train_sum / train_n))
                train_sum, train_n, prev_step = 0.0, 0, int(r["step"])
        if len(evals) < 3:
            return
        step, val, train = evals[-1]
        best_step, best_val, best_train = min(evals[:-2], key=lambda e: e[1])
        if min(val, evals[-2][1]) >= best_val and train < best_train:
            self.overfit_warned = True
            self.log(f"warning: overfitting from step {best_step} on: validation loss {val:.4f} at step {step} is "
                     f"no better than {best_val:.4f} at step {best_step}, while the training loss fell from "
                     f"{best_train:.4f} to {train:.4f}. The best checkpoint (step {best_step}) is kept and used by "
                     "generate and evaluate; more --dropout, a smaller model or a shorter budget would help.")

    def save(self, val_loss) -> None:
        if self.manager is None:
            return
        tensors, meta = self.snapshot_meta()
        meta.update(train_seconds=self.seconds(), val_loss=val_loss)
        self.manager.save(self.step, tensors, meta, metric=val_loss)
        self.best = self.manager.best_metric
        self._write_files()

    def finish(self, history, interrupted: bool = False) -> None:
        if self.last_eval_step != self.step:
            metrics = self.evaluate(final=True)
        else:
            metrics = {"loss": float(self.rows[-1]["loss"])} if self.rows else {"loss": float("nan")}
        loss = metrics["loss"]
        best = self.best_eval()
        self.final_meta = {"step": self.step, "val_loss": loss, "train_seconds": self.seconds(),
                           "stop_reason": "interrupted" if interrupted else history.stop_reason,
                           "trained_steps": self.step - self.step0,
                           "best_step": best[0] if best else None, "best_val_loss": best[1] if best else None}
        if interrupted:
            where = f"rnnkit text train --resume {self.out}" if self.out else "(no run folder: nothing saved)"
            self.log(f"interrupted at step {self.step}: checkpoint saved; continue with {where}")
        self.log(f"done: {self.step} steps in {self.seconds() / 60:.1f} min, validation loss {loss:.4f} nats/char "
                 f"({loss / LN2:.3f} bits/char)" + (f"; best {best[1]:.4f} at step {best[0]}" if best else ""))
