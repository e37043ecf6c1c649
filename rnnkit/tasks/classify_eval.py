"""Evaluating a classifier beside honest baselines on the same split: majority class, 1-NN Euclidean,
1-NN DTW with the full window and with a window chosen by leave-one-out on the training data."""
from __future__ import annotations

import numpy as np

from rnnkit.data.layout import as_cases
from rnnkit.tasks.classify_metrics import report


def evaluate(model, X_test, y_test, X_train=None, y_train=None, baselines: bool = True) -> dict:
    """Metrics of ``model`` on (X_test, y_test) (see :func:`rnnkit.tasks.classify_metrics.report`), plus,
    when the training data are given and ``baselines`` is true, ``baselines`` (name -> test accuracy),
    ``baseline_details`` and ``warnings`` (the model does not beat the best baseline)."""
    proba = model.predict_proba(X_test)
    pred = model.classes_[proba.argmax(axis=1)]
    rep = report(np.asarray(y_test), pred, list(model.classes_.tolist()))
    rep["warnings"] = []
    if baselines and X_train is not None and y_train is not None:
        from rnnkit.tasks.classify_baselines import baseline_report

        details = baseline_report(as_cases(X_train), np.asarray(y_train), as_cases(X_test), np.asarray(y_test))
        rep["baseline_details"] = details
        rep["baselines"] = baseline_accuracies(details)
        best_name, best = max(rep["baselines"].items(), key=lambda kv: kv[1])
        if rep["accuracy"] <= best:
            rep["warnings"].append(f"the classifier ({rep['accuracy']:.4f}) does not beat the best baseline, "
                                   f"{best_name} ({best:.4f})")
    if rep["unseen"]:
        rep["warnings"].append("test labels never seen in training: " + ", ".join(rep["unseen"]))
    return rep


LABELS = {"majority": "majority class", "1nn_euclidean": "1-NN Euclidean", "1nn_dtw_full": "1-NN DTW (full window)",
          "1nn_dtw_learned": "1-NN DTW (learned window)"}


def baseline_accuracies(details: dict) -> dict:
    """Readable name -> test accuracy from :func:`rnnkit.tasks.classify_baselines.baseline_report`'s result."""
    out = {}
    for name, entry in details.items():
        if isinstance(entry, dict) and "accuracy" in entry:
            label = LABELS.get(name, name)
            if "window" in entry:
                label = f"1-NN DTW (window {entry['window']:.0%}, LOO)"
            out[label] = float(entry["accuracy"])
    return out
