"""What ``rnnkit forecast`` writes and prints: forecast.csv with dates and the model that produced it, the
forecast plot's panels, the forecast table on the terminal, and a backtest's per-fold CSV and plot."""
from __future__ import annotations

import csv
import io
import sys
import warnings

import numpy as np

MODEL_FILE = "model.safetensors"
REFIT_FILE = "model_refit.safetensors"


def quietly(fn, *args, **kwargs):
    """Call ``fn`` with Python warnings captured: returns (result, messages); the CLI prints them itself."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, list(dict.fromkeys(str(w.message) for w in caught))


def warn(messages) -> None:
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


def describe(model) -> tuple[str, str]:
    """(kind, sentence): which model a forecast comes from, "refit" or "evaluated", and what it has seen."""
    s = model.series_[0]
    n = model.length_of(s)
    k = len(model.series_)
    if model.refit_:
        epochs = ", ".join(map(str, model.refit_["epochs"]))
        points = f"all {n} points" if k == 1 else \
            f"all {sum(model.length_of(t) for t in model.series_)} points of its {k} series"
        best = "the evaluated fit's best" if any(model.refit_["epochs"]) else \
            "the evaluated fit was best untrained, so only the scaler is refitted"
        return "refit", (f"the model refit on {points} (train + validation + test) for {epochs} "
                         f"epoch{'s' if epochs != '1' else ''} ({best})")
    a, b = model._spans(n, s.name)
    if k > 1:
        return "evaluated", (f"the evaluated model, trained on its {k} series without their last {n - a} "
                             "points (validation and test)")
    return "evaluated", (f"the evaluated model, trained on the first {a} points (validation up to {b}); "
                         f"it has not seen the last {n - a}")


def span_text(model) -> str:
    """" (1961-01 .. 1961-12, monthly)" for the first series' forecast times, or "" without a frequency."""
    s = model.series_[0]
    _, texts, dated = model.forecast_times()[s.name]
    freq = model.freqs_.get(s.name)
    return f" ({texts[0]} .. {texts[-1]}, {freq.name})" if dated and freq is not None else ""


def time_column(model) -> str | None:
    """Header of forecast.csv's time column: the --time column's name (or "time" if that name is taken)."""
    name = getattr(model, "time_name_", None)
    if name is None:
        return None
    return "time" if name in ("series", "step", "mean", "model") or name.startswith(("lower_", "upper_")) \
        else name


def write_forecast_csv(path, model, fc: dict, kind: str, data=None) -> None:
    """forecast.csv: series (its real name), step, the time column (dates at the series' frequency; empty
    when the series has none), mean, lower/upper bounds, and the model ("refit" or "evaluated")."""
    from rnnkit.io import atomic_write_text

    times = model.forecast_times(data) if fc else {}
    labels = {s.name: model.label(s) for s in (model.series_ if data is None else data)}
    tcol = time_column(model)
    pct = round(model.config.interval * 100)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["series", "step", *([tcol] if tcol else []), "mean", f"lower_{pct}", f"upper_{pct}", "model"])
    for name, f in fc.items():
        _, texts, dated = times[name]
        for h in range(len(f["mean"])):
            when = [texts[h] if dated else ""] if tcol else []
            w.writerow([labels.get(name, name), h + 1, *when, f"{f['mean'][h]:.6g}", f"{f['lower'][h]:.6g}",
                        f"{f['upper'][h]:.6g}", kind])
    atomic_write_text(path, buf.getvalue())


def print_forecast(model, fc: dict, data=None, rows: int = 24) -> None:
    """Each series' forecast, one line per step: the time (date or step), mean and interval."""
    times = model.forecast_times(data)
    labels = {s.name: model.label(s) for s in (model.series_ if data is None else data)}
    pct = round(model.config.interval * 100)
    for name, f in fc.items():
        _, texts, dated = times[name]
        freq = model.freqs_.get(name) if dated else None
        how = f", {freq.name}" if freq is not None else ", by step (no regular time column)"
        print(f"{labels.get(name, name)}{how}: mean [{pct}% interval]")
        shown = [texts[h] if dated else f"+{h + 1}" for h in range(min(rows, len(f["mean"])))]
        width = max(map(len, shown))
        for h, when in enumerate(shown):
            print(f"  {when:<{width}}  {f['mean'][h]:>10.6g}  [{f['lower'][h]:.6g}, {f['upper'][h]:.6g}]")
        if len(f["mean"]) > rows:
            print(f"  ... {len(f['mean']) - rows} more in the CSV")


