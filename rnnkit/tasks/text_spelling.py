"""Can the model spell? The share of words in generated text that occur in the training text, beside the same
share for the validation text and for a character n-gram model (``CharNGram``) trained on the same split.

A word is a maximal run of letters of any script, with apostrophes allowed inside (``WORD_PATTERN``);
words are compared lowercased, and a word cut off at the end of a sample is not counted.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from rnnkit.errors import UserError
from rnnkit.tasks.text_corpus import training_texts
from rnnkit.tasks.text_defaults import SPELLING_TEMPERATURES

WORD_PATTERN = r"[^\W\d_]+(?:['’][^\W\d_]+)*"
"""Letters (no digits, no underscore) with inner apostrophes: "o'er" is one word, "--" and "42" are none."""
_WORD_RE = re.compile(WORD_PATTERN)


def words(text: str) -> list[str]:
    """The words of ``text`` (``WORD_PATTERN``), lowercased, in order."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def complete_words(sample: str) -> list[str]:
    """The words of a generated sample, without the last one when the sample stops inside it."""
    found = words(sample)
    if found and _WORD_RE.search(sample[-1:] or " ") is not None:
        found.pop()  # the sample ends in a letter: its last word may be unfinished
    return found


def known_fraction(found: list[str], vocabulary: set[str]) -> dict:
    """How many of ``found`` (word tokens) are in ``vocabulary``; the most frequent others as examples."""
    known = sum(w in vocabulary for w in found)
    unknown = Counter(w for w in found if w not in vocabulary)
    return {"words": len(found), "known": known, "fraction": known / len(found) if found else float("nan"),
            "invented": [w for w, _ in unknown.most_common(8)]}


