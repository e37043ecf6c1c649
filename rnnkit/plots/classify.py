"""Classification figures: the confusion matrix and the learning curves of each ensemble member."""
from __future__ import annotations

import os

import numpy as np

from rnnkit.plots import pyplot, save


def confusion_matrix(conf, labels, path: str | os.PathLike, title: str = "") -> str:
    """Rows true class, columns predicted; cells coloured by the row's fraction, labelled with counts."""
    plt = pyplot()
    conf = np.asarray(conf)
    n = len(labels)
    frac = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    size = min(12.0, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.6 else "black")
    names = [str(v)[:12] for v in labels]
    ax.set_xticks(range(n), names, rotation=90 if n > 8 else 0, fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    return save(fig, path)


def learning_curves(rows: list[dict], path: str | os.PathLike, title: str = "") -> str:
    """Training loss, validation loss and validation accuracy against epochs, one line style per member."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    members = sorted({r["member"] for r in rows})
    for m in members:
        mine = [r for r in rows if r["member"] == m]
        tr = [(r["epoch"], r["train_loss"]) for r in mine if r.get("train_loss") is not None]
        va = [(r["epoch"], r["val_loss"], r["val_acc"]) for r in mine if r.get("val_loss") is not None]
        tag = f" (member {m})" if len(members) > 1 else ""
        if tr:
            ax_loss.plot(*zip(*tr), lw=1.0, label="train" + tag)
        if va:
            e, loss, acc = zip(*va)
            ax_loss.plot(e, loss, lw=1.2, ls="--", label="validation" + tag)
            ax_acc.plot(e, acc, lw=1.2, label="validation" + tag)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_loss.set_yscale("log")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save(fig, path)
