"""Generators of the memory tasks: shapes, labels correct by construction, seeds reproducible."""
import numpy as np
import pytest

from rnnkit.data import sequences as sq
from rnnkit.errors import UserError


def _same(a, b):
    for name in ("xs", "ys", "loss_mask", "valid"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("make", [
    lambda rng: sq.adding_problem(16, 30, rng),
    lambda rng: sq.copy_task(16, 7, rng),
    lambda rng: sq.temporal_order(16, 40, rng),
    lambda rng: sq.schedule(16, 25, rng),
])
def test_seed_reproducible_and_different_seeds_differ(make):
    _same(make(np.random.default_rng(3)), make(3))
    a, b = make(np.random.default_rng(3)), make(np.random.default_rng(4))
    assert not np.array_equal(a.xs, b.xs)


def test_adding_problem_shapes_and_target():
    b = sq.adding_problem(500, 50, rng=0)
    assert b.xs.shape == (500, 50, 2) and b.xs.dtype == np.float32
    assert b.ys.shape == (500, 1)
    markers = b.xs[..., 1]
    np.testing.assert_array_equal(markers.sum(1), 2)
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    np.testing.assert_allclose(b.ys[:, 0], (b.xs[..., 0] * markers).sum(1), rtol=1e-6)
    assert 0 <= b.xs[..., 0].min() and b.xs[..., 0].max() < 1
    # always predicting 1.0 scores about 1/6
    big = sq.adding_problem(20000, 10, rng=1)
    assert abs(np.mean((big.ys - 1.0) ** 2) - sq.ADDING_BASELINE_MSE) < 0.01
    assert sq.adding_problem(2, 2, rng=0, dtype=np.float64).xs.dtype == np.float64


def test_copy_task_layout():
    k, delay, A = 4, 6, 5
    b = sq.copy_task(32, delay, rng=1, num_symbols=A, k=k)
    T = 2 * k + delay
    assert b.xs.shape == (32, T, A + 2) and b.ys.shape == (32, T) and b.loss_mask.shape == (32, T)
    ids = b.xs.argmax(-1)
    np.testing.assert_array_equal(b.xs.sum(-1), 1)
    np.testing.assert_array_equal(b.ys[:, -k:], ids[:, :k])  # recall = the first k inputs
    assert (ids[:, k + delay] == A + 1).all()  # go marker
    assert (ids[:, k:k + delay] == A).all() and (ids[:, k + delay + 1:] == A).all()
    assert (b.ys[:, :-k] == A).all()
    assert b.loss_mask[:, -k:].all() and not b.loss_mask[:, :-k].any()


@pytest.mark.parametrize("T", [6, 10, 100, 250])
def test_temporal_order_label_matches_marked_symbols(T):
    b = sq.temporal_order(200, T, rng=T)
    ids = b.xs.argmax(-1)
    assert b.xs.shape == (200, T, 8)
    assert (ids[:, 0] == 6).all() and (ids[:, -1] == 7).all()
    for row, label in zip(ids, b.ys):
        pos = np.flatnonzero((row == 4) | (row == 5))
        assert len(pos) == 2
        assert pos[0] >= 1 and pos[1] <= T - 2
        assert label == 2 * (row[pos[0]] - 4) + (row[pos[1]] - 4)
    assert set(b.ys.tolist()) == {0, 1, 2, 3}


def test_schedule_cycles_and_missed_days():
    b = sq.schedule(64, 40, rng=2, p_missed=0.4)
    ids = b.xs.argmax(-1)
    assert b.xs.shape == (64, 40, 4) and b.ys.shape == (64, 40)
    np.testing.assert_array_equal(b.ys[:, 1:], (b.ys[:, :-1] + 1) % 3)  # the cycle
    seen = ids != sq.MISSED
    assert seen[:, 0].all() and 0.3 < 1 - seen.mean() < 0.5
    np.testing.assert_array_equal(b.ys[seen], (ids[seen] + 1) % 3)  # next day follows what was seen


def test_word_corpus_batch_and_encoding():
    corpus = sq.WordCorpus()
    b = corpus.batch()
    S = len(sq.SENTENCES)
    assert b.xs.shape[0] == S and b.xs.shape[2] == corpus.vocab_size
    assert len({s.split()[0] for s in sq.SENTENCES}) == S  # first words identify sentences
    for i, sentence in enumerate(sq.SENTENCES):
        words = sentence.split()
        n = len(words) - 1
        assert b.valid[i].sum() == n and b.valid[i, :n].all()
        assert corpus.decode(b.ys[i, :n]) == words[1:]
        assert corpus.decode(b.xs[i, :n].argmax(-1)) == words[:-1]
    with pytest.raises(UserError, match="unknown words"):
        corpus.encode(["zebra"])


def test_bad_arguments_raise_user_error():
    with pytest.raises(UserError, match="length"):
        sq.adding_problem(4, 1)
    with pytest.raises(UserError, match="batch size"):
        sq.temporal_order(0, 20)
    with pytest.raises(UserError, match="p_missed"):
        sq.schedule(4, 10, p_missed=1.0)
