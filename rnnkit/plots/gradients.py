"""Plots of gradient flow and long-range memory: dL/dh_t and ||ds_T/dh_t|| over time, gate saturation
histograms, clipped vs unclipped loss curves, the memory table and a training run's diagnostics."""
from __future__ import annotations

import math

import numpy as np

from rnnkit.plots import pyplot, save

COLORS = {"elman": "tab:red", "jordan": "tab:orange", "lstm": "tab:blue", "gru": "tab:green"}


def _color(name: str, i: int) -> str:
    return COLORS.get(name.split()[0].lower(), f"C{i % 10}")


def _positive(y) -> np.ndarray:
    """Values for a log axis: zeros and non-finite values become NaN (a gap, not a crash)."""
    y = np.asarray(y, dtype=np.float64).copy()
    y[~np.isfinite(y) | (y <= 0)] = np.nan
    return y


def gradient_flow(curves: dict, path, title: str = "") -> str:
    """``curves``: ``{label: {"dh": [(T,) per layer], "jac": [(T,) per layer]}}``.

    Left: ||dL/dh_t|| for a loss at the last step; right: ||ds_T/dh_t||; both against t, log scale,
    one line per cell (dashed for deeper layers).
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    panels = (("dh", "||dL/dh_t||  (loss at the last step)"), ("jac", "||ds_T/dh_t||  (spectral norm)"))
    colors, used = {}, set()
    for i, label in enumerate(curves):  # one colour per curve, the cell's own colour first
        colors[label] = _color(label, i) if _color(label, i) not in used else "grey"
        used.add(colors[label])
    for ax, (key, ylabel) in zip(axes, panels):
        for i, (label, c) in enumerate(curves.items()):
            for layer, y in enumerate(c.get(key, [])):
                style = "-" if layer == 0 else ("--" if layer == 1 else ":")
                name = label if len(c[key]) == 1 else f"{label} layer {layer}"
                ax.plot(np.arange(len(y)), _positive(y), style, color=colors[label], label=name, lw=1.6)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("error signal reaching step t")
    axes[1].set_title("sensitivity of the final state to h_t")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def gate_histograms(acts: dict, path, low: float = 0.1, high: float = 0.9, title: str = "") -> str:
    """``acts``: ``{label: {layer: {gate: array}}}`` (from ``layer.gate_activations()``).

    One row per (label, layer), one column per gate; tanh gates are rescaled to (0, 1) like in
    :func:`rnnkit.diagnostics.gate_saturation`, and the saturated fractions are in each title.
    """
    from rnnkit.diagnostics import TANH_GATES

    rows = [(label, layer, gates) for label, layers in acts.items() for layer, gates in layers.items()]
    ncols = max(len(g) for _, _, g in rows)
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 2.5 * len(rows)), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for r, (label, layer, gates) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(gates):
                ax.axis("off")
                continue
            gate, a = list(gates.items())[c]
            v = np.asarray(a, dtype=np.float64).ravel()
            v = (v + 1) / 2 if gate in TANH_GATES else v
            left, right = (v < low).mean(), (v > high).mean()
            ax.hist(v, bins=bins, color="grey" if "untrained" in label else _color(label, r), alpha=0.85,
                    label="activations")
            ax.axvspan(0, low, color="tab:blue", alpha=0.12, label=f"saturated closed (< {low:g}): {left:.0%}")
            ax.axvspan(high, 1, color="tab:orange", alpha=0.12, label=f"saturated open (> {high:g}): {right:.0%}")
            scaled = " (tanh, rescaled)" if gate in TANH_GATES else ""
            ax.set_title(f"{label} {layer} gate {gate}{scaled}", fontsize=8)
            ax.set_xlabel("gate activation (0 to 1)", fontsize=8)
            ax.set_ylabel("count (steps x units)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper center")
    fig.text(0.5, 0.0, f"Shaded bands: a gate below {low:g} is saturated shut (blocks its signal), above {high:g} "
             "saturated open; there its derivative is near 0, so little gradient flows through it. The legend "
             "gives the share of activations in each band.", ha="center", va="top", fontsize=8, wrap=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def clipping_curves(curves: dict, path, title: str = "") -> str:
    """``curves``: ``{label: {"loss": [...], "grad_norm": [...]}}``; loss and raw gradient norm per step,
    one column per label, log scale; a run that diverged is marked where it stopped."""
    plt = pyplot()
    n = len(curves)
    fig, axes = plt.subplots(2, n, figsize=(5.5 * n, 6), squeeze=False, sharex=True)
    for c, (label, run) in enumerate(curves.items()):
        for r, key in enumerate(("loss", "grad_norm")):
            ax = axes[r, c]
            y = np.asarray(run.get(key, []), dtype=np.float64)
            ax.plot(np.arange(1, len(y) + 1), _positive(y), color="tab:red" if r else "tab:blue", lw=1.2,
                    label="training loss" if r == 0 else "gradient norm")
            bad = np.flatnonzero(~np.isfinite(y))
            if len(bad):
                ax.axvline(bad[0] + 1, color="black", ls="--", lw=1,
                           label=f"first non-finite value (step {bad[0] + 1})")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_ylabel("training loss" if r == 0 else "gradient norm (before clipping)")
            ax.set_xlabel("step")
            ax.legend(fontsize=8)
            if r == 0:
                ax.set_title(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def memory_table(results: list[dict], path, baseline: float | None = None, threshold: float | None = None,
                 metric: str = "test MSE", title: str = "") -> str:
    """``results``: one dict per (cell, length) with ``metric`` (median over seeds), ``solved`` (how many
    seeds solved it) of ``runs``, and ``steps`` (median steps to solve, None if no seed did). Left: the
    test metric by length (filled marker: every seed solved it, half: some did); right: steps to solve."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    cells = list(dict.fromkeys(r["cell"] for r in results))
    for i, cell in enumerate(cells):
        rows = sorted((r for r in results if r["cell"] == cell), key=lambda r: r["length"])
        L = [r["length"] for r in rows]
        color = _color(cell, i)
        axes[0].plot(L, _positive([r["metric"] for r in rows]), "-", color=color, label=cell)
        for r in rows:
            runs = r.get("runs", 1)
            fill = "full" if r["solved"] == runs else ("left" if r["solved"] else "none")
            axes[0].plot(r["length"], r["metric"], "o", color=color, fillstyle=fill, mfc=color, mfcalt="white")
        steps = [r["steps"] if r["steps"] is not None and r["solved"] else math.nan for r in rows]
        axes[1].plot(L, steps, "o-", color=color, label=cell)
    if baseline is not None:
        axes[0].axhline(baseline, color="grey", ls=":", label=f"chance ({baseline:.3g})")
    if threshold is not None:
        axes[0].axhline(threshold, color="black", ls="--", lw=1, label=f"solved below {threshold:g}")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("sequence length T")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xticks(sorted({r["length"] for r in results}))
        ax.set_xticklabels([str(t) for t in sorted({r["length"] for r in results})])
    if "MSE" in metric:
        axes[0].set_yscale("log")
    axes[0].set_ylabel(metric + " (median over seeds; filled = solved)")
    axes[1].set_ylabel("training steps to solve (median)")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def training_diagnostics(rows: list[dict], path, title: str = "", metric: str = "metric") -> str:
    """A training run's metrics (one dict per logged step): loss, global gradient norm and the
    early-to-late dL/dh ratio with the vanishing/exploding thresholds, on log scales."""
    from rnnkit.diagnostics import EXPLODE, VANISH

    plt = pyplot()
    panels = [("loss", "training loss"), ("val_metric", f"validation {metric}"),
              ("grad_norm", "gradient norm (before clipping)"), ("dh_ratio", "early / late ||dL/dh_t||")]
    panels = [p for p in panels if any(r.get(p[0]) not in (None, "") for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        pts = [(r["step"], float(r[key])) for r in rows if key in r and r[key] not in ("", None)]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, _positive(y) if key != "val_metric" else y, "o-" if key == "val_metric" else "-",
                    ms=3, lw=1, label=label)
        if key == "dh_ratio":
            ax.axhline(VANISH, color="grey", ls="--", lw=1, label=f"vanishing below {VANISH:g}")
            ax.axhline(EXPLODE, color="black", ls="--", lw=1, label=f"exploding above {EXPLODE:g}")
        if key == "val_metric" and "accuracy" in metric:
            ax.set_ylim(0, 1.02)  # a fraction: linear scale
        else:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
