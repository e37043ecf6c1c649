"""Forecast plots: the history with the train/validation/test boundaries, the test-span forecast with its
interval beside the truth and a baseline, the forecast past the end of the data (with a zoomed panel on the
last horizons of a long series), and a backtest's folds with their scores."""
from __future__ import annotations

import numpy as np

from rnnkit.plots import pyplot, save


def _plot_x(values) -> np.ndarray:
    """Dates as datetime64[s] (matplotlib draws them on a date axis), anything else as floats."""
    v = np.asarray(values)
    return v.astype("datetime64[s]") if v.dtype.kind == "M" else v.astype(float)


def _between(x, k: int):
    """The x halfway between points k - 1 and k (a span boundary)."""
    if k <= 0 or k >= len(x):
        return x[min(max(k, 0), len(x) - 1)]
    if x.dtype.kind == "M":
        a, b = x[k - 1].astype(np.int64), x[k].astype(np.int64)
        return np.datetime64(int((a + b) // 2), "s")
    return (x[k - 1] + x[k]) / 2


def _draw(ax, p: dict, x, xf, interval: float, first: int = 0) -> None:
    """One series' panel, showing points ``first`` onward (0: all)."""
    y = np.asarray(p["y"], float)
    seen = [y[first:]]
    ax.plot(x[first:], y[first:], color="0.25", lw=1.2, label="history / truth")
    for key, style, label in (("train_end", "--", "end of training span"),
                              ("val_end", ":", "start of test span")):
        k = p.get(key)
        if k is not None and 0 < k < len(y) and k >= first:
            ax.axvline(_between(x, k), color="0.45", ls=style, lw=1.0, label=label)
    test = p.get("test")
    if test is not None:
        sl = slice(test["start"], test["start"] + len(test["mean"]))
        tt = x[sl]
        ax.plot(tt, test["mean"], color="C0", lw=1.6, label="forecast (test span)")
        seen.append(np.asarray(test["mean"], float))
        if test.get("lower") is not None:
            ax.fill_between(tt, test["lower"], test["upper"], color="C0", alpha=0.2,
                            label=f"{interval:.0%} interval (test span)")
            seen += [np.asarray(test["lower"], float), np.asarray(test["upper"], float)]
        base = p.get("baseline")
        if base is not None:
            ax.plot(tt, base["values"], color="C3", lw=1.0, ls="--", label=base["label"])
            seen.append(np.asarray(base["values"], float))
    fut = p.get("future")
    if fut is not None and len(xf):
        ax.plot(xf, fut["mean"], color="C2", lw=1.6, label=fut.get("label", "forecast (future)"))
        ax.fill_between(xf, fut["lower"], fut["upper"], color="C2", alpha=0.2,
                        label=f"{interval:.0%} interval (future)")
        seen += [np.asarray(fut["lower"], float), np.asarray(fut["upper"], float)]
    if first > 0:  # a zoom: fit the y range to what is visible
        lo = min(float(np.nanmin(v)) for v in seen if len(v))
        hi = max(float(np.nanmax(v)) for v in seen if len(v))
        pad = 0.06 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(x[first], xf[-1] if len(xf) else x[-1])
    ax.set_xlabel(p.get("xlabel") or "time step")
    ax.set_ylabel(p.get("ylabel") or "value")
    ax.tick_params(axis="x", labelsize=8, rotation=20 if x.dtype.kind == "M" else 0)


def plot_forecasts(path, panels: list[dict], interval: float = 0.9, title: str = "", zoom: int = 4) -> str:
    """One row per series (at most 6). Each panel dict: ``name``, ``y`` (N,), ``x`` (N,) and ``x_future`` (H,)
    (dates as datetime64 or numbers; default positions), ``xlabel``, ``ylabel``, ``train_end``, ``val_end``,
    ``test`` = {"start", "mean", "lower", "upper"} (the test-span forecast), ``future`` = {"mean", "lower",
    "upper", "label"} (beyond the data), ``baseline`` = {"label", "values"} over the test span.

    A series longer than ``2 * zoom`` horizons gets a second panel on its right showing only its last
    ``zoom`` horizons and the future, so that the test span and the forecast stay readable.
    """
    plt = pyplot()
    panels = panels[:6]
    long = [_zoom_start(p, zoom) > 0 for p in panels]
    cols = 2 if any(long) else 1
    fig, axes = plt.subplots(len(panels), cols, figsize=(7.5 * cols, 4.0 * len(panels)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2] if cols == 2 else [1]})
    for row, p in enumerate(panels):
        n = len(p["y"])
        x = _plot_x(p["x"]) if p.get("x") is not None else np.arange(n, dtype=float)
        H = len(p["future"]["mean"]) if p.get("future") is not None else 0
        xf = _plot_x(p["x_future"]) if p.get("x_future") is not None else np.arange(n, n + H, dtype=float)
        _draw(axes[row, 0], p, x, xf, interval)
        axes[row, 0].set_title(p.get("name", ""), fontsize=10)
        if cols == 2:
            if long[row]:
                first = _zoom_start(p, zoom)
                _draw(axes[row, 1], p, x, xf, interval, first=first)
                axes[row, 1].set_title(f"{p.get('name', '')}: last {n - first} points and the forecast",
                                       fontsize=10)
            else:
                axes[row, 1].axis("off")
        # one legend per row, outside the axes so that it hides no data; it serves both panels of the row
        axes[row, -1].legend(*axes[row, 0].get_legend_handles_labels(), fontsize=7, loc="upper left",
                             bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def _zoom_start(p: dict, zoom: int) -> int:
    """First index of the zoomed view (0: the series is short enough to read whole)."""
    n = len(p["y"])
    test = p.get("test")
    H = len(test["mean"]) if test is not None else len((p.get("future") or {"mean": []})["mean"])
    if H == 0 or n <= 2 * zoom * H:
        return 0
    return max(0, n - zoom * H)


def plot_backtest(path, panel: dict, folds: list[dict], scores: dict, interval: float = 0.9,
                  title: str = "") -> str:
    """Two panels. Top: the end of the series (``panel``: ``y``, ``x``, ``xlabel``, ``ylabel``) with each
    fold's forecast (``folds``: {"start", "mean", "lower", "upper", "label"}). Bottom: MASE per fold of each
    forecaster (``scores``: name -> list over folds), the model's mean as a dashed line."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.2))
    y = np.asarray(panel["y"], float)
    n = len(y)
    x = _plot_x(panel["x"]) if panel.get("x") is not None else np.arange(n, dtype=float)
    H = max(len(f["mean"]) for f in folds)
    first = max(0, min(f["start"] for f in folds) - 3 * H)
    top.plot(x[first:], y[first:], color="0.25", lw=1.2, label="truth")
    for k, f in enumerate(folds):
        sl = slice(f["start"], f["start"] + len(f["mean"]))
        color = f"C{k % 10}"
        top.plot(x[sl], f["mean"], color=color, lw=1.6, label=f.get("label", f"fold {k + 1}"))
        if f.get("lower") is not None:
            top.fill_between(x[sl], f["lower"], f["upper"], color=color, alpha=0.15)
        top.axvline(_between(x, f["start"]), color=color, ls="--", lw=0.8,
                    label=f"origin of fold {k + 1}" if k == 0 or len(folds) <= 10 else None)  # a legend row each
    top.set_xlabel(panel.get("xlabel") or "time step")
    top.set_ylabel(panel.get("ylabel") or "value")
    top.set_title(f"{panel.get('name', '')}: forecasts at each origin ({interval:.0%} intervals shaded)",
                  fontsize=10)
    top.legend(fontsize=7, loc="upper left")
    folds_x = np.arange(1, len(folds) + 1)
    for k, (name, vals) in enumerate(scores.items()):
        bottom.plot(folds_x, vals, marker="o", color=f"C{k}", lw=1.4 if name == "model" else 1.0, label=name)
    model = np.asarray(scores.get("model", []), float)
    if model.size:
        bottom.axhline(float(np.mean(model)), color="C0", ls="--", lw=1.0,
                       label=f"model, mean over folds ({np.mean(model):.3f})")
    bottom.axhline(1.0, color="0.5", ls=":", lw=0.8, label="MASE 1 (in-sample seasonal naive)")
    bottom.set_xticks(folds_x, [f.get("label", str(k + 1)) for k, f in enumerate(folds)], fontsize=8)
    bottom.set_xlabel("fold (forecast origin)")
    bottom.set_ylabel("MASE on the fold's horizon")
    bottom.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
