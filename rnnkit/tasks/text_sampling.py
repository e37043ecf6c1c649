"""Using a trained character model: sample text, measure loss on a text, score a string.

    generate(lm, prime="ROMEO:", length=300, temperature=0.8, top_k=None, seed=0, num_samples=1, on_text=None)
    evaluate(lm, text)   -> {"loss": nats/char, "bits_per_char", "perplexity", "chars", "skipped", "unknown"}
    score(lm, string)    -> {"logprob": nats, "bits", "chars", "per_char": [...], "skipped", "unknown"}

Characters the model never saw in training have no probability in it, so by default they are skipped: not
scored and not fed to the model (the text is used as if they were not there), and the counts are returned
(``unknown``: {char: count}, ``skipped``: their total). ``strict=True`` raises UserError naming them instead.

Sampling advances all samples together one character at a time with the recurrent layer's ``step`` and a
precomputed ``embedding @ W_x`` table, so the Python work per character is a handful of small array ops.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.data.text import eval_streams
from rnnkit.errors import UserError
from rnnkit.nn.activations import log_softmax

from rnnkit.tasks.text_defaults import DEFAULT_TEMPERATURE

LN2 = math.log(2.0)


def _start_text(lm, prime: str) -> str:
    """The text the state reads before sampling: the prime, or a line break (or the first character)."""
    if prime:
        return prime
    return "\n" if "\n" in lm.vocab.chars else lm.vocab.chars[0]


def _warm_text(lm, prime: str, warmup: str | None) -> str:
    """Warm-up text + a paragraph break + the prime.

    Trained with the state carried across chunks, a model rarely sees the all-zero state, and sampling
    from it can fall into gibberish it never recovers from. Reading a stretch of training text first (the
    ``warmup`` stored with the model: the end of its training split) puts the state where training kept it.
    """
    if warmup is None:
        warmup = lm.meta.get("warmup") or ""
    warmup = "".join(c for c in warmup if c in lm.vocab.chars)
    if not warmup:
        return _start_text(lm, prime)
    brk = "\n\n" if "\n" in lm.vocab.chars else ""
    return warmup + brk + prime


def _known(lm, text: str, strict: bool, what: str) -> tuple[str, dict[str, int]]:
    """``text`` without characters outside the vocabulary and their counts; strict: UserError naming them."""
    if strict:
        lm.vocab.encode(text, what=what)
        return text, {}
    return lm.vocab.drop_unknown(text)


def generate(lm, prime: str = "", length: int = 500, temperature: float = DEFAULT_TEMPERATURE, top_k: int | None = None,
             seed=None, num_samples: int = 1, on_text=None, warmup: str | None = None,
             strict: bool = False) -> list[str]:
    """Sample ``num_samples`` continuations of ``prime`` (each ``length`` characters), all in one batch.

    temperature: logits are divided by it before the softmax. Lower is more conservative and repetitive,
        higher more varied and error-prone; 1.0 samples the model as trained; 0 takes the most likely
        character every time (greedy, deterministic). Default ``DEFAULT_TEMPERATURE`` (0.8), as the CLI.
    top_k: sample only among the k most likely characters (None: all).
    seed: int or Generator for the sampling; the same seed gives the same text.
    on_text(chars): called after every step with a list of ``num_samples`` new characters (for streaming).
    warmup: text read (not returned) before a paragraph break and the prime; None: the model's stored
        warm-up (the last characters of its training split), "" for none.
    strict: a prime character the model never saw raises UserError; by default it is dropped (see
        CharVocab.drop_unknown to learn which were).
    Returns the continuations (without the prime). An empty prime starts from a line break.
    """
    if length < 0:
        raise UserError(f"length must be >= 0, got {length}")
    if temperature < 0 or not math.isfinite(temperature):
        raise UserError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k must be at least 1, got {top_k}")
    if num_samples < 1:
        raise UserError(f"num_samples must be at least 1, got {num_samples}")
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    model, vocab = lm.model, lm.vocab
    prime, _ = _known(lm, prime, strict, "prime text")
    ids = vocab.encode(_warm_text(lm, prime, warmup), what="prime text").astype(np.intp)
    B, V = int(num_samples), len(vocab)
    state = None
    if len(ids) > 1:  # read all but the last prime character in one forward pass, then copy to B rows
        _, state = model.forward(ids[None, :-1], None, training=False)
        state = tuple(np.repeat(s, B, axis=1) for s in state)
    x = np.full(B, ids[-1], dtype=np.intp)
    out = np.empty((B, length), dtype=np.intp)
    k = None if top_k is None or top_k >= V else int(top_k)
    for t in range(length):
        logits, state = model.step(x, state)
        logits = logits.astype(np.float64)
        if temperature == 0:
            x = logits.argmax(axis=1)
        else:
            logits /= temperature
            if k is not None:
                kth = np.partition(logits, V - k, axis=1)[:, V - k][:, None]
                logits[logits < kth] = -np.inf
            logits -= logits.max(axis=1, keepdims=True)
            cdf = np.cumsum(np.exp(logits), axis=1)
            u = rng.random(B) * cdf[:, -1]
            x = np.minimum((cdf < u[:, None]).sum(axis=1), V - 1)
        out[:, t] = x
        if on_text is not None:
            on_text([vocab.chars[i] for i in x])
    return [vocab.decode(row) for row in out]


def _nll_sums(lm, ids: np.ndarray, streams: int, burn_in: int, chunk: int) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of ids[1:] given what precedes, and the count."""
    model = lm.model
    xs, ys, burn = eval_streams(ids, streams, burn_in)
    state = None
    if burn:
        _, state = model.forward(xs[:, :burn].astype(np.intp), None, training=False)
        for s in state:
            s[:, 0] = 0  # row 0 starts at the beginning of the text: no preceding context
    total, count = 0.0, 0
    for t0 in range(burn, xs.shape[1], chunk):
        x = xs[:, t0:t0 + chunk].astype(np.intp)
        y = ys[:, t0:t0 + chunk]
        logits, state = model.forward(x, state, training=False)
        valid = y >= 0
        lp = log_softmax(logits.astype(np.float64), axis=-1)
        picked = np.take_along_axis(lp, np.where(valid, y, 0)[..., None], axis=-1)[..., 0]
        total -= float(picked[valid].sum())
        count += int(valid.sum())
    return total, count


