"""Classification metrics: accuracy, balanced accuracy, macro F1, a per-class table and the confusion matrix.

Labels are compared as given (any type). A test label the model never saw in training counts as an error
for every case that carries it and is reported by name, not treated as a crash.
"""
from __future__ import annotations

import numpy as np


def report(y_true, y_pred, classes) -> dict:
    """Metrics of predictions ``y_pred`` against ``y_true``; ``classes`` are the labels the model knows.

    Returns accuracy, balanced_accuracy (mean recall over the classes present in y_true), macro_f1 (mean F1 over
    the labels that occur in y_true or y_pred, as scikit-learn computes it), per_class rows (label, support,
    precision, recall, f1), confusion (rows true, columns predicted, over ``labels``), labels, and unseen (test
    labels unknown to the model, with counts).
    """
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    known = list(classes)
    unseen = sorted(set(y_true.tolist()) - set(known), key=str)
    labels = known + unseen
    index = {v: i for i, v in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        conf[index[t], index[p]] += 1
    support = conf.sum(axis=1)
    predicted = conf.sum(axis=0)
    tp = np.diag(conf)
    precision = np.divide(tp, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(labels)),
                   where=(precision + recall) > 0)
    present = support > 0
    rows = [{"label": labels[i], "support": int(support[i]), "precision": float(precision[i]),
             "recall": float(recall[i]), "f1": float(f1[i])} for i in range(len(labels))]
    scored = present | (predicted > 0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(1, len(y_true))),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[scored].mean()) if scored.any() else 0.0,
        "per_class": rows,
        "confusion": conf.tolist(),
        "labels": labels,
        "unseen": {str(v): int((y_true == v).sum()) for v in unseen},
    }


def format_report(rep: dict, baselines: dict | None = None) -> str:
    """A plain-text summary: headline metrics, the baselines beside them, and the per-class table."""
    lines = [f"accuracy {rep['accuracy']:.4f} | balanced accuracy {rep['balanced_accuracy']:.4f} | "
             f"macro F1 {rep['macro_f1']:.4f} | {rep['n']} cases"]
    if baselines:
        lines.append("")
        lines.append(f"{'model':<28} {'accuracy':>9}")
        lines.append(f"{'rnnkit classifier':<28} {rep['accuracy']:>9.4f}")
        for name, acc in baselines.items():
            lines.append(f"{name:<28} {acc:>9.4f}")
    lines.append("")
    lines.append(f"{'class':<16} {'support':>8} {'precision':>10} {'recall':>8} {'f1':>8}")
    for r in rep["per_class"]:
        lines.append(f"{str(r['label'])[:16]:<16} {r['support']:>8} {r['precision']:>10.3f} {r['recall']:>8.3f} "
                     f"{r['f1']:>8.3f}")
    if rep["unseen"]:
        seen = ", ".join(f"{k!r} ({v} cases)" for k, v in rep["unseen"].items())
        lines.append(f"test labels never seen in training (always counted wrong): {seen}")
    return "\n".join(lines)
