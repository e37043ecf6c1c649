"""The "rocket" classifier exported to ONNX equals predict_proba in onnxruntime: uni- and multivariate, equal and
unequal lengths (cases shorter than a kernel's span too), every normalisation, one and two members; its PPV
features equal RandomTDNN.transform bit for bit, flat stretches (outputs tied with biases) included; the CLI
exports a rocket run folder as ONNX and refuses --format torch with a pointer to --format onnx."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from rnnkit.cli import main
from rnnkit.export.classify_rocket import features, features_by_case
from rnnkit.export.graph import FLOAT, INT64, Graph
from rnnkit.export.onnx import export_graphs
from rnnkit.nn.random_tdnn import RandomTDNN
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.classify_train import Padded
from tests.export.util import close, run, session
from tests.test_cli_classify import toy_cases, write_ts


def waves(n, rng, lengths, channels):
    """Three shapes with noise; ``lengths`` a fixed int or a (low, high) range."""
    X, y = [], []
    for i in range(n):
        L = lengths if isinstance(lengths, int) else int(rng.integers(*lengths))
        t = np.arange(L) / 4.0 + rng.uniform(0, 6)
        base = [np.sin(t), np.sign(np.sin(t)), (t % 5.0) / 2.5 - 1][i % 3]
        X.append(np.stack([base * (c + 1) + 0.3 * rng.standard_normal(L) + c for c in range(channels)]))
        y.append(["saw", "sine", "square"][i % 3])
    return X, np.array(y)


def padded(X, fill=np.nan, extra=3):
    """X as one (B, C, T) float32 array padded with ``fill`` (and ``extra`` steps past the longest case)."""
    lengths = np.array([c.shape[1] for c in X])
    Xp = np.full((len(X), X[0].shape[0], lengths.max() + extra), fill, np.float32)
    for i, c in enumerate(X):
        Xp[i, :, :c.shape[1]] = c
    return Xp, lengths


def feature_graph(tdnn, C):
    """A session computing one RandomTDNN's features: x (B, C, T), lengths (B,) -> F (B, n_features) for the
    whole batch at once and Fc case by case (as the classifier's graph does)."""
    g = Graph("rocket_features")
    x = g.input("x", FLOAT, ["B", C, "T"])
    lengths = g.input("lengths", INT64, ["B"])
    g.output(features(g, tdnn, x, lengths), "F", FLOAT, ["B", len(tdnn.biases)])
    g.output(features_by_case(g, tdnn, x, lengths), "Fc", FLOAT, ["B", len(tdnn.biases)])
    return session(g.model())


def same_features(tdnn, xs, lengths):
    """Assert the graph's features of right-padded xs (B, T, C) equal transform's bit for bit."""
    expected = tdnn.transform(xs, lengths)
    out = run(feature_graph(tdnn, xs.shape[2]), x=np.ascontiguousarray(xs.transpose(0, 2, 1)), lengths=lengths)
    for got in out.values():
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.array_equal(got, expected), f"{np.mean(got != expected):.2e} of the features differ"


def check(clf, X):
    """The graph's probs and per-member logits against rnnkit's, the padding filled with NaN; the first
    member's features bit for bit. The graph reads float32, so rnnkit gets the same float32 values (a raw
    value rounded differently can move a PPV feature by a whole step)."""
    X = [c.astype(np.float32).astype(np.float64) for c in X]
    Xp, lengths = padded(X)
    out = run(export_graphs(clf).graphs[""], X=Xp, lengths=lengths)
    close(out["probs"], clf.predict_proba(X))
    data = Padded(clf._prepare(X), np.float32)
    for k, member in enumerate(clf.nets_):
        r = member.readout
        close(out["logits"][:, k], r.decision(member.tdnn.transform(data.xs, data.lengths)) / r.temperature)
    same_features(clf.nets_[0].tdnn, data.xs, data.lengths)
    return out


@pytest.mark.parametrize("channels, lengths, members, normalize", [
    (1, 30, 1, "auto"),  # univariate, equal length
    (1, (3, 40), 2, "series"),  # unequal, some cases shorter than the 9-step kernel
    (3, 25, 2, "none"),  # multivariate, equal length
    (3, (6, 50), 1, "series+scale"),  # multivariate, unequal; 3 channels per data channel
    (2, (8, 33), 2, "global"),
])
def test_graph_equals_predict_proba(channels, lengths, members, normalize):
    rng = np.random.default_rng(channels * 10 + members)
    X, y = waves(24, rng, lengths, channels)
    clf = SequenceClassifier(n_estimators=members, normalize=normalize, random_state=members).fit(X[:15], y[:15])
    assert clf.model_ == "rocket" and len(clf.nets_) == members
    check(clf, X[15:])
    out = check(clf, X[:2])  # training cases, whose outputs the biases were drawn from
    assert out["probs"].shape == (2, 3)


@pytest.mark.parametrize("C", [1, 4, 11])
def test_features_equal_bit_for_bit_with_flat_stretches(C):
    """Step-shaped series of a few levels: many outputs are exactly equal, biases are quantiles that land on
    them, so an output rounded differently from rnnkit's would flip a comparison."""
    rng = np.random.default_rng(C)
    B, T = 10, 70
    xs = np.repeat(rng.integers(-2, 3, (B, T // 5, C)), 5, axis=1).astype(np.float32) * 0.37
    xs[:3] += 0.1 * rng.standard_normal((3, T, C)).astype(np.float32)
    lengths = rng.integers(5, T + 1, B)
    for i, n in enumerate(lengths):
        xs[i, n:] = 0.0  # the layer's padding convention
    tdnn = RandomTDNN(2000, rng=C).fit(xs, lengths)
    assert np.isin(tdnn.biases, xs.sum(axis=2)).any() or (tdnn.biases == 0).any()  # ties exist to be broken
    same_features(tdnn, xs, lengths)
    same_features(tdnn, xs[3:4, : lengths[3]], lengths[3:4])  # one case, unpadded
    state = tdnn.state()  # groups of one dilation with unequal numbers of biases (fit never draws that)
    state["counts"][[0, 1, 90]] += [2, -1, -1]
    uneven = RandomTDNN.from_state(state)
    same_features(uneven, xs, lengths)
    assert not np.array_equal(uneven.transform(xs, lengths), tdnn.transform(xs, lengths))


def test_cli_exports_a_rocket_run_and_refuses_torch(tmp_path, capsys):
    rng = np.random.default_rng(5)
    cases, labels = toy_cases(20, rng, channels=2)
    train = write_ts(tmp_path / "train.ts", cases, labels)
    run_dir = tmp_path / "run"
    assert main(["classify", "train", train, "--out", str(run_dir), "--ensemble", "2", "--no-baselines",
                 "--no-plot"]) == 0
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    onnx_file = run_dir / "export" / "onnx" / "model.onnx"
    info = json.loads(onnx_file.with_suffix(".json").read_text())
    assert info["classifier"] == "rocket" and info["classes"] == ["down", "up"]
    assert info["graphs"]["main"]["inputs"] == {"X": ["B", 2, "T"], "lengths": ["B"]}
    test, _ = toy_cases(6, rng, channels=2)
    X = [np.array(c, dtype=np.float32).astype(np.float64) for c in test]  # the values the graph reads
    Xp, lengths = padded(X, fill=1e6, extra=0)
    out = run(session(onnx.load(str(onnx_file))), X=Xp, lengths=lengths)
    clf = SequenceClassifier.load(run_dir / "model.safetensors")
    close(out["probs"], clf.predict_proba(X))
    assert [info["classes"][i] for i in out["probs"].argmax(axis=1)] == list(clf.predict(X))
    assert out["logits"].shape == (6, 2, 2)
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "torch"]) == 2
    err = capsys.readouterr().err.strip()
    assert "rocket" in err and "--format onnx" in err and len(err.splitlines()) == 1
    assert not (run_dir / "export" / "torch").exists()
