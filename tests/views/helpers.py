"""Models for the view tests: small random character models of every cell, and a planted one whose unit 2 is
on exactly inside double quotes."""
import numpy as np

from rnnkit.data.text import CharVocab
from rnnkit.nn.recurrent import GRU
from rnnkit.tasks.text_model import CharRNN, LanguageModel

TEXT = ('He said "hello there" and (then) left.\nShe wrote "ok, [fine] 42" twice; '
        'nobody (really) "cared".\nNew line "quoted {x}" end.\n')
QUOTE_TEXT = ('a "bc d" efg "h" ij kl "mno p q" r s "t u" v w x "yz" ab c\n' * 4)
PLANTED_UNIT = 2


def random_lm(cell: str, num_layers: int = 1, hidden: int = 7, dtype=np.float64, text: str = TEXT,
              reset_after: bool = True, seed: int = 0) -> LanguageModel:
    """A CharRNN with its random initialisation, biases spread so that no gate sits at 0.5."""
    vocab = CharVocab.from_text(text)
    rng = np.random.default_rng(seed)
    model = CharRNN(len(vocab), cell, hidden_size=hidden, num_layers=num_layers, embedding_dim=5, dtype=dtype, rng=rng)
    if not reset_after:
        rnn = GRU(5, hidden, num_layers, reset_after=False, dtype=dtype, rng=rng)
        for k in list(model.params):
            if k.startswith("rnn."):
                del model.params[k], model.grads[k]
        model.rnn = model.add_child("rnn", rnn)
        model.token_input = False  # the embedding goes through the new layer's own W_x
        if hasattr(model, "projection"):  # a cached embedding @ W_x helper bound to the old layer
            model.projection = type(model.projection)(model.embed, model.rnn)
        model._table = None
    for p in model.params.values():  # larger weights: values spread over the colour ranges
        p *= 2.5
    return LanguageModel(model, vocab, {"warmup": text[:20]})


def planted_lm(hidden: int = 6) -> LanguageModel:
    """GRU (reset after) whose unit PLANTED_UNIT flips sign at every '"': about -1 outside quotes, +1 inside.

    z = 1 (keep h) except at a quote character, where z = 0 and the candidate n = tanh(5 - 10 h) takes over:
    +1 from h = -1 or 0, -1 from h = +1. r = 1 throughout. The other units keep their random weights.
    """
    lm = random_lm("gru", hidden=hidden, text=QUOTE_TEXT, seed=3)
    p, H, k = lm.model.params, hidden, PLANTED_UNIT
    quote = lm.vocab.chars.index('"')
    p["embed.W"][:, 0] = 0.0
    p["embed.W"][quote, 0] = 1.0
    cols = [k, H + k, 2 * H + k]
    p["rnn.l0.W_x"][:, cols] = 0.0
    p["rnn.l0.W_h"][:, cols] = 0.0
    p["rnn.l0.W_h"][k, :] = 0.0
    p["rnn.l0.b_h"][cols] = 0.0
    p["rnn.l0.W_x"][0, H + k] = -40.0          # z's pre-activation: +20 normally, -20 on a quote
    p["rnn.l0.b_x"][cols] = [20.0, 20.0, 5.0]  # r = 1; z = 1; n's offset
    p["rnn.l0.W_h"][k, 2 * H + k] = -10.0      # n = tanh(5 - 10 h)
    lm.model._table = None
    return lm


def model_outputs(lm, text: str):
    """(probabilities (T, V), top-layer outputs (T, O), gate values {layer: {gate: (T, H)}}, final state) from
    the model's own forward (the fast engine), float64."""
    ids = lm.vocab.encode(text).astype(np.intp)[None, :]
    logits, state = lm.model.forward(ids)
    hs = lm.model.rnn.forward(lm.model.embed.forward(ids))[0][0]
    gates = lm.model.rnn.gate_activations()
    z = logits[0].astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return probs, hs, {k: {g: v[0] for g, v in d.items()} for k, d in gates.items()}, state
