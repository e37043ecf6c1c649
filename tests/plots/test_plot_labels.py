"""The figures as a reader meets them: every drawn panel has labelled axes, every dashed or dotted reference
line is named in a legend, a validation accuracy never sits on an axis labelled "training loss", and the
gate-saturation histogram explains its shaded bands. The Figure objects are inspected before they are saved."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from rnnkit.plots import classify as pc  # noqa: E402
from rnnkit.plots import curves as pcu  # noqa: E402
from rnnkit.plots import gradients as pg  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """Figures handed to ``save`` by the plot modules, kept open for inspection."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        return str(path)
    for mod in (pg, pc, pcu):
        monkeypatch.setattr(mod, "save", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def _drawn_axes(fig):
    """Axes that show data (not switched off, not a colorbar)."""
    return [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>" and (ax.lines or ax.patches
                                                                                       or ax.images)]


def _check(fig):
    axes = _drawn_axes(fig)
    assert axes
    # a legend may serve several panels (placed beside a row, or on the figure): any legend of the figure counts
    shared = {t.get_text() for legend in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
              for t in legend.get_texts()}
    for ax in axes:
        assert ax.get_xlabel().strip(), f"panel {ax.get_title()!r} has no x label"
        assert ax.get_ylabel().strip(), f"panel {ax.get_title()!r} has no y label"
        legend = ax.get_legend()
        names = ({t.get_text() for t in legend.get_texts()} if legend else set()) | shared
        for line in ax.lines:
            if line.get_linestyle() in ("--", ":", "-."):
                assert line.get_label() in names, f"dashed line {line.get_label()!r} not in the legend of " \
                                                  f"{ax.get_title()!r}"
        if "training loss" in ax.get_ylabel():  # what is drawn on this axis, not what the legends say
            drawn = [line.get_label() for line in ax.lines]
            assert not any("accuracy" in n or "validation" in n for n in drawn), (ax.get_ylabel(), drawn)


def _history(with_acc: bool):
    rows = []
    for step in range(10, 110, 10):
        rows.append({"kind": "train", "step": step, "loss": 1.0 / step, "grad_norm": 2.0,
                     "dh_ratio": 1e-3 * step})
        if step % 50 == 0:
            rows.append({"kind": "eval", "step": step, "val_metric": 0.4 + step / 500 if with_acc else 1 / step})
    return rows


@pytest.mark.parametrize("metric", ["accuracy", "mse"])
def test_training_diagnostics_keeps_validation_off_the_loss_axis(figures, metric):
    pg.training_diagnostics(_history(metric == "accuracy"), "unused.png", metric=metric)
    fig = figures[-1]
    _check(fig)
    labels = [ax.get_ylabel() for ax in _drawn_axes(fig)]
    assert f"validation {metric}" in labels and "training loss" in labels
    acc_ax = next(ax for ax in fig.axes if ax.get_ylabel() == f"validation {metric}")
    assert len(acc_ax.lines[0].get_xdata()) == 2  # the two evaluations, on their own axis
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any("vanishing" in t for t in legends) and any("exploding" in t for t in legends)


def test_gate_histograms_explain_bands(figures):
    rng = np.random.default_rng(0)
    acts = {"lstm": {"layer 0": {"i": rng.random(200), "f": rng.random(200), "g": rng.uniform(-1, 1, 200),
                                 "o": rng.random(200)}}}
    pg.gate_histograms(acts, "unused.png")
    fig = figures[-1]
    _check(fig)
    for ax in _drawn_axes(fig):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("saturated closed (< 0.1)" in t for t in texts) and any("saturated open (> 0.9)" in t
                                                                           for t in texts)
    assert any("Shaded bands" in t.get_text() for t in fig.texts)


def test_clipping_and_flow_and_table(figures):
    loss = [1.0, 0.5, float("nan")]
    pg.clipping_curves({"no clipping": {"loss": loss, "grad_norm": [1, 10, float("inf")]},
                        "clipped": {"loss": [1.0, 0.5, 0.4], "grad_norm": [1, 2, 3]}}, "unused.png")
    pg.gradient_flow({"lstm": {"dh": [np.linspace(1, 2, 5)], "jac": [np.linspace(1, 3, 5)]}}, "unused.png")
    pg.memory_table([{"cell": "lstm", "length": 10, "metric": 0.01, "solved": 1, "runs": 1, "steps": 100},
                     {"cell": "lstm", "length": 20, "metric": 0.2, "solved": 0, "runs": 1, "steps": None}],
                    "unused.png", baseline=0.17, threshold=0.04)
    for fig in figures:
        _check(fig)


def test_learning_curves_text_and_classify(figures):
    rows = [{"kind": "train", "step": s, "minutes": s / 100, "loss": 2 - s / 100} for s in range(10, 100, 10)]
    rows += [{"kind": "val", "step": 50, "minutes": 0.5, "loss": 1.7}, {"kind": "val", "step": 90, "minutes": 0.9,
                                                                         "loss": 1.5}]
    pcu.learning_curves(rows, "unused.png")
    crow = [{"member": 0, "epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_acc": 0.5 + e / 40}
            for e in range(1, 6)]
    pc.learning_curves(crow, "unused.png")
    pc.confusion_matrix([[3, 1], [0, 4]], ["a", "b"], "unused.png")
    for fig in figures:
        _check(fig)


def test_forecast_figures(figures, monkeypatch):
    from rnnkit.plots import forecast as pf

    monkeypatch.setattr(pf, "save", lambda fig, path: figures.append(fig) or str(path))
    y = np.sin(np.arange(80) / 3.0) + 2
    test = {"start": 74, "mean": y[74:] + 0.1, "lower": y[74:] - 0.5, "upper": y[74:] + 0.5}
    future = {"mean": np.full(6, 2.0), "lower": np.full(6, 1.0), "upper": np.full(6, 3.0)}
    pf.plot_forecasts("unused.png", [{"name": "y", "y": y, "train_end": 68, "val_end": 74, "test": test,
                                      "future": future, "baseline": {"label": "seasonal naive", "values": y[68:74]}}])
    folds = [{"start": 62 + 6 * k, "mean": y[62 + 6 * k:68 + 6 * k], "lower": None, "upper": None}
             for k in range(3)]
    pf.plot_backtest("unused.png", {"y": y, "name": "y"}, folds, {"model": [0.8, 0.9, 1.1],
                                                                   "naive": [1.0, 1.2, 1.1]})
    for fig in figures:
        _check(fig)
