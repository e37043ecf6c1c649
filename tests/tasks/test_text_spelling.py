"""The spelling report: words, the character n-gram baseline (values computed by hand), the report itself."""
import math
import re

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.tasks import text
from rnnkit.tasks.text_spelling import CharNGram, complete_words, format_spelling, known_fraction, words

CORPUS = "the cat sat on the mat. the dog sat on the log.\n" * 40


def test_words_are_letter_runs_with_inner_apostrophes_lowercased():
    assert words("O'er the hills -- 42 don't_stop, naïve Straße; 'tis x2y") == [
        "o'er", "the", "hills", "don't", "stop", "naïve", "straße", "tis", "x", "y"]
    assert complete_words("the cat sa") == ["the", "cat"]  # "sa" may be cut off
    assert complete_words("the cat.") == ["the", "cat"] and complete_words("") == []


def test_known_fraction_counts_tokens():
    r = known_fraction(["a", "b", "zz", "a", "zz", "q"], {"a", "b"})
    assert (r["words"], r["known"], r["fraction"], r["invented"]) == (6, 3, 0.5, ["zz", "q"])


def test_ngram_probabilities_match_the_hand_computation():
    # "abab", order 2, D = 0.5: unigram counts a 2, b 2 (t = 2); after "a": b 2 (t = 1); after "b": a 1 (t = 1)
    g = CharNGram(order=2, discount=0.5).fit("abab")
    uniform = np.array([0.5, 0.5])
    unigram = uniform * (0.5 * 2 / 4) + np.array([1.5, 1.5]) / 4        # [0.5, 0.5]
    after_a = unigram * (0.5 * 1 / 2) + np.array([0.0, 1.5 / 2])        # [0.125, 0.875]
    after_b = unigram * (0.5 * 1 / 1) + np.array([0.5 / 1, 0.0])        # [0.75, 0.25]
    np.testing.assert_allclose(g.probs(""), unigram)
    np.testing.assert_allclose(g.probs("a"), after_a)
    np.testing.assert_allclose(g.probs("xxb"), after_b)  # only the last order-1 characters count
    np.testing.assert_allclose(g.probs("c"), unigram)   # an unseen history backs off
    loss = -(2 * math.log(after_a[1]) + math.log(after_b[0])) / 3
    assert g.loss("abab")["loss"] == pytest.approx(loss, rel=1e-12)
    assert g.loss("ab?ab")["skipped"] == 1 and g.loss("ab?ab")["chars"] == 3
    assert g.generate(4, temperature=0, history="a") == "baba"


def test_ngram_sampling_follows_its_probabilities_and_temperature():
    g = CharNGram(order=2, discount=0.5).fit("abab")
    draws = [g.generate(1, 1.0, history="a", seed=s) for s in range(3000)]
    assert draws.count("b") / 3000 == pytest.approx(0.875, abs=0.02)
    # temperature 0.5 squares the probabilities: 0.875^2 / (0.875^2 + 0.125^2) = 0.98
    draws = [g.generate(1, 0.5, history="a", seed=s) for s in range(3000)]
    assert draws.count("b") / 3000 == pytest.approx(0.875**2 / (0.875**2 + 0.125**2), abs=0.01)


def test_ngram_distributions_sum_to_one_on_real_text():
    g = CharNGram(order=4).fit(CORPUS)
    for h in ("", "t", "the ", "zzz", "mat. ", "og.\n"):
        assert g.probs(h).sum() == pytest.approx(1.0) and (g.probs(h) > 0).all()
    with pytest.raises(UserError, match="order"):
        CharNGram(order=0)


def test_spelling_report_counts_what_the_samplers_wrote():
    lm = text.train(text=CORPUS, config=text.TextConfig(hidden_size=48, embedding_dim=8, batch_size=4, seq_len=12,
                                                        steps=150, eval_every=50, sample_length=0, lr=1e-2,
                                                        warmup_steps=4), progress=False)
    val = "the cat sat on the log. a zebra sat.\n"
    report = text.spelling(lm, CORPUS, val, temperatures=(0.5, 1.0), chars=600, samples=3, order=4, seed=7)
    assert report["train_vocabulary"] == len({"the", "cat", "sat", "on", "mat", "dog", "log"})
    assert report["validation"]["words"] == 9 and report["validation"]["invented"] == ["a", "zebra"]
    vocabulary = set(re.findall(r"[a-z]+", CORPUS))
    for t in (0.5, 1.0):  # the model rows are the words of generate's samples with the same seed, counted here
        samples = text.generate(lm, length=200, temperature=t, seed=7, num_samples=3)
        found = [w for s in samples for w in re.findall(r"[a-z]+", s)[:-1 if s[-1].isalpha() else None]]
        row = next(r for r in report["rows"] if r["source"] == "model" and r["temperature"] == t)
        assert (row["words"], row["known"]) == (len(found), sum(w in vocabulary for w in found))
    rows = {(r["source"], r["temperature"]): r["fraction"] for r in report["rows"]}
    assert rows[("model", 0.5)] > 0.8 and rows[("4-gram", 0.5)] > 0.9  # both learned this corpus's words
    assert len(format_spelling(report)) == 2 + 1 + 4


def test_training_texts_come_back_from_the_run_files(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text(CORPUS, encoding="utf-8")
    text.train(str(f), text.TextConfig(hidden_size=8, embedding_dim=4, batch_size=2, seq_len=8, steps=2,
                                       sample_length=0), out=tmp_path / "r", progress=False)
    lm = text.load(tmp_path / "r")
    train, val = text.training_texts(lm)
    cut = int(len(CORPUS) * 0.9)
    assert (train, val) == (CORPUS[:cut], CORPUS[cut:])
    f.write_text(CORPUS.upper(), encoding="utf-8")
    with pytest.raises(UserError, match="cannot read|changed since"):
        text.training_texts(lm)
    in_python = text.train(text=CORPUS, config=text.TextConfig(hidden_size=8, embedding_dim=4, batch_size=2,
                                                               seq_len=8, steps=2, sample_length=0),
                           out=tmp_path / "p", progress=False)
    with pytest.raises(UserError, match="pass the training text"):
        text.spelling(text.load(tmp_path / "p"))
    assert in_python is not None
