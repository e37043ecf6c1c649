"""Size and opening time of ``rnnkit text view`` pages, and the README's screenshot.

    python benchmarks/view_page.py RUN [--chars 10000 2000] [--repeat 3] [--screenshot docs/view.png]

For each ``--chars``: builds the page from the run's validation text (timed), splits its size into the stored
activations, predictions and weights, reports the largest rounding error of the 8-bit activation codes, then
opens it ``--repeat`` times in a fresh headless Chromium tab (Debian's /usr/bin/chromium through Playwright)
and times navigation start -> data inflated and text coloured (``rnnkitView.ready``), and the same plus the
first ranking ("inside quotes", every layer and quantity). The screenshot is of the first page: ranked by
"inside quotes", coloured by the top unit, 120 characters generated in the browser, a tooltip shown.
"""
from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rnnkit.tasks import text  # noqa: E402
from rnnkit.views.text import payload, render, validation_text  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]


def sizes(data: dict) -> dict:
    """Compressed bytes (before base64) of the three kinds of section, each deflated alone."""
    blob = zlib.decompress(base64.b64decode(data["blob"]))
    groups = {"activations": b"", "predictions": b"", "weights": b""}
    for name, s in data["sections"].items():
        n = int(np.prod(s["shape"])) * np.dtype(s["dtype"]).itemsize
        part = blob[s["offset"]:s["offset"] + n]
        kind = "activations" if name.startswith("act.") else "predictions" if name.startswith("top.") else "weights"
        groups[kind] += part
    return {k: (len(v), len(zlib.compress(v, 6))) for k, v in groups.items()}


def shrink_png(path: str) -> None:
    """256 colours (the page uses few), so the README's image stays small."""
    try:
        from PIL import Image
    except ImportError:
        return
    Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--chars", type=int, nargs="+", default=[10000, 2000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--screenshot", help="PNG of the first page (for the README)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from blas_env import blas_line

    print(blas_line())  # the page's build time runs the model's forward pass in NumPy
    lm = text.load(args.run)
    a = lm.model.arch()
    print(f"model: {a['cell']} {a['num_layers']}x{a['hidden_size']}, {lm.model.num_params():,} parameters, "
          f"step {lm.meta.get('step')}")
    tmp = Path(tempfile.mkdtemp(prefix="view_bench_"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for i, chars in enumerate(args.chars):
            body = validation_text(lm, chars)
            t0 = time.perf_counter()
            data, summary = payload(lm, body, title=f"rnnkit view: {a['cell']} {a['num_layers']}x{a['hidden_size']}")
            page_text = render(data)
            build = time.perf_counter() - t0
            path = tmp / f"view_{chars}.html"
            path.write_text(page_text, encoding="utf-8")
            mb = path.stat().st_size / 1e6
            print(f"\n{len(body):,} characters: page {mb:.2f} MB, built in {build:.1f} s; largest activation "
                  f"rounding error {summary['quant_max_error']:.4f} (8-bit codes on fixed ranges)")
            for kind, (raw, packed) in sizes(data).items():
                print(f"  {kind:<12} {raw / 1e6:6.2f} MB raw -> {packed / 1e6:6.2f} MB deflated "
                      f"(x4/3 in base64)")
            ready, ranked = [], []
            for _ in range(args.repeat):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                t0 = time.perf_counter()
                page.goto(path.as_uri())
                page.evaluate("() => window.rnnkitView.ready")
                ready.append(time.perf_counter() - t0)
                page.check("#rank-all")
                page.select_option("#feature", "quotes")
                page.click("#rank")
                page.wait_for_selector("#ranking li")
                ranked.append(time.perf_counter() - t0)
                if errors:
                    raise SystemExit(f"page errors: {errors}")
                if args.screenshot and i == 0 and len(ready) == args.repeat:
                    page.locator("#ranking li").first.click()
                    page.fill("#prime", 'print("')
                    page.fill("#seed", "1")
                    page.click("#gen-reset")
                    for _ in range(120):
                        page.click("#gen-step")
                    page.locator("#text span").nth(200).hover()
                    page.screenshot(path=args.screenshot, full_page=True)
                    shrink_png(args.screenshot)
                    print(f"  screenshot {args.screenshot}: {Path(args.screenshot).stat().st_size / 1e3:.0f} kB")
                page.close()
            print(f"  open in Chromium (navigation -> decoded and coloured): "
                  f"{' '.join(f'{t:.2f}' for t in ready)} s; + ranking all units for 'inside quotes': "
                  f"{' '.join(f'{t:.2f}' for t in ranked)} s")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
