"""The sequence classifier through its Python API: learning, masks, layouts, labels, save/load, metrics."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.classify_metrics import report
from rnnkit.tasks.classify_train import bucketed_batches, stratified_split

SMALL = dict(model="auto", channels=(8, 8), kernels=(5, 3), hidden_size=8, front_size=4, epochs=40, patience=40,
             max_minutes=2.0, batch_size=8, n_estimators=1)


def waves(n, rng, lengths=(30, 60), channels=1):
    """Three classes of noisy waves of unequal length: sine, square, sawtooth; labels are strings."""
    names = np.array(["sine", "square", "saw"])
    X, y = [], []
    for i in range(n):
        k = i % 3
        L = int(rng.integers(*lengths))
        t = np.arange(L) / 6.0 + rng.uniform(0, 6)
        base = [np.sin(t), np.sign(np.sin(t)), (t % (2 * np.pi)) / np.pi - 1][k]
        X.append(np.stack([base * (c + 1) + 0.2 * rng.standard_normal(L) for c in range(channels)]))
        y.append(names[k])
    return X, np.array(y)


def test_learns_unequal_length_waves_with_string_labels():
    rng = np.random.default_rng(0)
    X, y = waves(90, rng)
    Xt, yt = waves(60, rng)
    clf = SequenceClassifier(random_state=0, **{**SMALL, "epochs": 80, "patience": 80}).fit(X, y)
    assert list(clf.classes_) == ["saw", "sine", "square"]
    assert clf.n_channels_ == 1 and clf.n_classes_ == 3
    pred = clf.predict(Xt)
    assert pred.dtype.kind == "U" and set(pred) <= set(y)
    assert clf.score(Xt, yt) >= 0.9
    proba = clf.predict_proba(Xt)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("model", ["combined", "tdnn", "rnn"])
@pytest.mark.parametrize("pool", ["mean", "last", "max", "attention"])
def test_padded_batch_classifies_each_case_as_alone(model, pool):
    rng = np.random.default_rng(1)
    X, y = waves(12, rng, lengths=(9, 40), channels=2)
    clf = SequenceClassifier(model=model, pool=pool, stride=2, epochs=2, patience=5, dtype="float64",
                             random_state=3, **{k: v for k, v in SMALL.items() if k not in ("epochs", "patience", "model")})
    clf.fit(X, y)
    together = clf.predict_proba(X)
    alone = np.concatenate([clf.predict_proba([c]) for c in X])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)


def test_layouts_3d_2d_and_list_agree():
    rng = np.random.default_rng(2)
    X, y = waves(30, rng, lengths=(40, 41))
    arr3 = np.stack(X)  # (n, 1, 40)
    clf = SequenceClassifier(random_state=0, **{**SMALL, "epochs": 3}).fit(arr3, y)
    p3 = clf.predict_proba(arr3)
    np.testing.assert_array_equal(p3, clf.predict_proba(arr3[:, 0, :]))
    np.testing.assert_array_equal(p3, clf.predict_proba([c for c in arr3]))
    with pytest.raises(UserError, match="transpose"):
        clf.predict(np.ones((5, 40, 1)))


def test_save_load_identical(tmp_path):
    rng = np.random.default_rng(3)
    X, y = waves(30, rng)
    clf = SequenceClassifier(random_state=0, **{**SMALL, "epochs": 3, "n_estimators": 2}).fit(X, y)
    clf.save(tmp_path / "m.safetensors")
    back = SequenceClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(clf.predict_proba(X), back.predict_proba(X))
    assert list(back.classes_) == list(clf.classes_)


def test_auto_model_and_normalisation_keep_the_best_validation_loss(tmp_path):
    rng = np.random.default_rng(7)
    X, y = waves(30, rng)
    X = [c * 10.0 ** (i % 4) for i, c in enumerate(X)]  # amplitudes over four orders of magnitude
    clf = SequenceClassifier(random_state=0, **{**SMALL, "epochs": 5, "n_estimators": 2}).fit(X, y)
    scores = clf.choice_scores_
    assert set(scores) == {"combined/global", "combined/series+scale", "rnn/global", "rnn/series+scale"}
    assert f"{clf.model_}/{clf.normalize_}" == min(scores, key=scores.get)
    first = clf.histories_[0]
    assert min(r["val_loss"] for r in first.evals) == pytest.approx(min(scores.values()))
    assert (clf.nets_[1].convs == []) == (clf.model_ == "rnn")  # the later members use the choice
    clf.save(tmp_path / "m.safetensors")
    back = SequenceClassifier.load(tmp_path / "m.safetensors")
    assert (back.normalize_, back.model_) == (clf.normalize_, clf.model_)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_integer_labels_come_back_as_integers(tmp_path):
    rng = np.random.default_rng(4)
    X, y = waves(24, rng)
    yi = np.searchsorted(np.unique(y), y) + 5
    clf = SequenceClassifier(random_state=0, **{**SMALL, "epochs": 2}).fit(X, yi)
    assert clf.predict(X).dtype.kind == "i"
    clf.save(tmp_path / "m.safetensors")
    assert SequenceClassifier.load(tmp_path / "m.safetensors").predict(X).dtype.kind == "i"


def test_same_seed_same_model():
    rng = np.random.default_rng(5)
    X, y = waves(24, rng)
    a = SequenceClassifier(random_state=7, **{**SMALL, "epochs": 3}).fit(X, y).predict_proba(X)
    b = SequenceClassifier(random_state=7, **{**SMALL, "epochs": 3}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_bad_input_messages():
    rng = np.random.default_rng(6)
    X, y = waves(12, rng)
    with pytest.raises(UserError, match="single class"):
        SequenceClassifier(**SMALL).fit(X, np.array(["a"] * 12))
    with pytest.raises(UserError, match="one per case"):
        SequenceClassifier(**SMALL).fit(X, y[:5])
    with pytest.raises(UserError, match="unknown parameter"):
        SequenceClassifier(hiden_size=3)
    with pytest.raises(UserError, match="model"):
        SequenceClassifier(model="cnn").fit(X, y)
    with pytest.raises(UserError, match="not fitted"):
        SequenceClassifier().predict(X)
    clf = SequenceClassifier(**{**SMALL, "epochs": 1}).fit(X, y)
    with pytest.raises(UserError, match="channel"):
        clf.predict([np.ones((2, 30))])
    bad = [c.copy() for c in X]
    bad[3][0, 7] = np.nan
    with pytest.raises(UserError, match="NaN"):
        clf.predict(bad)
    filled = [c.copy() for c in X]
    filled[3][0, 7] = 0.5 * (X[3][0, 6] + X[3][0, 8])  # what linear interpolation puts there
    clf.set_params(fill="interpolate")
    np.testing.assert_allclose(clf.predict_proba(bad), clf.predict_proba(filled), atol=1e-6)


def test_stratified_split_keeps_every_class_in_both_parts():
    y = np.array([0] * 10 + [1] * 3 + [2] * 2 + [3])
    tr, va = stratified_split(y, 0.2, np.random.default_rng(0))
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(y)))
    assert set(y[va]) == {0, 1, 2} and set(y[tr]) == {0, 1, 2, 3}
    assert (y[va] == 0).sum() == 2


def test_bucketed_batches_cover_every_case_once():
    lengths = np.random.default_rng(0).integers(5, 100, size=53)
    batches = bucketed_batches(lengths, 8, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(53))
    assert max(len(b) for b in batches) == 8


def test_report_against_hand_computed_values():
    y_true = ["a", "a", "b", "b", "b", "c", "z"]
    y_pred = ["a", "b", "b", "b", "a", "c", "c"]
    rep = report(y_true, y_pred, ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(4 / 7)
    # recalls: a 1/2, b 2/3, c 1/1, z 0/1 -> balanced accuracy over the four true classes
    assert rep["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3 + 1 + 0) / 4)
    # precisions: a 1/2, b 2/3, c 1/2; f1 a 0.5, b 2/3, c 2/3, z 0
    assert rep["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3 + 0) / 4)
    assert rep["unseen"] == {"z": 1}
    assert rep["confusion"][1] == [1, 2, 0, 0]


def test_mixed_labels_refused_and_val_size_zero_trains_on_everything():
    rng = np.random.default_rng(8)
    X, y = waves(12, rng)
    with pytest.raises(UserError, match="all strings or all numbers"):
        SequenceClassifier(**SMALL).fit(X, [1, "a"] * 6)
    with pytest.raises(UserError, match="all strings or all numbers"):
        SequenceClassifier(**SMALL).fit(X, [None] * 12)
    tr, va = stratified_split(np.array([0, 0, 0, 1, 1, 1]), 0.0, np.random.default_rng(0))
    assert len(va) == 0 and len(tr) == 6


def test_explicit_normalisation_is_kept_without_a_validation_split():
    rng = np.random.default_rng(9)
    X, y = waves(6, rng)
    clf = SequenceClassifier(normalize="series", val_size=0.0, **{**SMALL, "epochs": 2}).fit(X, y)
    assert (clf.model_, clf.normalize_) == ("combined", "series")


def test_a_batch_of_one_is_merged_into_the_previous():
    batches = bucketed_batches(np.arange(17), 8, np.random.default_rng(0))
    assert sorted(len(b) for b in batches) == [8, 9]
