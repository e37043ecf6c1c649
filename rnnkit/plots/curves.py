"""Learning curves: training and validation loss against steps and against minutes, in nats and bits.

``learning_curves(rows, path)`` takes the rows of a run's ``metrics.csv`` (dicts with ``kind`` "train" or
"val", ``step``, ``minutes``, ``loss`` in nats) and writes one PNG with two panels side by side.
"""
from __future__ import annotations

import math
import os

from rnnkit.plots import pyplot, save


def _series(rows, kind: str, x: str):
    pts = [(float(r[x]), float(r["loss"])) for r in rows if r["kind"] == kind and r.get("loss") not in (None, "")]
    pts = [(a, b) for a, b in pts if math.isfinite(b)]
    return [a for a, _ in pts], [b for _, b in pts]


def learning_curves(rows, path: str | os.PathLike, title: str | None = None) -> str:
    """Two panels (loss vs step, loss vs minutes), train and validation; right axis in bits per character."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, x, label in ((axes[0], "step", "step"), (axes[1], "minutes", "training time (minutes)")):
        xs, ys = _series(rows, "train", x)
        if xs:
            ax.plot(xs, ys, lw=1.0, alpha=0.7, label="train (mean over 10 steps)")
        xs, ys = _series(rows, "val", x)
        if xs:
            ax.plot(xs, ys, "o-", lw=1.5, ms=4, label="validation")
            ax.annotate(f"{ys[-1]:.3f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 6), fontsize=8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        sec = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
        sec.set_ylabel("bits per character")
        ax.set_ylabel("loss (nats per character)")
    axes[0].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)
