"""The numbers behind the page, without a browser: activations equal the model's own forward, features and
correlations equal hand and NumPy computations, the planted quote unit ranks first, the page file is
self-contained and its stored codes decode to the activations, and the CLI writes it."""
import base64
import json
import re
import zlib

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.views.text import write_view
from rnnkit.views.traces import correlations, dequantise, feature, quantise, run_text
from tests.views.helpers import PLANTED_UNIT, QUOTE_TEXT, TEXT, model_outputs, planted_lm, random_lm

CASES = [("lstm", 2, True), ("gru", 2, True), ("gru", 1, False), ("elman", 2, True), ("jordan", 2, True)]


@pytest.mark.parametrize("cell,layers,reset_after", CASES)
def test_activations_equal_the_models_forward(cell, layers, reset_after):
    lm = random_lm(cell, layers, reset_after=reset_after)
    quantities, probs = run_text(lm, lm.vocab.encode(TEXT).astype(np.intp))
    ref_probs, hs, gates, state = model_outputs(lm, TEXT)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-10)
    by = {(q.layer, q.name): q for q in quantities}
    top = by[(layers - 1, "y" if cell == "jordan" else "h")].values
    np.testing.assert_allclose(top, hs, atol=1e-10)
    for k in range(layers):  # every layer's final state
        np.testing.assert_allclose(by[(k, "y" if cell == "jordan" else "h")].values[-1], state[0][k, 0], atol=1e-10)
        if cell == "lstm":
            np.testing.assert_allclose(by[(k, "c")].values[-1], state[1][k, 0], atol=1e-10)
    for name, layer_gates in gates.items():
        k = int(name[1:])
        for g, v in layer_gates.items():
            np.testing.assert_allclose(by[(k, g)].values, v, atol=1e-10)
    expected = {"lstm": "h c i f g o", "gru": "h r z n", "elman": "h", "jordan": "h y"}[cell].split()
    assert [q.name for q in quantities if q.layer == 0] == expected
    for q in quantities:
        assert (q.lo, q.hi) == {"tanh": (-1, 1), "gate": (0, 1)}.get(q.kind, (q.lo, q.hi))
        assert np.abs(q.values).max() <= max(abs(q.lo), q.hi)


