"""Data parallelism for any ``fit()`` loop: ``fit(..., parallel=DataParallel(N))`` ships the model, its
optimizer and the task's ``train_step`` to N Ray actors once, splits every batch along its first axis (an
array, or a tuple/list of arrays; None entries are passed to every worker), averages the gradients weighted
by the rows of each share, and hands each worker the exact update the driver applied at its next step.
Buffers (``model.buffers()``: BatchNorm's running statistics) follow worker 0, as in PyTorch's DDP.
Text training has its own group (``driver.TextGroup``): its streams and their state stay on the workers.
"""
from __future__ import annotations

import time

import numpy as np

from rnnkit.distributed.cluster import connect
from rnnkit.distributed.worker import flat_views, flatten
from rnnkit.errors import UserError
from rnnkit.train import Callback


def split_batch(batch, n: int) -> list:
    """``n`` contiguous shares of ``batch`` along axis 0 (some may be empty when the batch is small)."""
    if isinstance(batch, np.ndarray):
        return np.array_split(batch, n)
    if isinstance(batch, (tuple, list)):
        parts = [split_batch(b, n) if b is not None else [None] * n for b in batch]
        return [type(batch)(p[i] for p in parts) for i in range(n)]
    raise UserError(f"data-parallel training splits batches that are arrays or tuples of arrays; got "
                    f"{type(batch).__name__}")


def _rows(share) -> int:
    if isinstance(share, np.ndarray):
        return int(share.shape[0])
    return next((_rows(s) for s in share if s is not None), 0)


def _buffers(model) -> dict:
    """The model's live buffers by name: ``model.buffers()`` (ClassifierNet) or a ``buffers`` dict (BatchNorm)."""
    b = getattr(model, "buffers", None)
    b = b() if callable(b) else b
    return b if isinstance(b, dict) else {}


class FitWorker:
    """A replica of (model, optimizer, train_step); each ``step`` applies the last update, then computes."""

    def __init__(self, rank: int, payload: bytes, threads: int = 1):
        from ray import cloudpickle
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
        self.rank = rank
        # one payload, so the layers train_step closes over are the layers of self.model
        self.model, self.optimizer, self.train_step = cloudpickle.loads(payload)

    def info(self) -> dict:
        import os
        import socket
        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname()}

    def sync(self, params: np.ndarray, optim_arrays: np.ndarray, optim_scalars: dict) -> None:
        for k, v in flat_views(params, self.model.params).items():
            self.model.params[k][...] = v
        arrays, _ = self.optimizer.state_dict()
        self.optimizer.load_state_dict(flat_views(optim_arrays, arrays), optim_scalars)

    def step(self, update, lr: float, share):
        t0 = time.perf_counter()
        if update is not None:
            self.optimizer.lr = lr
            self.optimizer.step(flat_views(update, self.model.grads))
        self.model.zero_grad()
        rows = 0 if share is None else _rows(share)
        loss, extras = 0.0, {}
        if rows:
            out = self.train_step(share)
            extras = dict(out) if isinstance(out, dict) else {"loss": out}
            loss = float(extras.pop("loss"))
        buffers = {k: v.copy() for k, v in _buffers(self.model).items()} if self.rank == 0 else None
        return flatten(self.model.grads), loss, rows, {k: float(v) for k, v in extras.items()}, buffers, \
            time.perf_counter() - t0