def _x(model, s, times):
    """Plot x of the history and of the future: dates (or integer labels) when the series has a frequency,
    else positions."""
    from rnnkit.tasks.forecast_time import parse_labels

    values, _, dated = times
    if dated and s.time is not None:
        return parse_labels(s.time)[0], values
    n = len(s)
    return np.arange(n), np.arange(n, n + len(values))


def plot_run(path, model, rep: dict, fut: dict, final) -> None:
    """forecast.png: per series the history, splits, the evaluated model's test-span forecast beside seasonal
    naive, and ``final``'s forecast past the end (with a zoom on long series)."""
    from rnnkit.plots.forecast import plot_forecasts
    from rnnkit.tasks.forecast_metrics import seasonal_naive_forecast

    kind, _ = describe(final)
    times = final.forecast_times()
    H = model.config.horizon
    panels = []
    for s in model.series_:
        a, b = model._spans(len(s), s.name)
        base = np.concatenate([seasonal_naive_forecast(s.y[:o], min(H, len(s) - o), model.season_)
                               for o in range(b, len(s), H)])
        x, xf = _x(model, s, times[s.name])
        future = fut.get(s.name)
        if future is not None:
            future = {**future, "label": "forecast (future, model refit on all data)" if kind == "refit"
                      else "forecast (future, evaluated model)"}
        panels.append({"name": model.label(s), "y": s.y, "x": x, "x_future": xf,
                       "xlabel": getattr(model, "time_name_", None) or "time step", "ylabel": s.target,
                       "train_end": a, "val_end": b, "test": rep["forecasts"][s.name], "future": future,
                       "baseline": {"label": f"seasonal naive (m={model.season_})", "values": base}})
    m = rep["metrics"]
    plot_forecasts(path, panels, model.config.interval,
                   title=f"{model.config.cell} forecaster, test MASE {m['model']['mase']:.3f} vs seasonal naive "
                         f"{m['seasonal_naive']['mase']:.3f}")


# -- backtest -------------------------------------------------------------------------------------------
def write_backtest_csv(path, res: dict) -> None:
    """backtest.csv: one row per fold and forecaster (then the means over folds): the fold's origin (index
    of its first forecast point and its time label) and MAE, RMSE, sMAPE, MASE, interval coverage."""
    from rnnkit.io import atomic_write_text

    cols = ("mae", "rmse", "smape", "mase", "coverage")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["fold", "origin", "origin_time", "forecaster", *cols])

    def num(d, c):
        return f"{d[c]:.6g}" if c in d else ""

    for k, r in enumerate(res["folds"]):
        for name, d in r["metrics"].items():
            w.writerow([k + 1, r["origin"], r.get("origin_time") or "", name, *(num(d, c) for c in cols)])
    for name, d in res["mean"].items():
        w.writerow(["mean", "", "", name, *(num(d, c) for c in cols)])
    atomic_write_text(path, buf.getvalue())


def plot_backtest_run(path, series, res: dict, config, time_name=None) -> None:
    """backtest.png: the first series with every fold's forecast, and MASE per fold of each forecaster."""
    from rnnkit.plots.forecast import plot_backtest
    from rnnkit.tasks.forecast_time import IrregularTime, parse_labels

    s = series[0]
    x = None
    if s.time is not None:
        try:
            x = parse_labels(s.time)[0]
            if x.dtype.kind in "Mi" and np.any(np.diff(x.astype(np.int64)) <= 0):
                x = None
        except IrregularTime:
            x = None
    folds = []
    for k, r in enumerate(res["folds"]):
        f = r["forecasts"][s.name]
        folds.append({"start": f["start"], "mean": f["mean"], "lower": f["lower"], "upper": f["upper"],
                      "label": r.get("origin_time") or f"origin {r['origin']}"})
    scores = {name: [r["metrics"][name]["mase"] for r in res["folds"]] for name in res["folds"][0]["metrics"]}
    name = s.target if s.name == "series" else s.name
    plot_backtest(path, {"name": name, "y": s.y, "x": x, "xlabel": time_name if x is not None else None,
                         "ylabel": s.target}, folds, scores, config.interval,
                  title=f"{config.cell} forecaster, rolling-origin backtest, horizon {config.horizon}")
