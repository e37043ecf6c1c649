"""Text task through its Python API: learning, exact resume, reproducibility, divergence guard, sampling."""
import numpy as np
import pytest

from rnnkit import io
from rnnkit.errors import UserError
from rnnkit.tasks import text
from rnnkit.tasks.text_model import CharRNN
from rnnkit.train import Callback, StopTraining

CORPUS = "the cat sat on the mat. the dog sat on the log.\n" * 40


def tiny(**kw) -> text.TextConfig:
    base = dict(hidden_size=24, embedding_dim=8, batch_size=4, seq_len=12, steps=24, eval_every=8,
                sample_length=0, lr=1e-2, warmup_steps=4, threads=1)
    base.update(kw)
    return text.TextConfig(**base)


def quiet(*_):
    pass


def params(lm):
    return {k: v.copy() for k, v in lm.model.params.items()}


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_learns_a_tiny_corpus_and_samples_it():
    lm = text.train(text=CORPUS, config=tiny(steps=150, eval_every=50, hidden_size=48), progress=False, log=quiet)
    loss = text.evaluate(lm, CORPUS[:400])["loss"]
    assert loss < 1.0, loss  # uniform over the 17 characters would be 2.83 nats
    sample = text.generate(lm, prime="the ", length=60, temperature=0, seed=0)[0]
    assert "the" in sample and "sat on the" in "the " + sample


@pytest.mark.parametrize("cell", ["gru", "elman", "jordan"])
def test_every_cell_trains(cell):
    lm = text.train(text=CORPUS, config=tiny(cell=cell, steps=6, eval_every=3), progress=False, log=quiet)
    assert lm.model.cell == cell and np.isfinite(lm.meta["val_loss"])


def test_same_seed_bit_identical_and_other_seed_differs():
    cfg = tiny(dropout=0.2, num_layers=2, steps=12)  # dropout: the training RNG is exercised
    a = params(text.train(text=CORPUS, config=cfg, progress=False, log=quiet))
    b = params(text.train(text=CORPUS, config=cfg, progress=False, log=quiet))
    assert_bit_identical(a, b)
    c = params(text.train(text=CORPUS, config=tiny(dropout=0.2, num_layers=2, steps=12, seed=1),
                          progress=False, log=quiet))
    assert not np.array_equal(a["head.W"], c["head.W"])


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step(self, record):
        if record["step"] >= self.step:
            raise StopTraining


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path):
    # dropout + 2 layers: RNG state, carried state, optimizer moments and schedule all have to survive
    # the steps per epoch (num_chunks) make the interruption fall mid-epoch, with a carried state
    cfg = tiny(dropout=0.1, num_layers=2, steps=30, eval_every=7)
    full = text.train(text=CORPUS, config=cfg, out=tmp_path / "full", progress=False, log=quiet)
    # stopped cleanly at step 11 (like Ctrl-C): a checkpoint is written at the stop
    text.train(text=CORPUS, config=cfg, out=tmp_path / "cut", progress=False, log=quiet, callbacks=[StopAt(11)])
    assert io.read_meta(io.resolve_checkpoint(tmp_path / "cut"))["step"] == 11
    resumed = text.train(text=CORPUS, resume=tmp_path / "cut", progress=False, log=quiet)
    assert resumed.meta["step"] == 30
    assert_bit_identical(params(full), params(resumed))


def test_stop_callable_ends_the_run_with_a_checkpoint_and_resume_is_exact(tmp_path):
    cfg = tiny(steps=20, eval_every=8)
    full = text.train(text=CORPUS, config=cfg, progress=False, log=quiet)
    calls, lines = [], []

    def stop():  # what the command layer's Ctrl-C handler sets; polled once before training, then every step
        calls.append(1)
        return len(calls) > 6

    cut = text.train(text=CORPUS, config=cfg, out=tmp_path / "cut", progress=False, log=lines.append, stop=stop)
    assert cut.meta["step"] == 6 and cut.meta["stop_reason"] == "interrupted"
    assert io.read_meta(io.resolve_checkpoint(tmp_path / "cut", prefer="latest"))["step"] == 6
    assert any(line.startswith("interrupted at step 6: checkpoint saved") for line in lines)
    resumed = text.train(text=CORPUS, resume=tmp_path / "cut", progress=False, log=quiet)
    assert resumed.meta["step"] == 20
    assert_bit_identical(params(full), params(resumed))
    # a stop asked for before the first step trains nothing and writes nothing
    with pytest.raises(KeyboardInterrupt):
        text.train(text=CORPUS, config=cfg, out=tmp_path / "never", progress=False, log=quiet, stop=lambda: True)
    assert not (tmp_path / "never").exists()


