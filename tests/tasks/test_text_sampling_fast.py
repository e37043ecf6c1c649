"""The character sampler's in-place path (text_sampling.Stepper) against a plain loop over the reference cells."""
import numpy as np
import pytest

from rnnkit.data.text import CharVocab
from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN, JordanRNN
from rnnkit.tasks import text_sampling
from rnnkit.tasks.text_model import CharRNN, LanguageModel
from rnnkit.tasks.text_sampling import Stepper, generate

VOCAB = CharVocab("abcdefghijklmnopqrstuvwxyz .,\n")
V, E, H = len(VOCAB), 8, 24


def peaked_model(cell, layers, dtype):
    """A CharRNN whose weights are tripled, so that the distributions are far from uniform."""
    model = CharRNN(V, cell, H, layers, E, dtype=dtype, rng=5)
    for p in model.params.values():
        p *= 3
    return model


def reference_layer(model):
    """The same recurrent stack on the plain reference cells, with the model's weights."""
    cls = {"lstm": LSTM, "gru": GRU, "elman": ElmanRNN}.get(model.cell)
    args = (E, H, H, model.num_layers) if model.cell == "jordan" else (E, H, model.num_layers)
    layer = (cls or JordanRNN)(*args, dtype=np.float64, rng=0, engine="reference")
    for name, p in layer.params.items():
        p[...] = model.rnn.params[name]
    return layer


def reference_sample(model, prime_ids, length, temperature, B, rng):
    """The plain loop: embedding row -> reference step -> head -> softmax(logits / T) -> inverse CDF with
    one rng.random(B) per step. Returns the characters (B, length) and every step's probabilities."""
    layer = reference_layer(model)
    W_e, W, b = model.embed.W, model.head.W, model.head.b
    state = None
    for c in prime_ids[:-1]:  # the prime, one character at a time
        _, state = layer.step(W_e[[c]], state)
    state = tuple(np.repeat(s, B, axis=1) for s in state)
    x = np.full(B, prime_ids[-1])
    chars, probs = [], []
    for _ in range(length):
        y, state = layer.step(W_e[x], state)
        a = (y @ W + b) / temperature
        p = np.exp(a - a.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(B)
        cdf = np.cumsum(p, axis=1)
        x = np.array([min(np.searchsorted(cdf[i], u[i] * cdf[i, -1]), V - 1) for i in range(B)])
        chars.append(x)
        probs.append(p)
    return np.array(chars).T, probs


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1), ("elman", 2), ("jordan", 1)])
@pytest.mark.parametrize("B", [1, 3])
def test_fast_sampler_equals_a_plain_reference_loop(cell, layers, B, monkeypatch):
    """Same seed -> the same characters; the same characters fed in -> probabilities within 1e-12 (float64)."""
    monkeypatch.setattr(text_sampling, "UNIFORM_CHUNK", 7)  # uniforms drawn in blocks: cross several
    model = peaked_model(cell, layers, np.float64)
    lm = LanguageModel(model, VOCAB)
    prime, length, temperature = "the c", 60, 0.9
    fast = generate(lm, prime=prime, length=length, temperature=temperature, seed=11, num_samples=B, warmup="")
    prime_ids = VOCAB.encode(prime)
    chars, probs = reference_sample(model, prime_ids, length, temperature, B, np.random.default_rng(11))
    assert fast == [VOCAB.decode(row) for row in chars]
    assert len(set(fast[0])) > 3  # really sampled, not one repeated character

    _, state = model.forward(prime_ids[None, :-1])
    step = Stepper(model, tuple(np.repeat(s, B, axis=1) for s in state))
    x = np.full(B, prime_ids[-1]) if B > 1 else int(prime_ids[-1])
    for t in range(length):
        a = step(x) / temperature
        p = np.exp(a - a.max(axis=1, keepdims=True))
        np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), probs[t], rtol=0, atol=1e-12)
        x = chars[:, t] if B > 1 else int(chars[0, t])


def test_stepper_is_bit_identical_to_model_step_in_float32():
    """The in-place path and the allocating model.step give the same float32 logits, hence the same text."""
    model = peaked_model("lstm", 2, np.float32)
    B = 2
    state = model.initial_state(B)
    step = Stepper(model, tuple(s.copy() for s in state))
    ids = np.array([3, 7])
    for t in range(40):
        expected, state = model.step(ids, state)
        got = step(ids)
        assert np.array_equal(got, expected), t
        ids = (ids * 5 + t) % V
    for mine, expected in zip(step.state, state):  # h and c, both layers, updated in place
        assert np.array_equal(mine, expected)


def test_greedy_top_k_and_streaming_through_the_fast_path():
    lm = LanguageModel(peaked_model("gru", 1, np.float32), VOCAB)
    greedy = generate(lm, prime="ab", length=30, temperature=0, num_samples=2, warmup="")
    # greedy by hand through model.step: the most likely character each time
    _, state = lm.model.forward(VOCAB.encode("a")[None])
    x, by_hand = VOCAB.encode("b"), []
    for _ in range(30):
        logits, state = lm.model.step(x, state)
        x = logits.argmax(axis=1)
        by_hand.append(VOCAB.chars[x[0]])
    assert greedy == ["".join(by_hand)] * 2
    assert generate(lm, prime="ab", length=30, temperature=2.0, top_k=1, seed=3, warmup="") == greedy[:1]
    streamed = []
    out = generate(lm, prime="ab", length=25, seed=4, warmup="", on_text=lambda cs: streamed.append(cs[0]))
    assert "".join(streamed) == out[0]
