"""Rolling-origin backtests: refit a forecaster at several origins on the data before each origin only, score
the next horizon beside the baselines, average over the folds and say when a baseline wins on average."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from rnnkit.data.series import from_python
from rnnkit.errors import UserError
from rnnkit.tasks.forecast_config import ForecastConfig
from rnnkit.tasks.forecast_eval import evaluate
from rnnkit.tasks.forecast_metrics import baseline_warnings


def rolling_origin(model_class, data, config: ForecastConfig, folds: int = 3, step: int | None = None,
                   callback=None, warn: bool = True, **load_kw) -> dict:
    """Rolling-origin evaluation of ``model_class`` (a Forecaster class): refit at ``folds`` origins,
    ``step`` apart (default one horizon), each time on the data before the origin only, and score the
    next horizon against the baselines.

    ``callback(k, report)`` is called after each fold. Returns {"folds": [per-fold reports with their
    "origin" (index of the first forecast point) and "origin_time" (its time label or None)], "mean":
    metrics averaged over folds, "warnings": a baseline that beats the model on average}; with ``warn``
    the warnings are also issued through :func:`warnings.warn`.
    """
    series = from_python(data, **load_kw)
    H = config.horizon
    step = H if step is None else int(step)
    if folds < 1 or step < 1:
        raise UserError("backtest needs --folds >= 1 and --step >= 1")
    n_min = min(len(s) for s in series)
    results = []
    for k in range(folds):
        cut = n_min - (folds - 1 - k) * step  # this fold's data ends here; its last H points are the test
        if cut - H < 8:
            raise UserError(f"{folds} folds {step} apart leave too little data for the first fold "
                            f"(series length {n_min}); use fewer --folds or a smaller --step")
        cfg = dataclasses.replace(config, test_size=H, seed=config.seed + k)
        fold = [s.head(len(s) - (n_min - cut)) for s in series]
        model = model_class(config=cfg).fit(fold)
        rep = evaluate(model, warn=False)
        rep["origin"] = cut - H
        first = series[0]
        rep["origin_time"] = None if first.time is None else str(first.time[len(first) - (n_min - cut) - H])
        results.append(rep)
        if callback is not None:
            callback(k, rep)
    keys = results[0]["metrics"].keys()
    mean = {k: {m: float(np.mean([r["metrics"][k][m] for r in results]))
                for m in results[0]["metrics"][k] if m != "n"} for k in keys}
    found = baseline_warnings(mean, f"on average over the {folds} fold{'s' if folds > 1 else ''}")
    if warn:
        for w in found:
            warnings.warn(w, UserWarning, stacklevel=2)
    return {"folds": results, "mean": mean, "warnings": found}
