"""The settings of a forecaster (:class:`ForecastConfig`), saved as JSON with the model, and their checks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import math

from rnnkit.errors import UserError
from rnnkit.limits import check_memory, recurrent_bytes
from rnnkit.tasks.forecast_models import CELLS

STRATEGIES = ("direct", "recursive")
TRANSFORMS = ("auto", "none", "log")


@dataclass
class ForecastConfig:
    """Everything that defines a forecaster; saved as JSON with the model."""

    horizon: int
    lookback: int | None = None  # None: chosen from the season and the data length
    cell: str = "gru"
    strategy: str = "direct"
    hidden_size: int = 32
    num_layers: int = 1
    season: int | None = None  # None: detected on the training span
    transform: str = "auto"  # auto: log when the training span is positive and grows multiplicatively
    val_size: int | None = None  # None: one horizon
    test_size: int | None = None  # None: one horizon
    epochs: int = 200
    batch_size: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.0
    patience: int = 40
    clip: float = 5.0
    interval: float = 0.9
    highway: int | str = "auto"  # lags in the linear highway; auto: one season plus one step
    ensemble: int = 1
    seed: int = 0
    dtype: str = "float32"
    workers: int = 1  # > 1: each batch's windows split over this many Ray workers (rnnkit.distributed)
    ray_address: str | None = None  # join this Ray cluster (None: start a local one when workers > 1)
    threads: int | None = None  # the recurrent layers' threads= (team and BLAS inside them); None: automatic
    quiet: bool = True

    def check(self) -> None:
        """Reject impossible or contradictory settings with a UserError."""
        if int(self.horizon) < 1:
            raise UserError(f"horizon must be at least 1, got {self.horizon}")
        if self.lookback is not None and int(self.lookback) < 1:
            raise UserError(f"lookback must be at least 1, got {self.lookback}")
        if self.cell not in CELLS:
            raise UserError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.transform not in TRANSFORMS:
            raise UserError(f"unknown transform {self.transform!r}; choose one of {', '.join(TRANSFORMS)}")
        if self.cell == "mlp" and self.num_layers != 1:
            raise UserError("--num-layers applies to recurrent cells; the window MLP (--cell mlp) has one "
                            "hidden layer, so drop --num-layers or choose a recurrent cell")
        if not 0 < self.interval < 1:
            raise UserError(f"interval must be a probability between 0 and 1, got {self.interval}")
        if self.season is not None and int(self.season) < 1:
            raise UserError(f"season must be at least 1 (1 means no seasonality), got {self.season}")
        for name in ("hidden_size", "epochs", "batch_size", "ensemble"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.val_size is not None and self.val_size < 0 or self.test_size is not None and self.test_size < 0:
            raise UserError("val_size and test_size cannot be negative")
        if self.highway != "auto" and (isinstance(self.highway, str) or int(self.highway) < 0):
            raise UserError(f"highway must be 'auto' or a number of lags >= 0, got {self.highway!r}")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not (0 < self.lr < math.inf):  # written so that NaN fails too
            raise UserError(f"lr (--lr) must be a positive finite number, got {self.lr}")
        for name in ("weight_decay", "clip"):
            if not 0 <= getattr(self, name) < math.inf:
                raise UserError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if int(self.workers) < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}")
        from rnnkit.nn.recurrent.threads import check_threads
        check_threads(self.threads)
        if self.workers > 1 or self.ray_address:
            from rnnkit.distributed import require_ray
            require_ray(f"--workers {self.workers}")
        if int(self.patience) < 1 or int(self.seed) < 0:
            raise UserError(f"patience must be at least 1 and seed >= 0, got {self.patience} and {self.seed}")
        need = recurrent_bytes(self.hidden_size, self.num_layers, 8, self.batch_size, self.lookback or 1,
                               itemsize=8 if self.dtype == "float64" else 4)
        check_memory(need * int(self.ensemble), f"--hidden-size {self.hidden_size} with --num-layers "
                     f"{self.num_layers}, --batch-size {self.batch_size}"
                     + (f", --lookback {self.lookback}" if self.lookback else "")
                     + (f" and --ensemble {self.ensemble}" if int(self.ensemble) > 1 else ""), "lower them")


def check_strategy(cfg: ForecastConfig, series: list) -> None:
    """Settings a strategy would silently ignore are errors."""
    if cfg.strategy == "recursive" and series[0].past.shape[1]:
        raise UserError(
            "the recursive strategy feeds its own forecasts back and cannot know future values of past "
            f"covariates ({', '.join(series[0].past_names)}); use --strategy direct, or pass known-ahead "
            "columns as --future-covariates"
        )
    names = [(s.past_names, s.future_names) for s in series]
    if any(n != names[0] for n in names):
        raise UserError("all series must have the same covariate columns")


def is_multiplicative(y: np.ndarray) -> bool:
    """Positive series whose variation grows with the level (so a log makes it additive)."""
    if np.any(y <= 0) or len(y) < 8:
        return False
    q = len(y) // 4
    first, last = y[:q], y[-q:]
    spread_ratio = np.std(np.diff(last)) / max(np.std(np.diff(first)), 1e-12)
    level_ratio = np.mean(last) / np.mean(first)
    return bool(level_ratio > 1.5 and spread_ratio > 1.5) or bool(level_ratio < 1 / 1.5 and spread_ratio < 1 / 1.5)


def future_block(future, name: str, horizon: int, size: int):
    """The known-ahead covariates of series ``name`` for the next ``horizon`` steps, (horizon, size), from
    ``future`` (an array, or a dict series name -> array); None for a model without future covariates."""
    if not size:
        if future is not None:
            raise UserError("this model was trained without future covariates; drop future=/--future")
        return None
    extra = future.get(name) if isinstance(future, dict) else future
    if extra is None:
        raise UserError(f"the model uses future covariates; give their values for the next {horizon} steps "
                        "(Python: future=..., CLI: --future FILE.csv)")
    extra = np.asarray(extra, np.float64).reshape(-1, size)
    if len(extra) < horizon:
        raise UserError(f"future covariates cover {len(extra)} steps but the horizon is {horizon}")
    return extra[:horizon]