class DataParallel(Callback):
    """``workers`` Ray actors for one ``fit`` call (``address``: a Ray cluster to join; None: local Ray)."""

    def __init__(self, workers: int, address: str | None = None, threads: int = 1, log=None):
        if int(workers) < 1:
            raise UserError(f"workers must be at least 1, got {workers}")
        self.workers, self.address, self.threads, self.log = int(workers), address, int(threads), log
        self.actors, self.infos, self.cluster = [], [], None
        self.stats = {"steps": 0, "wall": 0.0, "compute": 0.0}

    def attach(self, model, optimizer, train_step):
        """Start the actors with copies of model, optimizer and train_step; returns fit's train_step."""
        self.model, self.optimizer = model, optimizer
        self.cluster = connect(self.workers, self.address)
        ray = self.ray = self.cluster.ray
        self._applied, self._computed, self.step_no = None, False, 0
        try:
            Actor = ray.remote(num_cpus=1, max_restarts=0)(FitWorker)
            # Ray's own codec, in-band: arrays arrive writable (the object store's zero-copy views are
            # read-only), and the closure's layers stay the model's layers. Only between processes, never a file.
            payload = ray.put(ray.cloudpickle.dumps((model, optimizer, train_step)))
            self.actors = [Actor.remote(rank, payload, self.threads) for rank in range(self.workers)]
            self._sync()
            self.infos = self._get([a.info.remote() for a in self.actors], "starting")
        except BaseException:
            self.close()
            raise
        if self.log is not None:
            self.log(f"data-parallel: {self.workers} Ray workers, {model.num_params():,} parameters; "
                     + "; ".join(f"worker {i['rank']} pid {i['pid']} on {i['host']}" for i in self.infos))
        return self.train_step

    def _sync(self) -> None:
        arrays, scalars = self.optimizer.state_dict()
        p, o = self.ray.put(flatten(self.model.params)), self.ray.put(flatten(arrays))
        for a in self.actors:
            a.sync.remote(p, o, scalars)

    def _get(self, refs, doing: str):
        ray, out = self.ray, []
        for rank, ref in enumerate(refs):
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else exc) from None
            except ray.exceptions.RayError as exc:
                info = self.infos[rank] if rank < len(self.infos) else {}
                who = f"worker {rank} of {len(self.actors)}" + (f" (pid {info['pid']} on {info['host']})"
                                                                 if info else "")
                self.close()
                raise UserError(f"{who} died while {doing} (step {self.step_no + 1}): {type(exc).__name__}; "
                                "training stopped, the model holds the weights of the last applied step") from None
        return out

    def train_step(self, batch):
        t0 = time.perf_counter()
        update, lr = (None, 0.0) if self._applied is None else self._applied
        if self._applied is None and self._computed:  # fit skipped a non-finite step and may have restored
            self._sync()
        self._applied, self._computed = None, True
        shares = split_batch(batch, self.workers)
        refs = [a.step.remote(update, lr, s) for a, s in zip(self.actors, shares)]
        results = self._get(refs, "computing a step")
        total = sum(r[2] for r in results)
        avg = np.zeros_like(results[0][0])
        for g, _, n, _, _, _ in results:
            if n:
                avg += g * (n / total)
        for k, g in flat_views(avg, self.model.grads).items():
            self.model.grads[k] += g
        out = {"loss": sum(l * (n / total) for _, l, n, _, _, _ in results if n)}
        for key in results[0][3]:
            out[key] = sum(e[key] * (n / total) for _, _, n, e, _, _ in results if n and key in e)
        live = _buffers(self.model)
        for k, v in (results[0][4] or {}).items():  # running statistics follow worker 0, in place
            live[k][...] = v
        self.step_no += 1
        self.stats["steps"] += 1
        self.stats["wall"] += time.perf_counter() - t0
        self.stats["compute"] += max(r[5] for r in results)
        return out if len(out) > 1 else out["loss"]

    def on_step(self, record):
        self._applied = (self.ray.put(flatten(self.model.grads)), self.optimizer.lr)
        return None

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # already gone
                pass
        self.actors = []
        if self.cluster is not None:
            self.cluster.close()


def data_parallel(workers: int, address: str | None = None, log=None) -> "DataParallel | None":
    """The ``parallel=`` argument of ``fit`` for a task's ``workers`` setting: None for one process."""
    return DataParallel(workers, address, log=log) if workers > 1 or address else None


class RaySession:
    """``with RaySession(workers, address):`` around a task's several ``fit`` calls (ensemble members,
    candidate models): Ray is joined or started once, not once per network, and stopped at the end if started."""

    def __init__(self, workers: int, address: str | None = None):
        self.workers, self.address, self.cluster = int(workers), address, None

    def __enter__(self):
        if self.workers > 1 or self.address:
            self.cluster = connect(self.workers, self.address)
        return self

    def __exit__(self, *exc) -> None:
        if self.cluster is not None:
            self.cluster.close()
