"""The driver of a data-parallel text run: ``TextGroup`` starts one Ray actor per worker, hands each a
contiguous block of the B training streams (rows) with their carried state, and plugs into ``fit`` as its
``train_step`` (gather the workers' gradients, average them weighted by tokens) and a callback (after fit has
clipped and applied the step, put that exact gradient in the object store for every worker to apply).

One exchange per optimizer step: each worker's ``step`` call carries the previous update (one ``ray.put``,
read zero-copy by every worker) and returns its gradient as one flat NumPy array. The driver keeps the
reference weights, so evaluation, samples and checkpoints (same run folder format) stay where they were.
"""
from __future__ import annotations

import math
import time

import numpy as np

from rnnkit import io
from rnnkit.distributed.cluster import connect
from rnnkit.distributed.worker import TextWorker, flat_views, flatten
from rnnkit.errors import UserError
from rnnkit.train import Callback


class WorkerLost(UserError):
    """A worker process or its node died: the run stops, the last checkpoint is left as it was."""


def _split_rows(B: int, n: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal blocks of ``range(B)``: worker k owns streams ``[r0, r1)``."""
    edges = np.linspace(0, B, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class TextGroup(Callback):
    """``cfg.workers`` Ray actors training ``model`` together; ``state`` is the carried state (n, B, H)s.

    Use ``train_step`` as fit's train_step and the group itself as the first callback; ``state()`` gathers
    the carried state for a checkpoint; ``close()`` ends the actors (and Ray, if this group started it).
    ``stats`` sums, over steps, the driver's wall time in ``train_step``, the slowest worker's compute time
    and the time to publish each update: the exchange figure of benchmarks/scale.py.
    """

    def __init__(self, cfg, model, optimizer, batcher, state: tuple, *, step0: int = 0, out=None, log=None):
        N, B = int(cfg.workers), int(cfg.batch_size)
        if N > B:
            raise UserError(f"--workers {N} is more than the {B} streams of a batch (--batch-size); each worker "
                            "needs at least one stream")
        self.model, self.optimizer, self.out, self.step = model, optimizer, out, int(step0)
        self.cluster = connect(N, cfg.ray_address)
        ray = self.ray = self.cluster.ray
        self.rows = _split_rows(B, N)
        self.actors, self.infos = [], []
        self.stats = {"steps": 0, "wall": 0.0, "compute": 0.0, "put": 0.0}
        self._applied = None   # (object ref of the applied gradient, lr) set by on_step
        self._computed = False  # a step was computed and not yet known to be applied
        self._last_loss = 0.0
        try:
            Actor = ray.remote(num_cpus=1, max_restarts=0)(TextWorker)
            xs, ys = batcher.xs_, batcher.ys_
            for rank, (r0, r1) in enumerate(self.rows):
                self.actors.append(Actor.remote(rank, model.vocab_size, model.arch(), ray.put(xs[r0:r1]),
                                                ray.put(ys[r0:r1]), cfg.seq_len, cfg.lr, cfg.weight_decay,
                                                cfg.seed, cfg.threads))
            self._sync(state)
            self.infos = self._get([a.info.remote() for a in self.actors], "starting")
        except BaseException:
            self.close()
            raise
        if log is not None:
            log(f"data-parallel: {N} Ray workers, {model.num_params():,} parameters "
                f"({model.num_params() * model.dtype.itemsize / 1e6:.2f} MB each way per step); "
                + "; ".join(f"worker {i['rank']} pid {i['pid']} on {i['host']} streams {r0}-{r1 - 1}"
                            for i, (r0, r1) in zip(self.infos, self.rows)))

    # -- exchange ---------------------------------------------------------------------------
    def _sync(self, state: tuple | None) -> None:
        """Send the driver's weights and optimizer state (and, if given, each worker's rows of ``state``)."""
        arrays, scalars = self.optimizer.state_dict()
        params_ref = self.ray.put(flatten(self.model.params))
        optim_ref = self.ray.put(flatten(arrays))
        for a, (r0, r1) in zip(self.actors, self.rows):
            rows = None if state is None else tuple(np.ascontiguousarray(s[:, r0:r1]) for s in state)
            a.sync.remote(params_ref, optim_ref, scalars, rows)  # actor calls run in order: before the next step

    def _get(self, refs, doing: str):
        ray = self.ray
        out = []
        for rank, ref in enumerate(refs):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:  # a Python error inside the worker: show it as is
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else exc) from None
            except ray.exceptions.RayError as exc:  # the process or its node is gone
                self._lost(rank, doing, exc)
        return out

    def _lost(self, rank: int, doing: str, exc) -> None:
        info = self.infos[rank] if rank < len(self.infos) else {}
        who = f"worker {rank} of {len(self.actors)}" + (f" (pid {info['pid']} on {info['host']})" if info else "")
        ckpt = None
        if self.out is not None:
            try:
                ckpt = io.resolve_checkpoint(self.out, prefer="latest")
            except UserError:
                pass
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = (f"the last checkpoint, {ckpt}, is intact: continue with `rnnkit text train --resume {self.out} "
                 f"--workers N` (it restarts from that step and recomputes the steps after it exactly)"
                 if ckpt is not None else "no checkpoint had been written yet")
        self.close()
        raise WorkerLost(f"{who} died while {doing} (step {self.step + 1}): {type(exc).__name__}: {first}. "
                         f"Training stopped; {where}")

    def train_step(self, batch) -> float:
        """fit's train_step: every worker's gradient for this step, averaged into ``model.grads``."""
        t0 = time.perf_counter()
        update, lr, reset = None, 0.0, False
        if self._applied is not None:
            update, lr = self._applied
        elif self._computed:  # fit skipped the last step (non-finite) and may have restored an older state
            self._sync(None)
            reset = not math.isfinite(self._last_loss)  # as the one-process run resets its carried state
        self._applied, self._computed = None, True
        refs = [a.step.remote(self.step, update, lr, reset) for a in self.actors]
        results = self._get(refs, "computing a step")
        total = sum(n for _, _, n, _ in results)
        avg = results[0][0] * (results[0][2] / total)
        for g, _, n, _ in results[1:]:
            avg += g * (n / total)
        for k, g in flat_views(avg, self.model.grads).items():
            self.model.grads[k] += g
        loss = sum(l * (n / total) for _, l, n, _ in results)
        self.step += 1
        self._last_loss = loss
        self.stats["steps"] += 1
        self.stats["wall"] += time.perf_counter() - t0
        self.stats["compute"] += max(s for _, _, _, s in results)
        return loss

    def on_step(self, record):
        """After fit clipped and applied the step: that exact gradient is the workers' next update."""
        t0 = time.perf_counter()
        self._applied = (self.ray.put(flatten(self.model.grads)), self.optimizer.lr)
        self.stats["put"] += time.perf_counter() - t0
        return None

    def state(self) -> tuple:
        """The carried state of all B streams, (n, B, H) each, as a one-process run holds it."""
        parts = self._get([a.get_state.remote() for a in self.actors], "sending its state for a checkpoint")
        return tuple(np.concatenate([p[i] for p in parts], axis=1) for i in range(len(parts[0])))

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # already dead
                pass
        self.actors = []
        self.cluster.close()
