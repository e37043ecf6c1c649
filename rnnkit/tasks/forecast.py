"""Forecasting task: fit a recurrent (or windowed feed-forward) forecaster, predict, save and load it.

Honest by construction: each series is split by time into train / validation / test spans first; its
scaler (optional log, then standardisation) is fitted on the training span only; windows are cut so that
targets never cross a span boundary. Inputs and targets are expressed relative to the last observed value
of each window (differencing to the forecast origin), so trends and level shifts do not push the network
out of the range it was trained on. Forecasts come back on the original scale with Gaussian intervals.

    model = fit(y, horizon=12)          # y: array, pandas Series/DataFrame, list of arrays, load_csv(...)
    report = evaluate(model)            # test-span metrics beside naive, seasonal naive, window MLP
    final = refit(model)                # the same settings refitted on all the data (train + val + test)
    fc = predict(final)                 # {series: {"time", "mean", "lower", "upper"}} for the next 12 steps
    folds = backtest(y, ForecastConfig(horizon=12))   # rolling-origin refits and scores
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from statistics import NormalDist

import numpy as np

from rnnkit.data.series import (ColumnScaler, Series, SeriesScaler, check_length, detect_season,
                                from_python, split_points, window_starts)
from rnnkit.errors import UserError
from rnnkit.nn.base import as_rng
from rnnkit.tasks import forecast_io
from rnnkit.tasks.forecast_backtest import rolling_origin
from rnnkit.tasks.forecast_config import (STRATEGIES, TRANSFORMS, ForecastConfig, check_strategy, future_block,
                                          is_multiplicative)
from rnnkit.tasks.forecast_eval import evaluate, window_mlp_for
from rnnkit.tasks.forecast_metrics import format_table
from rnnkit.tasks.forecast_models import CELLS, ForecastNet
from rnnkit.tasks.forecast_time import as_index, is_pandas, learn_frequencies, next_times, pandas_input
from rnnkit.tasks.forecast_train import train_net

__all__ = ["ForecastConfig", "Forecaster", "fit", "predict", "refit", "evaluate", "backtest", "window_mlp_for",
           "format_table", "CELLS", "STRATEGIES", "TRANSFORMS"]


class Forecaster:
    """A trained forecaster: config, the network, per-series scalers, and the data it was fitted on.

    Learned attributes (trailing underscore): ``season_``, ``lookback_``, ``scalers_`` (series name ->
    SeriesScaler), ``past_scaler_``/``future_scaler_`` (ColumnScaler), ``nets_`` (the networks; several
    when ``ensemble > 1``), ``history_`` (training logs, each with ``best_epoch``), ``series_`` (the data
    seen by ``fit``), ``freqs_`` (series name -> Frequency of its time labels, or None), ``time_notes_`` (why
    a time column could not be extrapolated), ``refit_`` (None, or what :meth:`refit` repeated).
    """

    def __init__(self, horizon: int | None = None, config: ForecastConfig | None = None, **kwargs):
        if config is None:
            if horizon is None:
                raise UserError("say how far ahead to forecast: Forecaster(horizon=H)")
            config = ForecastConfig(horizon=int(horizon), **kwargs)
        elif horizon is not None or kwargs:
            config = dataclasses.replace(config, **({"horizon": horizon} if horizon else {}), **kwargs)
        config.check()
        self.config = config

    # -- data preparation -----------------------------------------------------------------------
    @property
    def out_steps(self) -> int:
        return self.config.horizon if self.config.strategy == "direct" else 1

    def _spans(self, n: int, name: str) -> tuple[int, int]:
        cfg = self.config
        val = cfg.horizon if cfg.val_size is None else cfg.val_size
        test = cfg.horizon if cfg.test_size is None else cfg.test_size
        return split_points(n, val, test)

    def _choose(self, series: list[Series]) -> None:
        """Season, transform and lookback from the training spans (never from val/test)."""
        cfg = self.config
        trains = [s.y[: self._spans(len(s), s.name)[0]] for s in series]
        log = cfg.transform == "log" or (cfg.transform == "auto" and all(is_multiplicative(t) for t in trains))
        self.log_ = bool(log)
        for s, t in zip(series, trains):
            if log and np.any(t <= 0):
                raise UserError(f"series {s.name!r}: transform 'log' needs positive values but the training "
                                f"span has min {t.min():g}; use --transform none")
        if cfg.season is not None:
            self.season_ = int(cfg.season)
        else:
            longest = max(trains, key=len)
            self.season_ = detect_season(np.log(longest) if log else longest)
        if cfg.lookback is not None:
            self.lookback_ = int(cfg.lookback)
        else:
            shortest = min(len(t) for t in trains)
            want = max(2 * self.season_, 2 * cfg.horizon, 8)
            # keep at least about half of the shortest training span as windows
            cap = max(1, (shortest - cfg.horizon) // 2)
            self.lookback_ = int(max(1, min(want, cap)))
        hw = cfg.highway
        self.highway_ = min(self.lookback_, self.season_ + 1) if hw == "auto" else int(hw)

    def _fit_scalers(self, series: list[Series]) -> None:
        self.scalers_ = {}
        pasts, futs = [], []
        for s in series:
            a, _ = self._spans(len(s), s.name)
            self.scalers_[s.name] = SeriesScaler(log=self.log_).fit(s.y[:a], name=f"series {s.name!r}")
            pasts.append(s.past[:a])
            futs.append(s.future[:a])
        self.past_scaler_ = ColumnScaler().fit(np.concatenate(pasts))
        self.future_scaler_ = ColumnScaler().fit(np.concatenate(futs))

    def _scaled(self, s: Series, future_extra=None):
        """z (N,), past (N, P), future (N + extra, F) on the model's scale."""
        sc = self.scalers_.get(s.name)
        if sc is None:
            raise UserError(f"series {s.name!r} was not seen in training; the model knows "
                            f"{', '.join(self.scalers_)}")
        fut = s.future if future_extra is None else np.concatenate([s.future, future_extra])
        return (sc.transform(s.y, name=f"series {s.name!r}"), self.past_scaler_.transform(s.past),
                self.future_scaler_.transform(fut))

    def _window_inputs(self, z, P, F, origins):
        """Network inputs for forecast origins o (first forecast index): xs (S, L, D), fut (S, K, F)."""
        L, K = self.lookback_, self.out_steps
        past = np.arange(-L, 0)[None, :] + origins[:, None]  # (S, L)
        last = z[origins - 1][:, None]
        parts = [(z[past] - last)[..., None]]
        if P.shape[1]:
            parts.append(P[past])
        if F.shape[1]:
            parts.append(F[past])
        xs = np.concatenate(parts, axis=2)
        ahead = np.arange(K)[None, :] + origins[:, None]
        fut = F[ahead] if F.shape[1] else None
        return xs, fut, last[:, 0]

    def _windows(self, series: list[Series], span: str):
        """Training (span='train') or validation windows pooled over series: xs, fut, targets (S, K)."""
        K = self.out_steps
        xs, futs, ys = [], [], []
        for s in series:
            a, b = self._spans(len(s), s.name)
            lo, hi = (0, a) if span == "train" else (a, b)
            origins = window_starts(len(s), self.lookback_, K, lo, hi)
            if len(origins) == 0:
                continue
            z, P, F = self._scaled(s)
            x, f, last = self._window_inputs(z, P, F, origins)
            ahead = np.arange(K)[None, :] + origins[:, None]
            xs.append(x)
            futs.append(f)
            ys.append(z[ahead] - last[:, None])
        if not xs:
            return None
        fut = np.concatenate(futs) if futs[0] is not None else None
        return np.concatenate(xs), fut, np.concatenate(ys)

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, data, target=None, time=None, covariates=(), future_covariates=(), series_col=None,
            fill=None, callback=None) -> "Forecaster":
        """Fit on ``data`` (array, pandas object, list of arrays, or Series list from ``load_csv``).

        ``time`` names the time column (a pandas index of dates is used without it; with ``load_csv``
        series it is only the column's name); its frequency is inferred so that forecasts carry dates.
        Irregular time labels give a warning and step numbers.
        """
        pandas = is_pandas(data)
        data, target, time = pandas_input(data, target, time)
        series = from_python(data, target=target, time=time, covariates=covariates,
                             future_covariates=future_covariates, series_col=series_col, fill=fill)
        self.time_name_, self.pandas_ = (None if time is None else str(time)), pandas
        self.freqs_, self.time_notes_ = learn_frequencies(series, self.label)  # irregular: noted, by step
        self._fit_series(series, callback=callback)
        for note in self.time_notes_:
            warnings.warn(note, UserWarning, stacklevel=2)
        return self

    def _fit_series(self, series: list[Series], epochs=None, callback=None) -> None:
        """Choose the settings, fit the scalers and train the networks (member k for ``epochs[k]`` epochs,
        default ``config.epochs``), then calibrate the intervals on the validation windows."""
        cfg = self.config
        check_strategy(cfg, series)
        self._choose(series)
        for s in series:
            a, _ = self._spans(len(s), s.name)
            check_length(a, self.lookback_, self.out_steps,
                         what=f"the training span of series {s.name!r} (length {len(s)} minus "
                              f"validation and test)")
        self._fit_scalers(series)
        train = self._windows(series, "train")
        val = self._windows(series, "val")
        self.input_size_ = train[0].shape[2]
        self.future_size_ = series[0].future.shape[1]
        rng = as_rng(cfg.seed)
        self.nets_, self.history_ = [], []
        from rnnkit.distributed.fit_parallel import RaySession  # Ray itself only if cfg.workers > 1

        with RaySession(cfg.workers, cfg.ray_address):  # one Ray for every member
            for k in range(cfg.ensemble):
                net = self._new_net(rng)
                self.history_.append(train_net(net, train, val, cfg, rng, callback=callback,
                                               epochs=None if epochs is None else epochs[k]))
                self.nets_.append(net)
        self.sigma_scale_ = self._calibrate(val)
        self.best_epochs_ = [int(h.best_epoch) for h in self.history_]
        self.series_, self.has_full_series_ = series, True
        self.lengths_ = {s.name: len(s) for s in series}
        self.refit_ = None

    def refit(self, data=None, callback=None) -> "Forecaster":
        """A new forecaster fitted on the whole of each series (train + validation + test) with this one's
        settings: its season, lookback, transform and highway, each network trained for the epochs that
        gave this model's kept weights (``history_[k].best_epoch``), scalers fitted on all the data, the
        interval calibration carried over. ``data`` defaults to the series this model was fitted on.
        """
        if data is None and not getattr(self, "has_full_series_", True):
            raise UserError("a loaded model keeps only the tail of its series; pass the data it was fitted on "
                            "to refit it")
        series = self.series_ if data is None else self._series_of(data, {})[0]
        epochs = list(self.best_epochs_)
        cfg = dataclasses.replace(self.config, val_size=0, test_size=0, season=self.season_,
                                  lookback=self.lookback_, transform="log" if self.log_ else "none",
                                  highway=self.highway_, epochs=max(1, *epochs))
        new = type(self)(config=cfg)
        for k in ("time_name_", "pandas_", "freqs_", "time_notes_"):
            setattr(new, k, getattr(self, k, None))
        new._fit_series(series, epochs=epochs, callback=callback)
        new.sigma_scale_ = self.sigma_scale_  # measured out of sample; a refit has no validation span
        new.refit_ = {"epochs": epochs, "points": {s.name: len(s) for s in series},
                      "evaluated_split": {s.name: list(self._spans(len(s), s.name)) for s in series}}
        return new

    def _calibrate(self, val) -> float:
        """Widen the intervals when the validation errors are larger than the trained spread says.

        Training residuals understate out-of-sample errors, so the predicted standard deviation is
        multiplied by sqrt(mean(z^2)) of the validation z-scores, never by less than 1.
        """
        if val is None:
            return 1.0
        xs, fut, ys = val
        mu, ls = self._net_outputs(xs, fut)
        z2 = float(np.mean(((ys - mu) / np.exp(ls)) ** 2))
        return float(np.clip(np.sqrt(z2), 1.0, 10.0)) if np.isfinite(z2) else 1.0

    def _new_net(self, rng=None) -> ForecastNet:
        cfg = self.config
        return ForecastNet(cfg.cell, self.input_size_, self.lookback_, self.out_steps, self.future_size_,
                           cfg.hidden_size, cfg.num_layers, self.highway_, np.dtype(cfg.dtype), rng,
                           threads=cfg.threads)

    # -- forecasting ------------------------------------------------------------------------------
    def _net_outputs(self, xs, fut):
        """Ensemble mean of mu and the pooled log sigma (mixture variance)."""
        mus, vars_ = [], []
        for net in self.nets_:
            mu, ls = net.forward(xs, fut)
            mus.append(mu.astype(np.float64))
            vars_.append(np.exp(2 * ls.astype(np.float64)))
        mus = np.stack(mus)
        mu = mus.mean(axis=0)
        var = np.mean(np.stack(vars_) + mus ** 2, axis=0) - mu ** 2
        return mu, 0.5 * np.log(np.maximum(var, 1e-30))

    def forecast_at(self, s: Series, origins, future_extra=None, horizon: int | None = None):
        """Forecasts on the original scale from origins (indices of the first forecast step) of ``s``.

        Returns mean, lower, upper arrays of shape (len(origins), horizon).
        """
        H = self.config.horizon if horizon is None else horizon
        origins = np.asarray(origins, dtype=np.int64)
        z, P, F = self._scaled(s, future_extra)
        sc = self.scalers_[s.name]
        q = NormalDist().inv_cdf(0.5 + self.config.interval / 2)
        if np.any(origins < self.lookback_):
            check_length(int(origins.min()), self.lookback_, 0, what=f"the history of series {s.name!r}")
        if self.config.strategy == "direct":
            xs, fut, last = self._window_inputs(z, P, F, origins)
            mu, ls = self._net_outputs(xs, fut)
            mu, sd = mu[:, :H], np.exp(ls[:, :H]) * self.sigma_scale_
            center = last[:, None] + mu
            return sc.inverse(center), sc.inverse(center - q * sd), sc.inverse(center + q * sd)
        return self._recursive(z, F, origins, H, sc, q)

    def _recursive(self, z, F, origins, H, sc, q, samples: int = 200):
        """One step at a time, feeding forecasts back; intervals from simulated sample paths."""
        S, L = len(origins), self.lookback_
        rng = np.random.default_rng(12345)
        R = samples + 1  # row 0 of each origin is the mean path, the rest are sample paths
        hist = np.repeat(np.stack([z[o - L:o] for o in origins]), R, axis=0)  # (S*R, L)
        Fh = np.repeat(np.stack([F[o - L:o + H] for o in origins]), R, axis=0) if F.shape[1] else None
        out = np.empty((S * R, H))
        for h in range(H):
            last = hist[:, -1]
            parts = [(hist - last[:, None])[..., None]]
            if Fh is not None:
                parts.append(Fh[:, h:h + L])
            xs = np.concatenate(parts, axis=2)
            fut = Fh[:, h + L:h + L + 1] if Fh is not None else None
            mu, ls = self._net_outputs(xs, fut)
            noise = rng.standard_normal(S * R) * np.exp(ls[:, 0]) * self.sigma_scale_
            noise[::R] = 0.0
            nxt = last + mu[:, 0] + noise
            out[:, h] = nxt
            hist = np.concatenate([hist[:, 1:], nxt[:, None]], axis=1)
        out = out.reshape(S, R, H)
        mean = sc.inverse(out[:, 0])
        lo_q, hi_q = 0.5 - self.config.interval / 2, 0.5 + self.config.interval / 2
        paths = sc.inverse(out[:, 1:])
        return mean, np.quantile(paths, lo_q, axis=1), np.quantile(paths, hi_q, axis=1)

    def predict(self, data=None, future=None, **load_kw) -> dict:
        """Forecast ``horizon`` steps past the end of each series (the fitted data if ``data`` is None).

        ``future``: known-ahead covariates for the next ``horizon`` steps, (horizon, F) array or a dict
        series name -> array, required when the model uses future covariates.
        Returns {series name: {"time", "mean", "lower", "upper"}}: arrays of length horizon, "time" the
        forecast dates (NumPy datetime64, or a pandas DatetimeIndex when the data were pandas) at the
        series' frequency, or step numbers continuing the data's positions when it has no regular time.
        """
        series, pandas = (self.series_, self.pandas_) if data is None else self._series_of(data, load_kw)
        H = self.config.horizon
        out = {}
        for s in series:
            extra = future_block(future, s.name, H, self.future_size_)
            check_length(len(s), self.lookback_, 0, what=f"series {s.name!r}")
            mean, lo, hi = self.forecast_at(s, [len(s)], extra)
            times = self._times_after(s, fresh=data is not None)[0]
            out[s.name] = {"time": as_index(times, self.time_name_ or "time", pandas),
                           "mean": mean[0], "lower": lo[0], "upper": hi[0]}
        return out

    # -- time and names -------------------------------------------------------------------------
    def _series_of(self, data, load_kw) -> tuple[list[Series], bool]:
        """New data as Series (a pandas date index becomes the time column); a lone series takes the name
        of the model's lone series, so a model fitted on one column forecasts any one array."""
        pandas = is_pandas(data)
        kw = dict(load_kw)
        if hasattr(data, "columns"):  # a table: the fitted target and time columns unless told otherwise
            kw.setdefault("target", self.series_[0].target)
            if getattr(self, "time_name_", None) in list(data.columns):
                kw.setdefault("time", self.time_name_)
        if pandas:
            data, kw["target"], kw["time"] = pandas_input(data, kw.get("target"), kw.get("time"))
        series = from_python(data, **kw)
        if len(series) == 1 and len(self.scalers_) == 1 and series[0].name not in self.scalers_:
            series = [dataclasses.replace(series[0], name=next(iter(self.scalers_)))]
        return series, pandas

    def label(self, s: Series) -> str:
        """The name a person knows a series by: its --series-col value, else the target column's name."""
        return s.target if s.name == "series" else s.name

    def length_of(self, s: Series) -> int:
        """Length of the fitted series ``s`` (a loaded model keeps only its tail)."""
        return getattr(self, "lengths_", {}).get(s.name, len(s))

    def _times_after(self, s: Series, fresh: bool):
        """(values, texts, dated) of the ``horizon`` times after ``s``; ``fresh``: ``s`` is new data."""
        n = len(s) if fresh else self.length_of(s)
        return next_times(s.time, getattr(self, "freqs_", {}).get(s.name), self.config.horizon, n, fresh)

    def forecast_times(self, data=None, **load_kw) -> dict:
        """{series name: (values, texts, dated)}: the times :meth:`predict` gives its forecasts, their text,
        and whether they are dates at the series' frequency (else step positions)."""
        series = self.series_ if data is None else self._series_of(data, load_kw)[0]
        return {s.name: self._times_after(s, fresh=data is not None) for s in series}

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        """(tensors, meta) for a checkpoint: every net's weights plus config, scalers and history tails."""
        return forecast_io.state(self)

    def save(self, path) -> str:
        from rnnkit.io import save_checkpoint

        tensors, meta = self.state()
        return os.fspath(save_checkpoint(path, tensors, meta))

    @classmethod
    def load(cls, path) -> "Forecaster":
        return forecast_io.load(cls, path)


