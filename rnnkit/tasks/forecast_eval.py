"""Evaluating a fitted forecaster honestly: test-span metrics beside the naive, seasonal-naive and window-MLP
baselines on the same split, and the lag (echo) check. It works on the model it is given and imports nothing
of :mod:`rnnkit.tasks.forecast` (which re-exports it); rolling-origin refits are ``forecast.backtest``.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from rnnkit.data.series import from_python
from rnnkit.errors import UserError
from rnnkit.tasks import forecast_metrics as fm


def _test_origins(n: int, b: int, horizon: int) -> list[int]:
    """Forecast origins covering the test span [b, n) in blocks of ``horizon``."""
    return list(range(b, n, horizon))


def _collect(model, s, b: int, kind: str, mlp=None):
    """Forecasts over the test span [b, n) of series ``s`` for one forecaster kind: (mean, lower, upper)
    each (n - b,), and the last observed value before each forecast step."""
    H, n = model.config.horizon, len(s)
    means, lows, highs, lasts = [], [], [], []
    for o in _test_origins(n, b, H):
        k = min(H, n - o)
        hist = s.y[:o]
        lo = hi = None
        if kind == "model" or kind == "window_mlp":
            src = model if kind == "model" else mlp
            m, lo, hi = (a[0, :k] for a in src.forecast_at(s, [o]))
        elif kind == "naive":
            m = fm.naive_forecast(hist, k)
        else:
            m = fm.seasonal_naive_forecast(hist, k, model.season_)
        means.append(m)
        lasts.append(np.full(k, hist[-1]))
        if lo is not None:
            lows.append(lo)
            highs.append(hi)
    cat = np.concatenate
    return cat(means), (cat(lows) if lows else None), (cat(highs) if highs else None), cat(lasts)


def window_mlp_for(model, data=None):
    """The window feed-forward network with the model's split, lookback, horizon and seed (a forecaster
    of the model's own class, fitted on ``data``, default the model's series)."""
    if model.config.cell == "mlp":
        return model
    cfg = dataclasses.replace(model.config, cell="mlp", num_layers=1, lookback=model.lookback_,
                              season=model.season_, transform="log" if model.log_ else "none",
                              strategy="direct")
    with warnings.catch_warnings():  # the model's own fit has already said what it had to about the data
        warnings.simplefilter("ignore", UserWarning)
        return type(model)(config=cfg).fit(model.series_ if data is None else data)


def evaluate(model, data=None, mlp=None, warn: bool = True, **load_kw) -> dict:
    """Metrics on the test span for a fitted :class:`rnnkit.tasks.forecast.Forecaster` and the baselines;
    warnings; the test forecasts. ``mlp``: the window-MLP baseline, if already fitted.

    ``data`` defaults to the series the model was fitted on (it must be the same series: the split is
    recomputed from their lengths). Returns {"metrics", "warnings", "echo", "forecasts", "season"}.
    With ``warn`` the warnings (loses to seasonal naive, echoes the last value) are also issued with
    :func:`warnings.warn`.
    """
    if data is None and not getattr(model, "has_full_series_", True):
        raise UserError("a loaded model keeps only the tail of its series; pass the data it was fitted on "
                        "to evaluate it")
    series = model.series_ if data is None else from_python(data, **load_kw)
    if any(s.name not in model.scalers_ for s in series):
        raise UserError("evaluate needs the series the model was fitted on")
    if mlp is None:
        mlp = window_mlp_for(model, series)
    per = {k: [] for k in ("model", "naive", "seasonal_naive", "window_mlp")}
    forecasts, echo_num, echo_den = {}, 0.0, 0.0
    for s in series:
        a, b = model._spans(len(s), s.name)
        if b >= len(s):
            raise UserError("the test span is empty: set test_size/--test to at least 1 to evaluate")
        truth = s.y[b:]
        scale = fm.mase_scale(s.y[:a], model.season_)
        for kind in per:
            mean, lo, hi, last = _collect(model, s, b, kind, mlp)
            d = fm.point_metrics(truth, mean, scale)
            d["n"] = len(truth)
            if kind == "model":
                d["coverage"] = fm.coverage(truth, lo, hi)
                forecasts[s.name] = {"start": b, "mean": mean, "lower": lo, "upper": hi}
                echo_num += float(np.sum(np.abs(mean - last)))
                echo_den += float(np.sum(np.abs(truth - last)))
            per[kind].append(d)
    metrics = {k: fm.summarize(v) for k, v in per.items()}
    metrics["model"]["interval"] = model.config.interval
    echo = echo_num / echo_den if echo_den > 0 else float("inf")
    found = fm.warnings_for(metrics, echo)
    if warn:
        for w in found:
            warnings.warn(w, UserWarning, stacklevel=2)
    return {"metrics": metrics, "warnings": found, "echo": echo,
            "forecasts": forecasts, "season": model.season_}

