"""Forecast accuracy: MAE, RMSE, sMAPE, MASE, interval coverage, the naive baselines and the lag check.

All functions work on the original scale of the series. MASE divides by the in-sample MAE of the
seasonal-naive forecast on the training span (Hyndman & Koehler 2006), so 1.0 means "as good as
seasonal naive one step ahead in sample".
"""
from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "smape", "mase")


def mase_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal-naive (lag ``season``) forecast; lag 1 if the series is too short
    or the seasonal differences are all zero."""
    y = np.asarray(y_train, np.float64)
    for m in (season, 1):
        if m >= 1 and len(y) > m:
            s = float(np.mean(np.abs(y[m:] - y[:-m])))
            if s > 0:
                return s
    return float("nan")


def point_metrics(y_true, y_pred, scale: float) -> dict:
    """MAE, RMSE, sMAPE (percent, 0..200) and MASE (MAE / ``scale``) of flat arrays."""
    y = np.asarray(y_true, np.float64).ravel()
    f = np.asarray(y_pred, np.float64).ravel()
    err = f - y
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom), where=denom > 0)
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(err ** 2))), "smape": float(100 * np.mean(ratio)),
            "mase": float(mae / scale) if scale and np.isfinite(scale) else float("nan")}


def coverage(y_true, lower, upper) -> float:
    """Fraction of true values inside [lower, upper]."""
    y = np.asarray(y_true, np.float64).ravel()
    return float(np.mean((y >= np.ravel(lower)) & (y <= np.ravel(upper))))


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last observed value."""
    return np.full(horizon, float(history[-1]))


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """y[T + h] = y[T + h - m * (floor((h - 1) / m) + 1)]: the value one season back, repeated."""
    m = max(1, int(season))
    if len(history) < m:
        return naive_forecast(history, horizon)
    last = np.asarray(history[-m:], np.float64)
    return np.array([last[h % m] for h in range(horizon)])


def summarize(per_series: list[dict]) -> dict:
    """Pool per-series results: MAE/RMSE over all points, sMAPE/MASE averaged over series."""
    if len(per_series) == 1:
        return dict(per_series[0])
    out = {}
    n = np.array([d["n"] for d in per_series], np.float64)
    out["mae"] = float(np.sum(n * [d["mae"] for d in per_series]) / n.sum())
    out["rmse"] = float(np.sqrt(np.sum(n * np.square([d["rmse"] for d in per_series])) / n.sum()))
    for k in ("smape", "mase", "coverage"):
        vals = [d[k] for d in per_series if k in d]
        if vals:
            out[k] = float(np.nanmean(vals))
    out["n"] = int(n.sum())
    return out


def echo_ratio(y_true, y_pred, last_values) -> float:
    """How far the forecast moves away from the last observed value, relative to how far the truth moves.

    Near 0 means the forecast mostly echoes the last value (a naive forecast in disguise) while the truth
    changes; about 1 or more means the forecast moves as much as the series does.
    """
    y = np.asarray(y_true, np.float64)
    f = np.asarray(y_pred, np.float64)
    last = np.asarray(last_values, np.float64)
    move_truth = float(np.mean(np.abs(y - last)))
    if move_truth == 0:
        return float("inf")
    return float(np.mean(np.abs(f - last)) / move_truth)


BASELINES = (("seasonal_naive", "seasonal naive"), ("naive", "naive"), ("window_mlp", "the window MLP"))


def baseline_warnings(metrics: dict, where: str = "on the test span") -> list[str]:
    """One warning naming every baseline whose MASE is at most the model's (seasonal naive first), or none.

    ``where`` ends the sentence ("on the test span", "on average over the 3 folds")."""
    m = metrics["model"].get("mase")
    if m is None or not np.isfinite(m):
        return []
    lost = []
    for key, label in BASELINES:
        b = metrics.get(key, {}).get("mase", np.nan)
        # a tie with the window MLP is the model itself when the model is the window MLP (--cell mlp)
        if np.isfinite(b) and (m > b or (m == b and key != "window_mlp")):
            lost.append(f"{label} (MASE {m:.3f} vs {b:.3f})")
    if not lost:
        return []
    return [f"the model does not beat {', '.join(lost)} {where}; try --transform log, a different "
            "--lookback, or more data"]


def warnings_for(metrics: dict, echo: float, threshold: float = 0.2) -> list[str]:
    """Human-readable warnings: a baseline beats the model, or the model echoes the last value."""
    out = baseline_warnings(metrics)
    if np.isfinite(echo) and echo < threshold:
        out.append(f"lag check: the forecast mostly echoes the last observed value (it moves {echo:.0%} "
                   "as far as the truth does); the model may have learned a naive forecast")
    return out


def format_table(metrics: dict, keys=("model", "naive", "seasonal_naive", "window_mlp")) -> str:
    """A plain-text table of the metrics of each forecaster (rows) on the test span."""
    lines = [f"{'forecaster':<16}{'MAE':>10}{'RMSE':>10}{'sMAPE%':>9}{'MASE':>8}{'cover':>7}"]
    for k in keys:
        if k not in metrics:
            continue
        d = metrics[k]
        cov = f"{d['coverage']:7.2f}" if "coverage" in d else f"{'':>7}"
        lines.append(f"{k:<16}{d['mae']:10.3f}{d['rmse']:10.3f}{d['smape']:9.2f}{d['mase']:8.3f}{cov}")
    return "\n".join(lines)