# -- the functional API -----------------------------------------------------------------------------
def fit(data, horizon: int, **kwargs) -> Forecaster:
    """Fit a forecaster: ``kwargs`` are ForecastConfig fields (lookback, cell, season, ...) and the column
    options of :func:`rnnkit.data.series.from_python` (target, covariates, future_covariates, series_col,
    fill)."""
    load = {k: kwargs.pop(k) for k in ("target", "time", "covariates", "future_covariates", "series_col",
                                       "fill", "callback") if k in kwargs}
    return Forecaster(horizon=horizon, **kwargs).fit(data, **load)


def predict(model: Forecaster, data=None, future=None, **load_kw) -> dict:
    """Forecasts past the end of ``data`` (default: the fitted series); see :meth:`Forecaster.predict`."""
    return model.predict(data, future=future, **load_kw)


def refit(model: Forecaster, data=None) -> Forecaster:
    """``model``'s settings refitted on all the data, to forecast the future; see :meth:`Forecaster.refit`."""
    return model.refit(data)


def backtest(data, config: ForecastConfig, folds: int = 3, step: int | None = None, callback=None,
             warn: bool = True, **load_kw) -> dict:
    """Rolling-origin refits and scores of a :class:`Forecaster`; see
    :func:`rnnkit.tasks.forecast_backtest.rolling_origin`."""
    return rolling_origin(Forecaster, data, config, folds, step, callback, warn, **load_kw)