def test_default_log_is_silent(capsys):
    text.train(text=CORPUS, config=tiny(steps=2), progress=False)
    assert capsys.readouterr() == ("", "")


def test_killed_run_resumes_from_periodic_checkpoint_bit_identical(tmp_path):
    cfg = tiny(steps=20, eval_every=5, keep_last=5)
    full = text.train(text=CORPUS, config=cfg, out=tmp_path / "full", progress=False, log=quiet)
    # a run killed after step 12 leaves its periodic checkpoints: drop those after step 10 to simulate it
    run = tmp_path / "killed"
    text.train(text=CORPUS, config=cfg, out=run, progress=False, log=quiet)
    for p in io.step_checkpoints(run):
        if int(p.stem.split("-")[1]) > 10:
            p.unlink()
    resumed = text.train(text=CORPUS, resume=run, progress=False, log=quiet)
    assert_bit_identical(params(full), params(resumed))
    # metrics.csv was cut back to step 10 and continued without duplicates
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    steps = [(r["kind"], int(r["step"])) for r in rows]
    assert len(steps) == len(set(steps)) and max(s for _, s in steps) == 20


def test_resume_with_different_text_is_refused(tmp_path):
    text.train(text=CORPUS, config=tiny(steps=4), out=tmp_path / "r", progress=False, log=quiet)
    with pytest.raises(UserError, match="differs"):
        text.train(text=CORPUS.replace("cat", "act"), resume=tmp_path / "r", config=text.TextConfig(steps=2),
                   progress=False, log=quiet)


def test_init_from_resets_counters_and_keeps_weights(tmp_path):
    base = text.train(text=CORPUS, config=tiny(steps=10), out=tmp_path / "base", progress=False, log=quiet)
    lines = []
    lm = text.train(text=CORPUS[:900], config=tiny(steps=3, hidden_size=99), init_from=tmp_path / "base",
                    out=tmp_path / "ft", progress=False, log=lines.append)
    assert any("fine-tuning" in l and "start from zero" in l and "hidden_size=24" in l for l in lines)
    assert lm.meta["step"] == 3 and lm.model.hidden_size == 24
    # with lr 0 the fine-tuned weights are exactly the loaded ones
    same = text.train(text=CORPUS[:900], config=tiny(steps=2, lr=1e-12, min_lr=0.0), init_from=tmp_path / "base",
                      progress=False, log=quiet)
    np.testing.assert_allclose(same.model.params["head.W"], base.model.params["head.W"], atol=1e-8)
    with pytest.raises(UserError, match=r"never saw.*'Z'"):
        text.train(text="ZZZ " + CORPUS, config=tiny(steps=2), init_from=tmp_path / "base", progress=False, log=quiet)


def test_non_finite_gradient_never_reaches_the_weights(monkeypatch):
    calls = {"n": 0}
    real = CharRNN.backward

    def poisoned(self, dlogits):
        real(self, dlogits)
        calls["n"] += 1
        if calls["n"] == 5:
            self.grads["rnn.l0.W_h"][0, 0] = np.inf

    monkeypatch.setattr(CharRNN, "backward", poisoned)
    lines = []
    lm = text.train(text=CORPUS, config=tiny(steps=10), progress=False, log=lines.append)
    assert all(np.isfinite(p).all() for p in lm.model.params.values())
    skips = lm.history.skips
    assert len(skips) == 1 and "rnn.l0.W_h" in skips[0]["reason"]
    assert any("rnn.l0.W_h" in l and "restored" in l for l in lines)


def test_corpus_too_small_for_one_batch():
    with pytest.raises(UserError, match=r"batch_size \* seq_len \+ 1 = 4 \* 12 \+ 1 = 49.*--batch-size"):
        text.train(text="short text " * 4, config=tiny(), progress=False, log=quiet)


