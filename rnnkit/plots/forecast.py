"""Forecast plots: the history, the train/validation/test boundaries, the test-span forecast with its
interval beside the truth, and the forecast past the end of the data."""
from __future__ import annotations

import numpy as np

from rnnkit.plots import pyplot, save


def plot_forecasts(path, panels: list[dict], interval: float = 0.9, title: str = "") -> str:
    """One panel per series. Each panel dict: ``name``, ``y`` (N,), optional ``time`` (N labels),
    ``train_end``, ``val_end``,
    ``test`` = {"start", "mean", "lower", "upper"} (the test-span forecast), ``future`` = {"mean",
    "lower", "upper"} (beyond the data), ``baseline`` = {"label", "values"} over the test span."""
    plt = pyplot()
    panels = panels[:6]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        y = np.asarray(p["y"], float)
        t = np.arange(len(y))
        ax.plot(t, y, color="0.25", lw=1.2, label="history / truth")
        for key, style in (("train_end", "--"), ("val_end", ":")):
            if p.get(key) is not None:
                ax.axvline(p[key] - 0.5, color="0.5", ls=style, lw=0.8)
        if p.get("train_end") is not None:
            ax.text(p["train_end"] - 0.5, ax.get_ylim()[1], " val", va="top", fontsize=8, color="0.4")
        if p.get("val_end") is not None:
            ax.text(p["val_end"] - 0.5, ax.get_ylim()[1], " test", va="top", fontsize=8, color="0.4")
        test = p.get("test")
        if test is not None:
            tt = test["start"] + np.arange(len(test["mean"]))
            ax.plot(tt, test["mean"], color="C0", lw=1.6, label="forecast (test span)")
            if test.get("lower") is not None:
                ax.fill_between(tt, test["lower"], test["upper"], color="C0", alpha=0.2,
                                label=f"{interval:.0%} interval")
        base = p.get("baseline")
        if base is not None and test is not None:
            ax.plot(tt, base["values"], color="C3", lw=1.0, ls="--", label=base["label"])
        fut = p.get("future")
        if fut is not None:
            tf = len(y) + np.arange(len(fut["mean"]))
            ax.plot(tf, fut["mean"], color="C2", lw=1.6, label="forecast (future)")
            ax.fill_between(tf, fut["lower"], fut["upper"], color="C2", alpha=0.2)
        ax.set_title(p.get("name", ""), fontsize=10)
        labels = p.get("time")
        if labels:
            ticks = np.linspace(0, len(labels) - 1, min(8, len(labels))).round().astype(int)
            ax.set_xticks(ticks, [str(labels[i]) for i in ticks], fontsize=8)
        else:
            ax.set_xlabel("time step")
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
