"""Using a trained character model: sample text, measure loss on a text, score a string.

    generate(lm, prime="ROMEO:", length=300, temperature=0.8, top_k=None, seed=0, num_samples=1, on_text=None)
    evaluate(lm, text)   -> {"loss": nats/char, "bits_per_char", "perplexity", "chars", "skipped", "unknown"}
    score(lm, string)    -> {"logprob": nats, "bits", "chars", "per_char": [...], "skipped", "unknown"}

Characters the model never saw in training have no probability in it, so by default they are skipped: not
scored and not fed to the model (the text is used as if they were not there), and the counts are returned
(``unknown``: {char: count}, ``skipped``: their total). ``strict=True`` raises UserError naming them instead.

Sampling advances all samples together one character at a time (:class:`Stepper`): each layer's in-place
``advance`` and a precomputed ``embedding @ W_x`` table, every buffer allocated once, the uniforms drawn in
blocks, so the Python work per character is a couple of dozen small array operations around one gemv per layer.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from rnnkit.data.text import eval_streams
from rnnkit.errors import UserError
from rnnkit.nn.activations import log_softmax
from rnnkit.nn.recurrent.threads import blas_limit

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
    BLAS runs with the model's ``threads`` if set, else with the threads the caller set (threadpoolctl;
    ``rnnkit --threads``, default 1): on a busy machine one thread can be much faster.
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
    if len(ids) > 1:  # read all but the last prime character in one forward pass, then copy to B rows
        _, state = model.forward(ids[None, :-1], None, training=False)
        state = tuple(np.repeat(s, B, axis=1) for s in state)
    else:
        state = model.initial_state(B)
    advance = Stepper(model, state) if Stepper.supports(model) else _plain_stepper(model, state)
    k = None if top_k is None or top_k >= V else int(top_k)
    emit = None if on_text is None else (lambda x: on_text([vocab.chars[x]] if B == 1 else [vocab.chars[i] for i in x]))
    # BLAS threads for the per-character gemv: the layers' threads= if set, else as the caller set them. Two
    # threads made a 4 MB gemv (LSTM, H=512) ~1.4x faster on an idle 2-core machine, and 10-20x slower
    # while another process kept the second core busy (measured), so it is the user's choice
    threads = getattr(model.rnn, "threads", None)
    with contextlib.nullcontext() if threads is None else blas_limit(threads):
        out = _sample(advance, int(ids[-1]), B, V, length, temperature, k, rng, emit)
    return [vocab.decode(row) for row in out]


def _sample(advance, first: int, B: int, V: int, length: int, temperature: float, k: int | None, rng,
            emit) -> np.ndarray:
    """The sampling loop: ``advance(ids) -> logits (B, V)``, starting from character ``first`` in every row.
    Returns the sampled ids (B, length). Per row and step the float64 softmax of logits / temperature
    (top k), and the first index whose cumulative weight reaches u * total, u = rng.random(B) of the step."""
    out = np.empty((B, length), dtype=np.intp)
    z = np.empty((B, V))  # float64 logits / temperature, then their exponentials
    cdf = np.empty((B, V))
    x = first if B == 1 else np.full(B, first, dtype=np.intp)
    for t in range(length):
        logits = advance(x)
        if temperature == 0:
            x = int(logits[0].argmax()) if B == 1 else logits.argmax(axis=1)  # float32 to 64 is exact
        else:
            if t % UNIFORM_CHUNK == 0:  # the same numbers as one rng.random(B) per step, drawn in blocks
                u = rng.random((min(UNIFORM_CHUNK, length - t), B))
            np.copyto(z, logits)  # float64 from here on
            if temperature != 1:
                z /= temperature
            if k is not None:
                kth = np.partition(z, V - k, axis=1)[:, V - k][:, None]
                z[z < kth] = -np.inf
            if B == 1:  # the same arithmetic on one row, without the per-row reductions' overhead
                z0, cdf0 = z[0], cdf[0]
                z0 -= np.maximum.reduce(z0)
                np.exp(z0, out=z0)
                np.add.accumulate(z0, out=cdf0)  # np.cumsum, without its wrapper's overhead
                x = min(int(cdf0.searchsorted(u[t % UNIFORM_CHUNK, 0] * cdf0[-1])), V - 1)
            else:
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                np.cumsum(z, axis=1, out=cdf)
                r = u[t % UNIFORM_CHUNK] * cdf[:, -1]
                x = np.minimum((cdf < r[:, None]).sum(axis=1), V - 1)
        out[:, t] = x
        if emit is not None:
            emit(x)
    return out


UNIFORM_CHUNK = 1024  # steps of uniforms drawn at once: (UNIFORM_CHUNK, num_samples) float64


class Stepper:
    """The character model advanced one character at a time, in place, for sampling: a call takes the
    characters (an int for one row, else (B,) ints) and returns the logits (B, V), a buffer overwritten by
    the next call. It owns ``state`` (tuple of (L, B, S) arrays, updated in place). The first layer reads a
    row of the (V, G*H) table ``embed.W @ W_x + biases`` (one gemv per layer fewer); every layer steps with
    its core's ``advance`` in buffers allocated here once, and nothing is checked per character. The
    numbers are those of ``model.step`` (the same ``advance``), which the reference cells match."""

    def __init__(self, model, state):
        cores = model.rnn.cores
        B = state[0].shape[1]
        self.state = state
        self.table = model.projection.table()  # (V, G*H), a new array
        cores[0].add_input_bias(self.table, True)
        self.x0 = np.empty((B, self.table.shape[1]), dtype=self.table.dtype)
        self.layers = []  # (core, its state arrays (views of self.state), work buffers, x W_x buffer, W_x)
        for k, core in enumerate(cores):
            xb = None if k == 0 else np.empty((B, core.params["W_x"].shape[1]), dtype=core.dtype)
            self.layers.append((core, tuple(s[k] for s in state), core.step_buffers(B), xb, core.params["W_x"]))
        self.W, self.b = model.head.W, model.head.b
        self.logits = np.empty((B, self.W.shape[1]), dtype=self.W.dtype)

    @staticmethod
    def supports(model) -> bool:
        """Every layer a one-direction core with an in-place step (the fast engine)."""
        return not model.rnn.bidirectional and all(hasattr(c, "advance") for c in model.rnn.cores)

    def __call__(self, ids):
        if isinstance(ids, int):
            y = self.table[ids:ids + 1]  # a (1, G*H) view, no copy
        else:
            y = np.take(self.table, ids, axis=0, out=self.x0)
        for core, state, work, xb, W_x in self.layers:
            if xb is not None:  # a higher layer: its input projection, as model.step computes it
                np.matmul(y, W_x, out=xb)
                core.add_input_bias(xb, False)
                y = xb
            y = core.advance(y, state, work)
        np.matmul(y, self.W, out=self.logits)
        if self.b is not None:
            self.logits += self.b
        return self.logits


def _plain_stepper(model, state):
    """The same calls through ``model.step`` (any engine; allocates per character)."""
    def advance(ids):
        nonlocal state
        logits, state = model.step(np.atleast_1d(np.asarray(ids, dtype=np.intp)), state)
        return logits

    return advance


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