def test_validation_split_too_small():
    with pytest.raises(UserError, match="validation split has 0"):
        text.train(text=CORPUS, config=tiny(val_fraction=0.0), progress=False, log=quiet)


def test_generate_options():
    lm = text.train(text=CORPUS, config=tiny(steps=30), progress=False, log=quiet)
    a = text.generate(lm, prime="the", length=40, temperature=1.0, seed=5, num_samples=3)
    b = text.generate(lm, prime="the", length=40, temperature=1.0, seed=5, num_samples=3)
    assert a == b and len(a) == 3 and all(len(s) == 40 for s in a)
    assert len(set(a)) > 1  # rows are sampled independently
    greedy = text.generate(lm, prime="the", length=30, temperature=0, num_samples=2, seed=1)
    assert greedy[0] == greedy[1] == text.generate(lm, prime="the", length=30, temperature=0, seed=9)[0]
    top1 = text.generate(lm, prime="the", length=30, temperature=1.5, top_k=1, seed=3)[0]
    assert top1 == greedy[0]  # top-1 sampling is greedy whatever the temperature
    streamed = []
    out = text.generate(lm, prime="t", length=10, seed=2, on_text=lambda chars: streamed.append(chars[0]))[0]
    assert "".join(streamed) == out
    with pytest.raises(UserError, match=r"prime text.*'Q'"):
        text.generate(lm, prime="Quiet", strict=True)
    # lenient default: characters the model never saw are dropped from the prime, nothing else changes
    assert text.generate(lm, prime="Q±the", length=30, seed=4) == text.generate(lm, prime="the", length=30, seed=4)


