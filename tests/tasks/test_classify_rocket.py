"""The default classifier (model="rocket": random TDNN + ridge) through the Python API: it learns, layouts and
padding change nothing, save/load is exact, damaged checkpoints are refused, the ensemble and time budget are
respected, bad values are refused, and awkward data (offsets, short, constant, one case per class, many
channels) still works."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.io import save_checkpoint
from rnnkit.tasks.classify import SequenceClassifier

NAMES = np.array(["saw", "sine", "square"])


def waves(n, rng, lengths=(60, 61), channels=1, noise=0.3):
    """Three shapes of random frequency and phase (sawtooth, sine, square) in channel 0, noise in the other
    channels; one list of (channels, length) cases and string labels."""
    X, y = [], []
    for i in range(n):
        k = i % 3
        L = int(rng.integers(*lengths))
        t = rng.uniform(0.15, 0.3) * np.arange(L) + rng.uniform(0, 2 * np.pi)
        shape = [(t % (2 * np.pi)) / np.pi - 1.0, np.sin(t), np.sign(np.sin(t))][k]
        case = noise * rng.standard_normal((channels, L))
        case[0] += shape
        X.append(case)
        y.append(NAMES[k])
    return X, np.array(y)


def test_default_is_rocket_and_learns_unequal_length_waves():
    rng = np.random.default_rng(0)
    X, y = waves(45, rng, lengths=(40, 120))
    Xt, yt = waves(120, rng, lengths=(40, 120))
    clf = SequenceClassifier().fit(X, y)
    assert clf.model_ == "rocket" and clf.normalize_ == "global" and len(clf.nets_) == 5
    assert list(clf.classes_) == list(NAMES) and clf.n_channels_ == 1
    pred = clf.predict(Xt)
    assert pred.dtype.kind == "U"
    assert np.mean(pred == yt) >= 0.95 and clf.score(Xt, yt) == np.mean(pred == yt)
    p = clf.predict_proba(Xt)
    assert p.shape == (120, 3) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_learns_a_multivariate_problem_whose_signal_is_in_one_channel():
    rng = np.random.default_rng(1)
    X, y = waves(45, rng, channels=3)
    Xt, yt = waves(90, rng, channels=3)
    clf = SequenceClassifier(n_estimators=2).fit(np.stack(X), y)
    assert clf.n_channels_ == 3 and clf.score(np.stack(Xt), yt) >= 0.95


def test_layouts_3d_2d_and_list_agree():
    rng = np.random.default_rng(2)
    X, y = waves(24, rng)
    arr3 = np.stack(X)  # (24, 1, 60)
    clf = SequenceClassifier(n_estimators=1).fit(arr3, y)
    p = clf.predict_proba(arr3)
    np.testing.assert_array_equal(p, clf.predict_proba(arr3[:, 0, :]))
    np.testing.assert_array_equal(p, clf.predict_proba(list(arr3)))
    np.testing.assert_array_equal(p, clf.predict_proba([c[0] for c in arr3]))  # 1-D cases: one channel
    again = SequenceClassifier(n_estimators=1).fit(list(arr3[:, 0, :]), y)  # the same data as 1-D list
    np.testing.assert_array_equal(p, again.predict_proba(arr3))


def test_padded_batch_predicts_each_case_as_alone():
    rng = np.random.default_rng(3)
    X, y = waves(24, rng, lengths=(5, 80), channels=2)
    clf = SequenceClassifier(n_estimators=2).fit(X, y)
    together = clf.predict_proba(X)
    alone = np.concatenate([clf.predict_proba([c]) for c in X])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)
    short_first = clf.predict_proba([X[1][:, :5], X[0]])  # a batch whose first case is mostly padding
    np.testing.assert_allclose(short_first[1], together[0], rtol=0, atol=1e-12)


def test_save_load_identical(tmp_path):
    rng = np.random.default_rng(4)
    X, y = waves(24, rng, lengths=(30, 70), channels=2)
    clf = SequenceClassifier(n_estimators=2, random_state=3).fit(X, y)
    path = clf.save(tmp_path / "m.safetensors")
    back = SequenceClassifier.load(path)
    assert back.model_ == "rocket" and len(back.nets_) == 2 and list(back.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    yi = np.searchsorted(NAMES, y) + 10  # integer labels stay integers through the file
    clf_i = SequenceClassifier(n_estimators=1).fit(X, yi)
    back_i = SequenceClassifier.load(clf_i.save(tmp_path / "i.safetensors"))
    assert back_i.predict(X).dtype.kind == "i"
    np.testing.assert_array_equal(back_i.predict(X), clf_i.predict(X))


def test_damaged_checkpoints_raise_user_error(tmp_path):
    rng = np.random.default_rng(5)
    X, y = waves(18, rng)
    clf = SequenceClassifier(n_estimators=2).fit(X, y)
    good = tmp_path / "good.safetensors"
    clf.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    tensors, meta = clf.state()
    tensors = {k: np.array(v) for k, v in tensors.items()}

    def write(name, tensors=tensors, meta=meta):
        return save_checkpoint(tmp_path / name, tensors, meta)

    weight = tensors["member1.ridge.weight"]
    write("shape.safetensors", tensors={**tensors, "member1.ridge.weight": weight[:-1]})
    write("biases.safetensors", tensors={**tensors, "member0.tdnn.biases": tensors["member0.tdnn.biases"][:-84]})
    kernel = tensors["member0.tdnn.kernel"].copy()
    kernel[3] = 99
    write("kernel.safetensors", tensors={**tensors, "member0.tdnn.kernel": kernel})
    counts = tensors["member1.tdnn.counts"].copy()
    counts[0] += 1  # no longer sums to the number of biases
    write("counts.safetensors", tensors={**tensors, "member1.tdnn.counts": counts})
    for n in (meta["members_"][0]["n_dilations"] + 1, 1000, -1):
        members = [dict(m) for m in meta["members_"]]
        members[0]["n_dilations"] = n
        write(f"ndil{n}.safetensors", meta={**meta, "members_": members})
    write("members.safetensors", meta={**meta, "members_": meta["members_"][:1]})
    write("nfeat.safetensors", meta={**meta, "members_": [{**m, "n_features": "many"} for m in meta["members_"]]})
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "good.safetensors")
    assert len(names) == 10
    for name in names:
        with pytest.raises(UserError, match="checkpoint"):
            SequenceClassifier.load(tmp_path / name)
    np.testing.assert_array_equal(SequenceClassifier.load(good).predict_proba(X), clf.predict_proba(X))


def test_n_estimators_time_budget_and_stop():
    rng = np.random.default_rng(6)
    X, y = waves(18, rng)
    three = SequenceClassifier(n_estimators=3).fit(X, y)
    assert len(three.nets_) == 3
    biases = [m.tdnn.biases for m in three.nets_]
    assert not np.array_equal(biases[0], biases[1]) and not np.array_equal(biases[1], biases[2])
    one = SequenceClassifier(n_estimators=1).fit(X, y)
    np.testing.assert_array_equal(one.nets_[0].tdnn.biases, biases[0])  # member k's seed does not depend on n
    lines = []
    budget = SequenceClassifier(n_estimators=4, max_minutes=1e-6).fit(X, y, log=lines.append)
    assert len(budget.nets_) == 1 and any("1 of 4" in line for line in lines)
    stopped = SequenceClassifier(n_estimators=4).fit(X, y, stop=lambda: True)
    assert len(stopped.nets_) == 1  # at least one member, then the stop is heard
    np.testing.assert_array_equal(stopped.predict_proba(X), one.predict_proba(X))


def test_same_seed_same_model_other_seed_other_model():
    rng = np.random.default_rng(7)
    X, y = waves(18, rng)
    Xt, _ = waves(9, rng, noise=1.0)
    a, b, c = (SequenceClassifier(n_estimators=1, random_state=s).fit(X, y) for s in (4, 4, 5))
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))
    assert not np.array_equal(a.nets_[0].tdnn.biases, c.nets_[0].tdnn.biases)


def test_nan_refused_with_the_layout_message_and_filled_on_request():
    rng = np.random.default_rng(8)
    X, y = waves(18, rng)
    bad = [c.copy() for c in X]
    bad[3][0, 7] = np.nan
    with pytest.raises(UserError, match="NaN at case 3, channel 0, step 7"):
        SequenceClassifier(n_estimators=1).fit(bad, y)
    clf = SequenceClassifier(n_estimators=1).fit(X, y)
    with pytest.raises(UserError, match="NaN at case 3, channel 0, step 7"):
        clf.predict(bad)
    with pytest.raises(UserError, match="channel"):
        clf.predict([np.ones((2, 60))])
    filled = [c.copy() for c in X]
    filled[3][0, 7] = 0.5 * (X[3][0, 6] + X[3][0, 8])
    clf.set_params(fill="interpolate")
    np.testing.assert_allclose(clf.predict_proba(bad), clf.predict_proba(filled), rtol=0, atol=1e-12)


def test_huge_offset_and_tiny_scale_still_learn():
    """Values of 1e6 + signal (or 1e-9 x signal): the per-channel standardisation in float64 before the
    float32 layer keeps the shapes."""
    rng = np.random.default_rng(9)
    X, y = waves(30, rng)
    Xt, yt = waves(60, rng)
    for f in (lambda c: 1e6 + c, lambda c: 1e-9 * c):
        clf = SequenceClassifier(n_estimators=1).fit([f(c) for c in X], y)
        assert clf.score([f(c) for c in Xt], yt) >= 0.95


def test_short_constant_single_case_classes_and_many_channels_give_probabilities():
    rng = np.random.default_rng(10)
    cases = {
        "short": ([rng.standard_normal(L) for L in (1, 2, 3, 5, 8, 9)], np.array([0, 1] * 3)),
        "constant": (np.ones((6, 30)) * np.arange(6)[:, None], np.array([0, 1] * 3)),
        "all constant": (np.full((6, 30), 2.0), np.array([0, 1] * 3)),
        "one per class": (rng.standard_normal((3, 40)), np.array(["a", "b", "c"])),
        "1000 channels": (rng.standard_normal((6, 1000, 20)), np.array([0, 1] * 3)),
    }
    for name, (X, y) in cases.items():
        clf = SequenceClassifier(n_estimators=1).fit(X, y)
        p = clf.predict_proba(X)
        assert p.shape == (len(y), len(set(y.tolist()))), name
        assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1.0), name
    flat = SequenceClassifier(n_estimators=1).fit(np.full((6, 30), 2.0), np.array([0, 0, 0, 0, 1, 1]))
    assert (flat.predict(np.full((2, 30), 2.0)) == 0).all()  # nothing to learn: the majority class


@pytest.mark.parametrize("normalize", ["series+scale", "series", "none"])
def test_every_normalisation_saves_loads_and_saves_again(tmp_path, normalize):
    """The random TDNN reads n_inputs_ channels (3 per data channel with series+scale); a loaded model saves
    again (its members keep their leave-one-out accuracy) and the second file predicts the same."""
    rng = np.random.default_rng(11)
    X = [rng.normal(size=(2, int(n))) * 10.0 ** rng.integers(-2, 3) for n in rng.integers(20, 40, 16)]
    y = np.array(["a", "b"] * 8)
    clf = SequenceClassifier(normalize=normalize, n_estimators=2, random_state=0).fit(X, y)
    clf.save(tmp_path / "one.safetensors")
    back = SequenceClassifier.load(tmp_path / "one.safetensors")
    back.save(tmp_path / "two.safetensors")
    again = SequenceClassifier.load(tmp_path / "two.safetensors")
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert [m.describe() for m in again.nets_] == [m.describe() for m in clf.nets_]


def test_threads_reach_the_networks_and_are_not_saved(tmp_path):
    """threads= sets the trained networks' recurrent layers; it is a machine setting, so a loaded model is
    automatic again."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(12, 1, 30))
    y = np.array(["a", "b"] * 6)
    clf = SequenceClassifier(model="rnn", threads=2, epochs=2, n_estimators=1, hidden_size=8).fit(X, y)
    assert clf.nets_[0].rnn.threads == 2
    clf.save(tmp_path / "m.safetensors")
    back = SequenceClassifier.load(tmp_path / "m.safetensors")
    assert back.config.threads is None and back.nets_[0].rnn.threads is None
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1e37, 1e40])
def test_values_float32_cannot_hold_are_refused(scale):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(10, 1, 30))
    y = np.array(["a", "b"] * 5)
    with pytest.raises(UserError, match="too large for the float32"):
        SequenceClassifier(normalize="none", n_estimators=1).fit(X * scale, y)
    clf = SequenceClassifier(n_estimators=1).fit(X, y)
    with pytest.raises(UserError, match="too large for the float32"):
        clf.predict_proba(X * 1e40)