def test_features_by_hand():
    text = 'a "b(c" d)\n ef'
    np.testing.assert_array_equal(feature(text, "quotes"), [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(feature(text, "brackets"), [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(feature(text, "column"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3])
    np.testing.assert_array_equal(feature(text, "word"), [1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0])
    with pytest.raises(UserError, match="unknown feature"):
        feature(text, "commas")


def test_correlations_equal_numpy():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((50, 4))
    values[:, 3] = 0.5  # constant unit: scored 0
    target = (rng.random(50) < 0.3).astype(float)
    r = correlations(values, target)
    for j in range(3):
        assert r[j] == pytest.approx(np.corrcoef(values[:, j], target)[0, 1], abs=1e-12)
    assert r[3] == 0


def test_planted_quote_unit_ranks_first(tmp_path):
    lm = planted_lm()
    summary = write_view(lm, QUOTE_TEXT, tmp_path / "v.html")
    q, unit, r = summary["best"]["quotes"][0]
    assert (q, unit) == ("l0.h", PLANTED_UNIT) and r > 0.95


def test_quantise_round_trip_error():
    v = np.linspace(-1.2, 1.2, 1001)
    codes = quantise(v, -1.0, 1.0)
    err = np.abs(dequantise(codes, -1.0, 1.0) - np.clip(v, -1, 1))
    assert codes.dtype == np.uint8 and err.max() <= 1.0 / 255 + 1e-12


def _page_data(path):
    page = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="rnnkit-data">(.*?)</script>', page, re.S)
    return page, json.loads(m.group(1))


def test_page_is_self_contained_and_codes_decode_to_activations(tmp_path):
    lm = random_lm("lstm", 2)
    text = TEXT + "</script><b>x</b>"  # markup in the text must not break the page
    lm = random_lm("lstm", 2, text=text)
    summary = write_view(lm, text, tmp_path / "v.html")
    page, data = _page_data(tmp_path / "v.html")
    assert not re.search(r"(src|href)\s*=|https?://|@import|<link", page.replace(data["blob"], ""))
    assert data["text"] == text and summary["bytes"] == (tmp_path / "v.html").stat().st_size
    blob = zlib.decompress(base64.b64decode(data["blob"]))
    quantities, probs = run_text(lm, lm.vocab.encode(text).astype(np.intp))
    for q in quantities:
        s = data["sections"][f"act.{q.layer}.{q.name}"]
        codes = np.frombuffer(blob, np.uint8, np.prod(s["shape"]), s["offset"]).reshape(s["shape"]).T
        err = np.abs(dequantise(codes, q.lo, q.hi) - np.clip(q.values, q.lo, q.hi)).max()
        assert err <= (q.hi - q.lo) / 510 + 1e-12
    s = data["sections"]["top.ids"]
    top = np.frombuffer(blob, s["dtype"], np.prod(s["shape"]), s["offset"]).reshape(s["shape"])
    np.testing.assert_array_equal(top[:, 0], probs.argmax(axis=1))
    w = data["sections"]["w.head.W"]
    head = np.frombuffer(blob, w["dtype"], np.prod(w["shape"]), w["offset"]).reshape(w["shape"])
    np.testing.assert_array_equal(head, lm.model.params["head.W"])


def test_unknown_characters_dropped_or_refused(tmp_path):
    lm = random_lm("gru")
    summary = write_view(lm, "said \u00e9 hello", tmp_path / "v.html")
    assert summary["unknown"] == {"\u00e9": 1} and summary["chars"] == len("said  hello")
    with pytest.raises(UserError, match="never saw"):
        write_view(lm, "said \u00e9", tmp_path / "w.html", strict=True)
    with pytest.raises(UserError, match="does not exist"):
        write_view(lm, "said", tmp_path / "no" / "w.html")


def test_cli_writes_the_page_and_prints_the_best_units(tmp_path, capsys):
    from rnnkit.tasks import text

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 20, encoding="utf-8")
    text.train(str(corpus), text.TextConfig(steps=2, hidden_size=8, batch_size=2, seq_len=16, eval_every=2),
               out=tmp_path / "run")
    out = tmp_path / "page.html"
    assert main(["text", "view", str(tmp_path / "run"), "--out", str(out), "--chars", "300"]) == 0
    printed = capsys.readouterr().out
    for label in ("inside quotes", "inside brackets", "position in the line", "start of a word"):
        assert re.search(label + r"\s+l\d+\.\w\[\d+\] r=[+-]\d\.\d{3}", printed)  # any layer
    _, data = _page_data(out)
    n_train = int(len(TEXT * 20) * 0.9)
    assert data["text"] == (TEXT * 20)[n_train:n_train + 300]  # the validation text
    given = tmp_path / "given.txt"
    given.write_text('said "hello"', encoding="utf-8")
    assert main(["text", "view", str(tmp_path / "run"), str(given), "--out", str(out)]) == 0
    assert _page_data(out)[1]["text"] == 'said "hello"'
    assert main(["text", "view", str(tmp_path / "run"), "--chars", "0", "--out", str(out)]) == 2
    assert "--chars: must be at least 1" in capsys.readouterr().err
    assert main(["text", "view", str(tmp_path / "run"), str(given), "--out", str(tmp_path / "new" / "p.html")]) == 0


def test_quantities_option_stores_only_those(tmp_path):
    lm = random_lm("lstm", 2)
    write_view(lm, TEXT, tmp_path / "v.html", quantities=["c"])
    _, data = _page_data(tmp_path / "v.html")
    assert sorted(k for k in data["sections"] if k.startswith("act.")) == ["act.0.c", "act.0.h", "act.1.c", "act.1.h"]
    assert [q["name"] for q in data["layers"][1]["quantities"]] == ["h", "c"]
    with pytest.raises(UserError, match="no quantity z; choose among h, c, i, f, g, o"):
        write_view(lm, TEXT, tmp_path / "v.html", quantities=["z"])