class CharNGram:
    """Character n-gram model with interpolated absolute discounting (Kneser-Ney without continuation counts).

    p(c | h) = max(n(h c) - D, 0) / n(h) + D * t(h) / n(h) * p(c | h shortened by one), where n counts in the
    training text, t(h) is the number of distinct characters seen after h, and the shortest history backs
    off to the uniform distribution over the training characters. ``order`` counts the predicted character.
    """

    def __init__(self, order: int = 5, discount: float = 0.75):
        if int(order) < 1:
            raise UserError(f"the n-gram order must be at least 1, got {order}")
        if not 0.0 < discount < 1.0:
            raise UserError(f"the n-gram discount must be in (0, 1), got {discount}")
        self.order, self.discount = int(order), float(discount)

    def fit(self, text: str) -> "CharNGram":
        if len(text) < self.order:
            raise UserError(f"an order-{self.order} n-gram needs at least {self.order} characters of training text")
        self.chars_ = "".join(sorted(set(text)))
        self.index_ = {c: i for i, c in enumerate(self.chars_)}
        # tables_[m][history of m characters] = (next-character ids, their counts, total, distinct)
        self.tables_ = []
        for m in range(self.order):
            grams = Counter(text[i:i + m + 1] for i in range(len(text) - m))
            by_history: dict[str, tuple[list[int], list[int]]] = {}
            for gram, n in grams.items():
                ids, counts = by_history.setdefault(gram[:-1], ([], []))
                ids.append(self.index_[gram[-1]])
                counts.append(n)
            self.tables_.append({h: (np.array(ids), np.array(counts, dtype=np.float64), float(sum(counts)), len(ids))
                                 for h, (ids, counts) in by_history.items()})
        return self

    def probs(self, history: str) -> np.ndarray:
        """p(next character | the last order-1 characters of ``history``), shape (V,) over ``chars_``."""
        V, D = len(self.chars_), self.discount
        p = np.full(V, 1.0 / V)
        for m in range(self.order):
            if m > len(history):
                break
            entry = self.tables_[m].get(history[len(history) - m:] if m else "")
            if entry is None:
                break  # a longer history containing an unseen one is unseen too
            ids, counts, total, distinct = entry
            p *= D * distinct / total
            p[ids] += np.maximum(counts - D, 0.0) / total
        return p

    def generate(self, length: int, temperature: float = 1.0, history: str = "", seed=None) -> str:
        """``length`` characters sampled after ``history`` (p ** (1/temperature), renormalised; 0: greedy)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        ctx = "".join(c for c in history[-(self.order - 1):] if c in self.index_) if self.order > 1 else ""
        out = []
        for _ in range(int(length)):
            p = self.probs(ctx)
            if temperature == 0:
                i = int(p.argmax())
            else:
                logp = np.log(p) / temperature
                q = np.exp(logp - logp.max())
                i = min(int(np.searchsorted(np.cumsum(q), rng.random() * q.sum(), side="right")), len(q) - 1)
            c = self.chars_[i]
            out.append(c)
            ctx = (ctx + c)[-(self.order - 1):] if self.order > 1 else ""
        return "".join(out)

    def loss(self, text: str, max_chars: int | None = None) -> dict:
        """Mean negative log-likelihood (nats/char) of ``text``, each character given the ones before it;
        characters the n-gram never saw are skipped (counted in ``skipped``)."""
        text = text[:max_chars] if max_chars is not None else text
        total, count, skipped, ctx, first = 0.0, 0, 0, "", True
        for c in text:
            i = self.index_.get(c)
            if i is None:
                skipped += 1
                continue
            if not first:  # the first character has no history to predict it from
                total -= math.log(self.probs(ctx)[i])
                count += 1
            first = False
            ctx = (ctx + c)[-(self.order - 1):] if self.order > 1 else ""
        if count == 0:
            raise UserError("need at least 2 known characters to compute an n-gram loss")
        return {"loss": total / count, "bits_per_char": total / count / math.log(2.0), "chars": count,
                "skipped": skipped}


def spelling(lm, train_text: str | None = None, val_text: str | None = None, temperatures=SPELLING_TEMPERATURES,
             chars: int = 4000, samples: int = 4, order: int = 5, seed: int = 0, ngram: CharNGram | None = None) -> dict:
    """The spelling report: which share of the words the model writes occur in ``train_text``.

    ``train_text`` None: the model's own training and validation splits (:func:`training_texts`).

    For each temperature, ``samples`` texts of ``chars // samples`` characters each are drawn from the model
    (after its stored warm-up text, as ``generate`` does) and from an order-``order`` ``CharNGram`` fitted on
    ``train_text`` (started from the same warm-up). ``val_text``'s words give the reference share a human
    text reaches. Returns {"word_pattern", "train_vocabulary" (distinct training words), "validation"
    (or None), "rows": [{"source", "temperature", "words", "known", "fraction", "invented"}, ...]}.
    """
    from rnnkit.tasks.text_sampling import generate

    if train_text is None:
        train_text, own_val = training_texts(lm)
        val_text = own_val if val_text is None else val_text
    if chars < samples or samples < 1:
        raise UserError(f"need chars >= samples >= 1 for the spelling report, got chars={chars}, samples={samples}")
    for t in temperatures:
        if not (t >= 0 and math.isfinite(t)):
            raise UserError(f"temperatures must be >= 0, got {t}")
    vocabulary = set(words(train_text))
    if not vocabulary:
        raise UserError("the training text has no words (runs of letters): the spelling report needs some")
    if ngram is None:
        ngram = CharNGram(order).fit(train_text)
    warm = (lm.meta.get("warmup") or train_text[-512:]) + "\n\n"
    length = chars // samples
    rows = []
    for t in temperatures:
        texts = generate(lm, length=length, temperature=t, seed=seed, num_samples=samples)
        found = [w for s in texts for w in complete_words(s)]
        rows.append({"source": "model", "temperature": t, **known_fraction(found, vocabulary)})
        rng = np.random.default_rng(seed)
        texts = [ngram.generate(length, t, history=warm, seed=rng) for _ in range(samples)]
        found = [w for s in texts for w in complete_words(s)]
        rows.append({"source": f"{ngram.order}-gram", "temperature": t, **known_fraction(found, vocabulary)})
    validation = None if val_text is None else known_fraction(words(val_text), vocabulary)
    return {"word_pattern": WORD_PATTERN, "train_vocabulary": len(vocabulary), "validation": validation,
            "rows": rows}


def format_spelling(report: dict) -> list[str]:
    """The report as lines of a small table (what ``rnnkit text evaluate RUN --spelling`` prints)."""
    lines = [f"spelling: share of the words (regex {report['word_pattern']}, lowercased) found among the "
             f"{report['train_vocabulary']:,} distinct words of the training text"]
    lines.append(f"  {'text':<12} {'temperature':>11} {'words':>7} {'in training':>12}  words not in the training text (most frequent)")
    val = report["validation"]
    if val is not None:
        lines.append(f"  {'validation':<12} {'-':>11} {val['words']:>7,} {val['fraction']:>12.1%}  "
                     + ", ".join(val["invented"][:5]))
    for r in report["rows"]:
        lines.append(f"  {r['source']:<12} {r['temperature']:>11g} {r['words']:>7,} {r['fraction']:>12.1%}  "
                     + ", ".join(r["invented"][:5]))
    return lines
