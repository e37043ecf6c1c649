"""The page in a real headless Chromium (Debian's chromium through Playwright): it loads without console errors,
colours characters as rnnkit's activations say, ranks the planted quote unit first, and its in-browser model
gives rnnkit's next-character probabilities for every cell. Screenshots go to tests/views/artifacts/."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnkit.views.text import write_view
from tests.views.helpers import PLANTED_UNIT, QUOTE_TEXT, TEXT, model_outputs, planted_lm, random_lm

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed (pip install "
                                                            "playwright; the browser is Debian's chromium)")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("no chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=ARGS)
        yield b
        b.close()


def open_page(browser, path):
    """(page, errors): the page loaded and its data decoded; errors collects console errors and exceptions."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(Path(path).resolve().as_uri())
    assert page.evaluate("() => window.rnnkitView.ready") is True
    return page, errors


def expected_rgb(v, lo, hi, kind):
    """The documented colour maps: white to green for gates, blue-white-red for signed ranges."""
    t = (np.clip(v, lo, hi) - lo) / (hi - lo)
    mix = lambda a, b, s: np.array(a) + (np.array(b) - np.array(a)) * s  # noqa: E731
    if kind == "gate":
        return mix((247, 247, 247), (35, 139, 69), t)
    if t < 0.5:
        return mix((33, 102, 172), (247, 247, 247), t / 0.5)
    return mix((247, 247, 247), (178, 24, 43), (t - 0.5) / 0.5)


@pytest.mark.parametrize("cell,layers,reset_after,dtype", [
    ("lstm", 2, True, np.float64), ("gru", 2, True, np.float64), ("gru", 1, False, np.float64),
    ("elman", 2, True, np.float64), ("jordan", 2, True, np.float64), ("gru", 1, True, np.float32)])
def test_browser_probabilities_equal_rnnkits(browser, tmp_path, cell, layers, reset_after, dtype):
    lm = random_lm(cell, layers, dtype=dtype, reset_after=reset_after)
    write_view(lm, TEXT[:40], tmp_path / "v.html")
    page, errors = open_page(browser, tmp_path / "v.html")
    js = np.array(page.evaluate("(t) => RnnkitPanels.probsAfter(t)", TEXT))
    probs = model_outputs(lm, TEXT)[0]
    assert js.shape == probs.shape
    assert np.abs(js - probs).max() < 1e-5
    for _ in range(5):  # the generator's controls run without errors
        page.click("#gen-step")
    assert page.locator("#gen-out .g").count() == 5
    assert errors == []
    page.close()


def test_colours_follow_rnnkits_activations(browser, tmp_path):
    lm = random_lm("lstm", 2)
    write_view(lm, TEXT, tmp_path / "v.html")
    page, errors = open_page(browser, tmp_path / "v.html")
    _, hs, gates, _ = model_outputs(lm, TEXT)
    sample = np.random.default_rng(0).choice(len(TEXT), 25, replace=False)
    for layer, q, unit, values, lo, hi, kind in [(1, "h", 3, hs, -1, 1, "tanh"),
                                                 (1, "f", 5, gates["l1"]["f"], 0, 1, "gate"),
                                                 (0, "g", 0, gates["l0"]["g"], -1, 1, "tanh")]:
        page.select_option("#layer", str(layer))
        page.select_option("#quantity", q)
        page.fill("#unit", str(unit))
        page.dispatch_event("#unit", "change")
        colours = page.evaluate("(ix) => ix.map((i) => getComputedStyle(rnnkitView.view.spans[i]).backgroundColor)",
                                sample.tolist())
        for i, c in zip(sample, colours):
            got = np.array([int(x) for x in c[c.index("(") + 1:-1].split(",")])
            want = expected_rgb(values[i, unit], lo, hi, kind)
            assert np.abs(got - want).max() <= 2.5, (q, i, got, want)
    page.hover("#text span >> nth=10")
    tip = page.inner_text("#tip")
    assert "next character" in tip and "l0.g[0]" in tip
    assert errors == []
    page.close()


def test_planted_unit_ranks_first_and_screenshot(browser, tmp_path):
    lm = planted_lm()
    write_view(lm, QUOTE_TEXT, tmp_path / "v.html", title="planted quote unit")
    page, errors = open_page(browser, tmp_path / "v.html")
    page.select_option("#feature", "quotes")
    page.click("#rank")
    first = page.locator("#ranking li").first
    assert first.inner_text().startswith(f"l0.h[{PLANTED_UNIT}]")
    assert float(first.inner_text().split("r = ")[1]) > 0.95
    first.click()
    assert page.input_value("#unit") == str(PLANTED_UNIT)
    page.fill("#unit", "0")
    page.dispatch_event("#unit", "change")
    page.select_option("#order", "rank")  # heat-map rows by |r|: the top row is the planted unit
    page.click("#heat", position={"x": 4, "y": 1})
    assert page.input_value("#unit") == str(PLANTED_UNIT)
    page.evaluate("""() => {  // select characters 3..6 ('bc d') with the mouse's API
        const r = document.createRange(), s = rnnkitView.view.spans;
        r.setStart(s[3].firstChild, 0); r.setEnd(s[6].firstChild, 1);
        getSelection().removeAllRanges(); getSelection().addRange(r); }""")
    page.click("#use-selection")
    assert page.input_value("#feature") == "selection" and "1 span" in page.inner_text("#span-count")
    page.click("#rank")
    assert page.locator("#ranking li").count() > 0
    sel = page.evaluate("() => Array.from(rnnkitView.featureValues('selection')).slice(0, 9)")
    assert sel == [0, 0, 0, 1, 1, 1, 1, 0, 0]
    page.fill("#regex", '"[^"]*"')  # a user regex: the quoted spans, closing quote included
    page.select_option("#feature", "regex")
    page.click("#rank")
    assert page.locator("#ranking li").count() > 0
    page.fill("#regex", "(")  # a bad regex is reported on the page, not thrown
    page.click("#rank")
    assert "invalid regular expression" in page.inner_text("#ranking")
    for _ in range(30):
        page.click("#gen-step")
    page.click("#gen-run")  # continuous sampling until paused
    page.wait_for_function("() => document.querySelectorAll('#gen-out .g').length > 60")
    page.click("#gen-run")
    assert page.inner_text("#gen-run") == "run"
    page.hover("#gen-out .g >> nth=3")
    assert f"l0.h[{PLANTED_UNIT}] = " in page.inner_text("#tip") and "sampled with probability" in page.inner_text("#tip")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "planted.png"), full_page=True)
    assert (ARTIFACTS / "planted.png").stat().st_size > 10_000
    assert errors == []
    page.close()


def test_page_features_equal_pythons(browser, tmp_path):
    from rnnkit.views.traces import feature

    text = 'x = f("a 😀 (b") + [c, "d\u00e9"]\n  g(😀z) "h\n'
    lm = random_lm("elman", text=text)
    write_view(lm, text, tmp_path / "v.html")
    page, errors = open_page(browser, tmp_path / "v.html")
    for name in ("quotes", "brackets", "column", "word"):
        js = page.evaluate("(n) => Array.from(rnnkitView.featureValues(n))", name)
        np.testing.assert_array_equal(js, feature(text, name), err_msg=name)
    page.fill("#regex", "😀.")  # code points, not UTF-16 units: the emoji is one character
    js = page.evaluate("() => Array.from(rnnkitView.featureValues('regex'))")
    want = np.zeros(len(text))
    for i, c in enumerate(text):
        if c == "😀":
            want[i:i + 2] = 1
    np.testing.assert_array_equal(js, want)
    assert errors == []
    page.close()
