"""The classifier's settings: :class:`ClassifyConfig`, saved as JSON with every trained classifier."""
from __future__ import annotations

import math
from dataclasses import dataclass

from rnnkit.errors import UserError
from rnnkit.limits import check_memory, recurrent_bytes
from rnnkit.tasks.classify_model import CELLS, MODELS, POOLS

NORMALIZE = ("auto", "series+scale", "global", "series", "none")
AUTO_NORMALIZE = ("global", "series+scale")  # what normalize="auto" chooses between, by validation loss
AUTO_MODEL = ("combined", "rnn")  # and model="auto"
FORMAT = "rnnkit-classify"


@dataclass
class ClassifyConfig:
    """Everything that defines a classifier; saved as JSON with the model. ``None`` sizes are chosen from
    the data at fit time (see :meth:`SequenceClassifier.fit`)."""

    model: str = "rocket"  # "rocket": random TDNN + ridge (no gradient training); "auto": combined or rnn by validation
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    pool: str = "mean"
    channels: tuple = (64, 128, 64)
    kernels: tuple = (8, 5, 3)
    front_size: int = 32
    stride: int | None = None  # None: ceil(longest training case / target_steps)
    target_steps: int = 300
    dropout: float = 0.3
    normalize: str = "auto"
    epochs: int = 500
    patience: int = 60
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_size: float = 0.2
    monitor: str = "val_loss"  # model choice on the validation split: "val_loss" or "val_acc"
    n_estimators: int = 5
    max_minutes: float | None = 9.0
    random_state: int = 0
    fill: str | None = None  # missing values (NaN) inside a case: None refuses them; "interpolate", "zero", "ffill"
    dtype: str = "float32"
    workers: int = 1  # > 1: each batch's cases split over this many Ray workers (rnnkit.distributed)
    ray_address: str | None = None  # join this Ray cluster (None: start a local one when workers > 1)
    threads: int | None = None  # the recurrent layers' threads= (team and BLAS inside them); None: automatic

    def check(self) -> None:
        def need(ok, msg):
            if not ok:
                raise UserError(msg)

        need(self.model in MODELS + ("auto", "rocket"), f"unknown model {self.model!r}; choose one of: rocket, auto, "
                                                          f"{', '.join(MODELS)}")
        need(self.cell in CELLS, f"unknown cell {self.cell!r}; choose one of: {', '.join(CELLS)}")
        need(self.pool in POOLS, f"unknown pooling {self.pool!r}; choose one of: {', '.join(POOLS)}")
        need(self.normalize in NORMALIZE, f"unknown normalize {self.normalize!r}; choose one of: "
                                          f"{', '.join(NORMALIZE)}")
        for name in ("hidden_size", "num_layers", "front_size", "target_steps", "epochs", "patience",
                     "batch_size", "n_estimators"):
            need(int(getattr(self, name)) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        need(len(self.channels) >= 1 and len(self.channels) == len(self.kernels)
             and all(int(c) >= 1 for c in self.channels) and all(int(k) >= 1 for k in self.kernels),
             f"channels and kernels must be lists of positive sizes of the same length, got {list(self.channels)} "
             f"and {list(self.kernels)}")
        need(self.stride is None or int(self.stride) >= 1, f"stride must be at least 1, got {self.stride}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.monitor in ("val_loss", "val_acc"), f"monitor must be 'val_loss' or 'val_acc', got "
                                                      f"{self.monitor!r}")
        need(0.0 <= self.val_size < 1.0, f"val_size must be in [0, 1), got {self.val_size}")
        need(self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}")
        need(0 <= self.weight_decay < math.inf, f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        need(self.max_minutes is None or 0 < self.max_minutes < math.inf,
             f"max_minutes must be positive and finite (or None for no limit), got {self.max_minutes}")
        need(int(self.workers) >= 1, f"workers must be at least 1, got {self.workers}")
        from rnnkit.nn.recurrent.threads import check_threads

        check_threads(self.threads)
        if self.workers > 1 or self.ray_address:
            from rnnkit.distributed import require_ray
            require_ray(f"--workers {self.workers}")
        need(int(self.random_state) >= 0, f"random_state (--seed) must be >= 0, got {self.random_state}")
        need_bytes = recurrent_bytes(self.hidden_size * (2 if self.bidirectional else 1), self.num_layers,
                                     self.front_size, self.batch_size, self.target_steps,
                                     itemsize=8 if self.dtype == "float64" else 4)
        check_memory(need_bytes, f"--hidden-size {self.hidden_size} with --num-layers {self.num_layers} and "
                                 f"--batch-size {self.batch_size}", "lower them")
        need(self.fill in (None, "interpolate", "zero", "ffill"),
             f"fill must be None, 'interpolate', 'zero' or 'ffill', got {self.fill!r}")
        need(self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype!r}")
