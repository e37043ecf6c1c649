"""The sequence classifier exported to ONNX equals predict_proba (and each member's logits) in onnxruntime:
every branch and pooling, every normalisation, strided front-ends, bidirectional cells, ensembles, and
cases of unequal length padded with garbage."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.export.onnx import export_graphs
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.classify_train import Padded, predict_logits
from tests.export.util import close, run, session

SMALL = dict(model="auto", channels=(6, 5), kernels=(5, 3), hidden_size=6, front_size=4, epochs=2, patience=5, batch_size=8,
             max_minutes=1.0)


def waves(n, rng, lengths=(9, 40), channels=2):
    X, y = [], []
    for i in range(n):
        L = int(rng.integers(*lengths))
        t = np.arange(L) / 5.0 + rng.uniform(0, 6)
        base = [np.sin(t), np.sign(np.sin(t)), (t % 6.0) / 3.0 - 1][i % 3]
        X.append(np.stack([base * (c + 1) + 0.3 * rng.standard_normal(L) + c for c in range(channels)]))
        y.append(["saw", "sine", "square"][i % 3])
    return X, np.array(y)


def compare(clf, X):
    """Pad X with a non-zero value (the graph must ignore it), run the graph, compare with rnnkit."""
    lengths = np.array([c.shape[1] for c in X])
    Xp = np.full((len(X), X[0].shape[0], lengths.max()), 7.0, np.float32)
    for i, c in enumerate(X):
        Xp[i, :, :c.shape[1]] = c
    out = run(export_graphs(clf).graphs[""], X=Xp, lengths=lengths)
    diff = close(out["probs"], clf.predict_proba(X))
    data = Padded(clf._prepare(X), np.dtype(clf.config.dtype))
    for k, net in enumerate(clf.nets_):
        diff = max(diff, close(out["logits"][:, k], predict_logits(net, data)))
    return diff


@pytest.mark.parametrize("model", ["combined", "tdnn", "rnn"])
@pytest.mark.parametrize("pool", ["mean", "max", "last", "attention"])
def test_branches_and_pools(model, pool):
    rng = np.random.default_rng(1)
    X, y = waves(12, rng)
    normalize = {"mean": "global", "max": "series", "last": "series+scale", "attention": "series+scale"}[pool]
    clf = SequenceClassifier(pool=pool, stride=2, normalize=normalize, random_state=3, **{**SMALL, "model": model}).fit(X, y)
    compare(clf, X)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan"])
def test_cells_bidirectional_stacked_and_ensembles(cell):
    rng = np.random.default_rng(2)
    X, y = waves(12, rng)
    clf = SequenceClassifier(cell=cell, bidirectional=True, num_layers=2, stride=1, n_estimators=2,
                             normalize="none", random_state=4, **{**SMALL, "model": "rnn"}).fit(X, y)
    assert clf.nets_[0].front is None  # stride 1: the recurrent layer reads the series directly
    compare(clf, X)


def test_exported_from_a_saved_classifier_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X, y = waves(12, rng)
    clf = SequenceClassifier(random_state=0, stride=3, **SMALL).fit(X, y)
    clf.save(tmp_path / "model.safetensors")
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "clf.onnx")]) == 0
    info = json.loads((tmp_path / "clf.json").read_text())
    assert info["classes"] == ["saw", "sine", "square"] and info["graphs"]["main"]["inputs"]["X"] == ["B", 2, "T"]
    import onnx

    sess = session(onnx.load(str(tmp_path / "clf.onnx")))
    one = X[4][None].astype(np.float32)  # a single case, unpadded
    out = run(sess, X=one, lengths=np.array([one.shape[2]]))
    close(out["probs"], clf.predict_proba([X[4]]))
    assert info["classes"][int(out["probs"].argmax())] == clf.predict([X[4]])[0]


def test_unfitted_classifier_is_refused():
    with pytest.raises(UserError, match="not fitted"):
        export_graphs(SequenceClassifier())
