"""``rnnkit text view RUN [FILE]``: write the self-contained HTML page of rnnkit.views.text and print, for a
reader without a browser, the units that best follow each built-in feature."""
from __future__ import annotations

from pathlib import Path

from rnnkit.commands import options as O

DEFAULT_CHARS = 2000


def register_view(sub) -> None:
    v = sub.add_parser("view", help="an HTML page colouring text by hidden units and gates, with generation",
                       description="Write one self-contained HTML page (no server, no network) that colours a text "
                                   "by any unit of h, LSTM c or any gate, ranks units against features (quotes, "
                                   "brackets, line position, word starts, a regex, selected spans), shows a "
                                   "units-by-time heat map and samples from the model in the browser.")
    v.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    v.add_argument("file", nargs="?", metavar="FILE", help="UTF-8 text to read (default: the run's validation text)")
    v.add_argument("--out", default="view.html", type=O.file_path, help="page to write (default view.html)")
    v.add_argument("--chars", type=O.int_range(1, 10**7), default=DEFAULT_CHARS,
                   help=f"characters of the text shown (default {DEFAULT_CHARS}; the page grows by about "
                        "(units x quantities x layers) bytes per character before compression)")
    v.add_argument("--quantities", metavar="NAMES",
                   help="comma-separated quantities to store, e.g. h,c (h is always kept; default: all: h for "
                        "Elman, h,y for Jordan, h,c,i,f,g,o for LSTM, h,r,z,n for GRU); fewer make a smaller page")
    v.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which checkpoint of a run folder (default best)")
    v.add_argument("--replace-bad-bytes", action="store_true", help="replace invalid UTF-8 bytes by U+FFFD")
    v.set_defaults(func=run_view)


def run_view(args) -> int:
    from rnnkit.data.text import read_text_file
    from rnnkit.tasks import text
    from rnnkit.views.text import validation_text, write_view
    from rnnkit.views.traces import FEATURES

    out = O.out_file(args.out)  # its folder made (or refused) before any work
    lm = text.load(args.run, prefer=args.checkpoint)
    if args.file:
        source = args.file
        body = read_text_file(args.file, errors="replace" if args.replace_bad_bytes else "strict")
    else:
        source = "the run's validation text"
        body = validation_text(lm, args.chars)
    a = lm.model.arch()
    what = Path(source).name if args.file else source
    title = f"rnnkit view: {a['cell']} {a['num_layers']}x{a['hidden_size']} reading {what}"
    names = [n.strip() for n in args.quantities.split(",") if n.strip()] if args.quantities else None
    summary = write_view(lm, body, out, max_chars=args.chars, title=title, quantities=names)
    if summary["unknown"]:
        n = sum(summary["unknown"].values())
        print(f"dropped {n} character(s) the model never saw: " +
              ", ".join(f"{c!r} x{k}" for c, k in list(summary["unknown"].items())[:10]))
    print(f"{summary['path']}: {summary['bytes'] / 1e6:.2f} MB, {summary['chars']:,} characters of {source} "
          f"(activations as 8-bit codes, largest error {summary['quant_max_error']:.4f})")
    print("units that follow each feature best (Pearson r over the characters; layer.quantity[unit]):")
    for name, rows in summary["best"].items():
        cells = "   ".join(f"{q}[{u}] r={r:+.3f}" for q, u, r in rows)
        print(f"  {FEATURES[name]:<22} {cells}")
    print(f"open it in a browser: {Path(summary['path']).resolve().as_uri()}")
    return 0