def test_step_matches_forward():
    """Generation's one-step path (projected table) equals the sequence forward."""
    model = CharRNN(11, "lstm", hidden_size=9, num_layers=2, embedding_dim=5, dtype=np.float64, rng=0)
    ids = np.random.default_rng(1).integers(0, 11, (3, 7))
    logits, state = model.forward(ids)
    st = None
    for t in range(7):
        lg, st = model.step(ids[:, t], st)
        np.testing.assert_allclose(lg, logits[:, t], rtol=1e-10, atol=1e-12)
    for a, b in zip(st, state):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_evaluate_equals_one_pass_and_score_sums_log_probs():
    lm = text.train(text=CORPUS, config=tiny(steps=20), progress=False, log=quiet)
    sample = CORPUS[:700]
    ids = lm.vocab.encode(sample).astype(np.intp)
    logits, _ = lm.model.forward(ids[None, :-1])
    z = logits[0].astype(np.float64)
    lp = z - z.max(1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    one_pass = -lp[np.arange(len(ids) - 1), ids[1:]].mean()
    m = text.evaluate(lm, sample, streams=4, burn_in=400)  # burn-in longer than the model's memory
    assert m["chars"] == len(sample) - 1
    assert abs(m["loss"] - one_pass) < 1e-4
    assert abs(m["bits_per_char"] - m["loss"] / np.log(2)) < 1e-12
    s = text.score(lm, "the cat")
    assert s["logprob"] < 0 and len(s["per_char"]) == 7
    assert abs(sum(s["per_char"]) - s["logprob"]) < 1e-9
    assert text.score(lm, "the cat")["logprob"] > text.score(lm, "tht caa")["logprob"]


def test_run_folder_contents_and_load(tmp_path):
    out = tmp_path / "run"
    seen = []  # on_metrics gets the rows just written to metrics.csv (the command layer plots them)
    text.train(text=CORPUS, config=tiny(steps=16, eval_every=4, keep_last=2), out=out, progress=False, log=quiet,
               on_metrics=lambda rows, cfg: seen.append(([dict(r) for r in rows], cfg.hidden_size)))
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "best.safetensors"} <= names
    assert not any(n.endswith(".png") for n in names)  # the task draws nothing
    import csv

    assert len(seen) == 4 and all(h == 24 for _, h in seen)  # one call per evaluation (steps 4, 8, 12, 16)
    assert [{k: str(v) for k, v in r.items()} for r in seen[-1][0]] == list(csv.DictReader(open(out / "metrics.csv")))
    assert len(io.step_checkpoints(out)) == 2
    lm = text.load(out)
    assert lm.meta["kind"] == "rnnkit-text" and lm.vocab.chars == "".join(sorted(set(CORPUS)))
    # the end of the training split is stored and read before sampling, so the state starts in-distribution
    assert lm.meta["warmup"] == CORPUS[: int(len(CORPUS) * 0.9)][-512:]
    assert text.generate(lm, length=20, seed=0) == text.generate(lm, length=20, seed=0, warmup=lm.meta["warmup"])
    assert text.generate(lm, length=20, seed=0) != text.generate(lm, length=20, seed=0, warmup="")
    header = open(out / "metrics.csv").readline().strip().split(",")
    assert header[:5] == ["kind", "step", "epoch", "minutes", "loss"]


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    out = tmp_path / "run"
    text.train(text=CORPUS, config=tiny(steps=4), out=out, progress=False, log=quiet)
    best = out / "best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or truncated"):
        text.load(out)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_token_input_gives_the_embedding_path_numbers(cell):
    """Training through the projected embedding (x W_x looked up per character, token_input=True): logits and
    every gradient (the embedding's and W_x's included) equal those of the plain lookup path."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 12, (4, 9))
    w = rng.standard_normal((4, 9, 12))
    results = []
    for token_input in (False, True):
        model = CharRNN(12, cell, hidden_size=6, num_layers=2, embedding_dim=4, dtype=np.float64, rng=0)
        assert not model.token_input  # the plain embedding path by default (measured faster)
        model.token_input = token_input
        logits, _ = model.forward(ids, training=True)
        model.backward(w)
        results.append((logits, {k: g.copy() for k, g in model.grads.items()}))
    (la, ga), (lb, gb) = results
    np.testing.assert_allclose(lb, la, rtol=1e-12, atol=1e-13)
    for k in ga:
        np.testing.assert_allclose(gb[k], ga[k], rtol=1e-11, atol=1e-13, err_msg=k)


def test_drop_unknown_counts_exactly_across_chunks(monkeypatch):
    from collections import Counter

    import rnnkit.data.text as data_text

    monkeypatch.setattr(data_text, "_CHUNK_CHARS", 7)  # many chunks, some clean, some not
    vocab = data_text.CharVocab("abc ")
    raw = "ab`c $$a±b  cab`c" * 3 + "abc abc"
    kept, unknown = vocab.drop_unknown(raw)
    assert kept == "".join(c for c in raw if c in "abc ")
    assert unknown == dict(Counter(c for c in raw if c not in "abc ")) == {"`": 6, "$": 6, "±": 3}
    assert list(unknown) == ["$", "`", "±"]  # most frequent first, ties by character


def test_unknown_characters_are_skipped_exactly_and_strict_refuses_them():
    lm = text.train(text=CORPUS, config=tiny(steps=20), progress=False, log=quiet)
    clean = CORPUS[:600]
    dirty = "`" + clean[:100] + "$±" + clean[100:350] + "``" + clean[350:] + "±"
    m = text.evaluate(lm, dirty, streams=4, burn_in=100)
    ref = text.evaluate(lm, clean, streams=4, burn_in=100)
    assert m["unknown"] == {"`": 3, "±": 2, "$": 1} and m["skipped"] == 6
    assert ref["unknown"] == {} and ref["skipped"] == 0
    assert m["chars"] == ref["chars"] == len(clean) - 1
    assert m["loss"] == ref["loss"]  # skipped: neither scored nor read, so bit-identical to the text without them
    with pytest.raises(UserError, match=r"the evaluation text has 3 character\(s\) the model never saw.*'\$'"):
        text.evaluate(lm, dirty, strict=True)
    with pytest.raises(UserError, match="after skipping 3"):
        text.evaluate(lm, "t``$")
    s, s_ref = text.score(lm, "the `cat$"), text.score(lm, "the cat")
    assert s["logprob"] == s_ref["logprob"] and s["chars"] == 7 and s["unknown"] == {"$": 1, "`": 1}
    assert s["skipped"] == 2
    with pytest.raises(UserError, match="scored text"):
        text.score(lm, "the `cat", strict=True)
    with pytest.raises(UserError, match="nothing to score"):
        text.score(lm, "$$")