def evaluate(lm, text, streams: int = 32, burn_in: int = 256, chunk: int = 256, max_chars: int | None = None,
             strict: bool = False) -> dict:
    """Mean loss per character of ``text`` (a str or encoded ids), each character given all before it.

    The text is read as ``streams`` parallel spans, each warmed up on the ``burn_in`` characters before it,
    which matches reading it in one pass while running ``streams`` rows per matrix product. ``max_chars``
    limits the evaluation to the first characters (counted after skipping). Characters the model never saw
    are skipped (see the module docstring; ``strict=True``: UserError). Returns loss (nats/char),
    bits_per_char, perplexity, chars (characters predicted), skipped and unknown ({char: count}).
    """
    unknown = {}
    if isinstance(text, str):
        text, unknown = _known(lm, text, strict, "evaluation text")
        ids = lm.vocab.encode(text, check=False)
    else:
        ids = np.asarray(text)
    if max_chars is not None:
        ids = ids[: int(max_chars)]
    if len(ids) < 2:
        why = f" after skipping {sum(unknown.values())} the model never saw" if unknown else ""
        raise UserError(f"need at least 2 characters to evaluate, got {len(ids)}{why}")
    total, count = _nll_sums(lm, ids, streams, burn_in, chunk)
    loss = total / count
    return {"loss": loss, "bits_per_char": loss / LN2, "perplexity": math.exp(loss), "chars": count,
            "skipped": sum(unknown.values()), "unknown": unknown}


def score(lm, string: str, context: str | None = None, strict: bool = False) -> dict:
    """Log-probability of ``string`` under the model, character by character.

    Each character is predicted from those before it; the first one from the state after reading
    ``context`` (default: a line break, i.e. the string starts a line). Returns logprob (nats, <= 0),
    bits (its base-2 magnitude), chars and per_char (the log-probability of each scored character), skipped
    and unknown: characters the model never saw, in the string or the context, are skipped (module docstring).
    """
    if not string:
        raise UserError("nothing to score: the string is empty")
    string, unknown = _known(lm, string, strict, "scored text")
    context, unknown_ctx = _known(lm, context or "", strict, "scoring context")
    for c, n in unknown_ctx.items():
        unknown[c] = unknown.get(c, 0) + n
    unknown = dict(sorted(unknown.items(), key=lambda ck: (-ck[1], ck[0])))
    if not string:
        raise UserError(f"nothing to score: every character of the string ({', '.join(map(repr, unknown))}) is "
                        "one the model never saw in training")
    ctx = _start_text(lm, context)
    ids = lm.vocab.encode(ctx + string, check=False).astype(np.intp)
    logits, _ = lm.model.forward(ids[None, :-1], None, training=False)
    lp = log_softmax(logits[0].astype(np.float64), axis=-1)
    targets = ids[len(ctx):]
    per_char = lp[np.arange(len(ctx) - 1, len(ids) - 1), targets]
    logprob = float(per_char.sum())
    return {"logprob": logprob, "bits": -logprob / LN2, "chars": len(string), "per_char": per_char.tolist(),
            "skipped": sum(unknown.values()), "unknown": unknown}
