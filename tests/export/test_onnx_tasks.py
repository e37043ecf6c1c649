"""Task models exported to ONNX equal rnnkit in onnxruntime: the character model (whole sequence and one
step, stepped T times), the memory tasks' sequence model (masked), and the forecaster on the original scale."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.data.series import Series
from rnnkit.data.text import CharVocab
from rnnkit.errors import UserError
from rnnkit.export.onnx import export_graphs, to_onnx
from rnnkit.tasks.forecast import Forecaster
from rnnkit.tasks.memory import SequenceModel
from rnnkit.tasks.text_model import CharRNN, LanguageModel
from tests.export.util import close, randomize, run, session

V = 11


@pytest.fixture(params=["lstm", "gru", "elman", "jordan"])
def char_model(request):
    model = CharRNN(V, request.param, hidden_size=6, num_layers=2, embedding_dim=4, rng=0)
    randomize(model, np.random.default_rng(1))
    return model


def test_text_sequence_graph_equals_forward(char_model):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, V, (3, 9))
    state = tuple(rng.standard_normal(s.shape).astype(np.float32) for s in char_model.initial_state(3))
    logits, finals = char_model.forward(ids, state)
    ex = export_graphs(char_model)
    names = [i.name for i in ex.graphs[""].graph.input][1:]
    out = run(ex.graphs[""], ids=ids, **dict(zip(names, state)))
    close(out["logits"], logits)
    for name, f in zip(names, finals):
        close(out[name[:-1] + "n"], f)


def test_one_step_graph_stepped_T_times_equals_sequence_graph(char_model):
    rng = np.random.default_rng(3)
    B, T = 2, 8
    ids = rng.integers(0, V, (B, T))
    ex = export_graphs(char_model)
    names = [i.name for i in ex.graphs[""].graph.input][1:]
    state0 = {n: rng.standard_normal(s.shape).astype(np.float32)
              for n, s in zip(names, char_model.initial_state(B))}
    whole = run(ex.graphs[""], ids=ids, **state0)
    step = session(ex.graphs[".step"])
    state, rk_state = dict(state0), tuple(state0.values())
    for t in range(T):
        out = run(step, ids=ids[:, t], **state)
        close(out["logits"], whole["logits"][:, t])
        rk_logits, rk_state = char_model.step(ids[:, t], rk_state)  # and rnnkit's own step
        close(out["logits"], rk_logits)
        state = {n: out[n[:-1] + "n"] for n in names}
    for n in names:
        close(state[n], whole[n[:-1] + "n"])


def test_language_model_files_and_vocabulary(tmp_path):
    vocab = CharVocab("abcdefghij ")
    lm = LanguageModel(CharRNN(len(vocab), "lstm", hidden_size=5, embedding_dim=3, rng=0), vocab)
    written = to_onnx(lm, tmp_path / "lm.onnx")
    assert [p.name for p in written] == ["lm.onnx", "lm.step.onnx", "lm.json"]
    info = json.loads((tmp_path / "lm.json").read_text())
    assert info["chars"] == vocab.chars and info["state"] == [{"input": "h0", "output": "hn", "shape": [1, "B", 5]},
                                                 {"input": "c0", "output": "cn", "shape": [1, "B", 5]}]
    assert info["graphs"]["step"]["inputs"] == {"ids": ["B"], "h0": [1, "B", 5], "c0": [1, "B", 5]}
    import onnx

    for p in written[:2]:
        onnx.checker.check_model(str(p), full_check=True)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan"])
@pytest.mark.parametrize("output", ["seq", "last"])
def test_sequence_model_masked(cell, output):
    model = SequenceModel(cell, 4, 6, 3, output=output, num_layers=2, rng=0)
    rng = np.random.default_rng(4)
    randomize(model, rng)
    lengths = np.array([8, 2, 5])
    xs = rng.standard_normal((3, 8, 4)).astype(np.float32)
    expected = model.forward(xs, mask=np.arange(8)[None, :] < lengths[:, None])
    out = run(export_graphs(model).graphs[""], xs=xs, lengths=lengths)
    close(out["out"], expected)


# -- forecasting -------------------------------------------------------------------------------------------
def seasonal(n=150, seed=0, level=50.0):
    t = np.arange(n)
    return level + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(seed).normal(0, 1, n)


def check_forecaster(model, history_rows=3):
    """ONNX forecasts from raw windows equal forecast_at (mean, lower, upper) for every series."""
    sess = session(export_graphs(model).graphs[""])
    L, K = model.lookback_, model.out_steps
    worst = 0.0
    for index, s in enumerate(model.series_):
        origins = np.linspace(L, len(s) - K, history_rows).astype(int)
        mean, lower, upper = model.forecast_at(s, origins)
        feeds = {"history": np.stack([s.y[o - L:o] for o in origins]).astype(np.float32),
                 "series": np.full(len(origins), index)}
        if s.past.shape[1]:
            feeds["past_covariates"] = np.stack([s.past[o - L:o] for o in origins]).astype(np.float32)
        if s.future.shape[1]:
            feeds["future_covariates"] = np.stack([s.future[o - L:o + K] for o in origins]).astype(np.float32)
        out = run(sess, **feeds)
        for name, want in (("mean", mean), ("lower", lower), ("upper", upper)):
            assert out[name].shape == want.shape
            # relative: forecasts are on the original scale (here 50-200)
            np.testing.assert_allclose(out[name], want, rtol=1e-5)
            worst = max(worst, float(np.max(np.abs(out[name] - want) / np.abs(want))))
    assert np.all(out["lower"] < out["mean"]) and np.all(out["mean"] < out["upper"])
    return worst


@pytest.mark.parametrize("kw", [dict(cell="lstm"), dict(cell="gru", ensemble=2, num_layers=2),
                                dict(cell="mlp"), dict(cell="jordan"), dict(cell="elman", transform="log")])
def test_forecaster_on_the_original_scale(kw):
    model = Forecaster(horizon=5, epochs=3, hidden_size=8, **kw).fit([seasonal(), seasonal(seed=1, level=90)])
    assert model.log_ == (kw.get("transform") == "log")
    check_forecaster(model)


def test_forecaster_with_past_and_future_covariates():
    n = 160
    rng = np.random.default_rng(5)
    promo = (rng.random(n) < 0.3).astype(float)
    temp = rng.normal(20, 5, n)
    y = seasonal(n) + 5 * promo
    s = Series(y, temp[:, None], promo[:, None], None, "shop", "sales", ("temp",), ("promo",))
    model = Forecaster(horizon=4, lookback=10, epochs=3, hidden_size=8, cell="gru").fit(s)
    check_forecaster(model)


def test_recursive_and_unfitted_forecasters_are_refused():
    model = Forecaster(horizon=3, strategy="recursive", epochs=2, hidden_size=4).fit(seasonal(80))
    with pytest.raises(UserError, match="recursive.*--strategy direct"):
        export_graphs(model)
    with pytest.raises(UserError, match="not fitted"):
        export_graphs(Forecaster(horizon=3))


def test_unknown_model_is_refused():
    with pytest.raises(UserError, match="no ONNX exporter for a dict"):
        export_graphs({})
