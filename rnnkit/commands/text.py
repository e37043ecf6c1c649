"""``rnnkit text train|generate|evaluate``: the character language model from the shell (the run's
learning-curve plot, the progress bar and Ctrl-C/SIGTERM are handled here; the task does the rest)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rnnkit.commands import options as O
from rnnkit.errors import UserError

from rnnkit.tasks.text_defaults import DEFAULT_TEMPERATURE, SPELLING_TEMPERATURES

_TRAIN_FLAGS = {  # flag -> (TextConfig field, type, help)
    "--cell": ("cell", O.one_of("gru", "lstm", "elman", "jordan"),
               "recurrent cell: gru, lstm, elman or jordan (default gru)"),
    "--hidden-size": ("hidden_size", O.int_range(1, 1 << 16), "units per recurrent layer (default 512)"),
    "--num-layers": ("num_layers", O.int_range(1, 64), "stacked recurrent layers (default 2)"),
    "--embedding-dim": ("embedding_dim", O.int_range(1, 1 << 16), "character embedding size (default 64)"),
    "--dropout": ("dropout", O.fraction, "dropout between layers and before the output (default 0.25)"),
    "--dtype": ("dtype", O.one_of("float32", "float64"), "float32 (default) or float64"),
    "--batch-size": ("batch_size", O.int_range(1, 1 << 20), "parallel streams per batch (default 32)"),
    "--seq-len": ("seq_len", O.int_range(1, 1 << 20), "characters per chunk, the truncated-BPTT length (default 64)"),
    "--val-fraction": ("val_fraction", O.probability, "last fraction of the corpus used for validation (default 0.1)"),
    "--separator": ("separator", str, "text put between files (default a blank line)"),
    "--lr": ("lr", O.learning_rate, "peak learning rate of Adam (default 2e-3)"),
    "--min-lr": ("min_lr", O.nonneg_float, "learning rate at the end of the cosine decay (default 1e-4)"),
    "--warmup-steps": ("warmup_steps", O.nonneg_int, "linear warm-up steps (default 20)"),
    "--weight-decay": ("weight_decay", O.nonneg_float, "L2 weight decay (default 0)"),
    "--clip": ("clip", O.nonneg_float, "global gradient-norm clipping, 0 = off (default 5.0)"),
    "--eval-every": ("eval_every", O.positive_int, "evaluate and checkpoint every N steps (default: 10 times per budget)"),
    "--eval-minutes": ("eval_minutes", O.minutes, "with a time budget: minutes between evaluations (default a tenth)"),
    "--eval-chars": ("eval_chars", O.int_range(2), "validation characters per evaluation (default 200000)"),
    "--sample-length": ("sample_length", O.int_range(0, 1 << 20),
                        "characters of the sample printed at each evaluation (default 200)"),
    "--keep-last": ("keep_last", O.positive_int, "step checkpoints kept besides the best (default 3)"),
    "--seed": ("seed", O.seed_int, "random seed: the same seed and --steps give a bit-identical run (default 0)"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("text", help="character-level language model: train, generate, evaluate",
                              description="A character-level language model (char-rnn) on any UTF-8 text.")
    sub = p.add_subparsers(dest="text_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = sub.add_parser("train", help="train on text files (no file: the built-in Python reference corpus)",
                       description="Train a character model. With no FILE the built-in corpus (the Python language "
                                   "reference that ships with the interpreter) is used. Ctrl-C (or SIGTERM) stops "
                                   "after the current step and saves a checkpoint; a second one aborts.")
    t.add_argument("files", nargs="*", metavar="FILE_OR_FOLDER", help="UTF-8 text files, folders or globs")
    t.add_argument("--out", type=O.folder_path, help="run folder (default runs/text-<date>-<time>)")
    t.add_argument("--minutes", type=O.minutes,
                   help="time budget in minutes (default 3 when --steps is not given); with --resume: minutes MORE, "
                        "added to the time the run already trained")
    t.add_argument("--steps", type=O.positive_int,
                   help="number of training steps (each: batch-size x seq-len characters; default: none, the "
                        "time budget decides); with --resume: steps MORE")
    t.add_argument("--resume", metavar="RUN",
                   help="continue a run exactly from its latest checkpoint: without --minutes/--steps it finishes "
                        "the run's own budget, with them it trains that much more (default: start a new run)")
    t.add_argument("--init-from", metavar="CKPT",
                   help="start from these weights (fine-tune); counters reset (default: random initial weights)")
    t.add_argument("--replace-bad-bytes", action="store_true", help="replace invalid UTF-8 bytes by U+FFFD")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--workers", type=int, default=1, metavar="N",
                   help="data-parallel training on N Ray workers, the batch's streams split between them "
                        '(needs pip install "rnnkit[ray]"; default 1: no Ray)')
    t.add_argument("--ray-address", metavar="ADDRESS",
                   help="join this Ray cluster (`ray start --head` prints it; default: a local Ray instance)")
    for flag, (field, typ, text) in _TRAIN_FLAGS.items():
        t.add_argument(flag, dest=field, type=typ, help=text)
    t.set_defaults(func=run_train)

    g = sub.add_parser("generate", help="sample text from a trained run, streamed to stdout")
    g.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    g.add_argument("--prime", default="", help="text the sample continues (default: start of a line)")
    g.add_argument("--prime-file", help="read the prime text from this UTF-8 file (default: none, use --prime)")
    g.add_argument("--length", type=O.int_range(0, 10**6), default=500,
                   help="characters to generate per sample (default 500)")
    g.add_argument("--temperature", type=O.float_range(0.0, 100.0), default=DEFAULT_TEMPERATURE,
                   help="divides the logits: lower is safer and more repetitive, higher more varied and "
                        f"error-prone; 1 samples the model as trained; 0 is greedy (default {DEFAULT_TEMPERATURE})")
    g.add_argument("--top-k", type=O.positive_int, help="sample only among the k most likely characters (default: all)")
    g.add_argument("--seed", type=O.seed_int, help="sampling seed: same seed, same text (default: a fresh random seed)")
    g.add_argument("--num-samples", type=O.int_range(1, 1000), default=1,
                   help="samples generated together in one batch (default 1)")
    g.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which checkpoint of a run folder (default best)")
    g.add_argument("--strict", action="store_true",
                   help="refuse a prime with characters the model never saw (default: drop them with a warning)")
    g.set_defaults(func=run_generate)

    e = sub.add_parser("evaluate", help="loss in nats and bits per character on a text; --score a string; "
                                        "--spelling")
    e.add_argument("run", metavar="RUN", help="run folder or checkpoint file")
    e.add_argument("--spelling", action="store_true",
                   help="report the share of generated words that occur in the training text, beside the share "
                        "for the validation text and for a 5-gram character model (a word: a run of letters with "
                        "inner apostrophes, lowercased; default: off)")
    e.add_argument("--temperatures", type=O.float_range(0.0, 100.0), nargs="+", default=list(SPELLING_TEMPERATURES),
                   metavar="T", help="sampling temperatures of --spelling (default "
                                     f"{' '.join(map(str, SPELLING_TEMPERATURES))})")
    e.add_argument("--spelling-chars", type=O.int_range(8, 10**7), default=4000, metavar="N",
                   help="characters generated per temperature and per model for --spelling (default 4000)")
    e.add_argument("files", nargs="*", metavar="FILE", help="UTF-8 text files, folders or globs")
    e.add_argument("--score", metavar="STRING", help="print the log-probability of STRING (default: none)")
    e.add_argument("--replace-bad-bytes", action="store_true", help="replace invalid UTF-8 bytes by U+FFFD")
    e.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                   help="which checkpoint of a run folder (default best)")
    e.add_argument("--strict", action="store_true",
                   help="refuse text with characters the model never saw (default: skip them, not scored and not "
                        "fed to the model, and report which)")
    e.set_defaults(func=run_evaluate)

    __import__("rnnkit.commands.text_view", fromlist=["register_view"]).register_view(sub)


def _config(args):
    from rnnkit.tasks.text import TextConfig

    cfg = TextConfig()
    given = []
    for _, (field, _, _) in _TRAIN_FLAGS.items():
        value = getattr(args, field)
        if value is not None:
            setattr(cfg, field, value)
            given.append(field)
    cfg.steps, cfg.minutes = args.steps, args.minutes
    cfg.replace_bad_bytes = bool(args.replace_bad_bytes)
    cfg.threads = getattr(args, "threads", cfg.threads)  # the global ``rnnkit --threads N``
    cfg.workers, cfg.ray_address = args.workers, args.ray_address
    return cfg, given


def _plot_curves(out: Path):
    """The ``on_metrics`` hook of a run: redraw learning_curves.png from the rows of metrics.csv."""
    def draw(rows, cfg) -> None:
        try:
            from rnnkit.plots.curves import learning_curves

            learning_curves(rows, out / "learning_curves.png", title=f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size}")
        except ImportError:  # matplotlib is optional for training
            pass
    return draw


def run_train(args) -> int:
    from tqdm.auto import tqdm

    from rnnkit.commands.interrupt import GracefulStop
    from rnnkit.io import RunLock, step_checkpoints
    from rnnkit.tasks import text

    cfg, given = _config(args)
    if args.resume:
        if args.files:
            raise UserError("--resume reads the run's own data; do not give files with it")
        if given:
            print(f"note: resuming uses the run's saved settings; ignoring {', '.join(given)}", file=sys.stderr)
        out = Path(args.out) if args.out else Path(args.resume)
    else:
        out = Path(args.out) if args.out else Path("runs") / time.strftime("text-%Y%m%d-%H%M%S")
        if out.is_dir() and (step_checkpoints(out) or (out / "best.safetensors").exists()):
            raise UserError(f"run folder {out} already holds a run; continue it with --resume {out} or choose "
                            "another --out")
    # one writer per run folder (a second training exits 2 naming the holder); the first Ctrl-C or SIGTERM
    # ends training after the current step, with a checkpoint
    with RunLock(out) as lock, GracefulStop(notice="stopping after this step and saving a checkpoint "
                                                   "(again to abort; the last checkpoint stays intact)") as stop:
        if lock.stale:
            print(f"note: took over the lock of process {lock.stale}, which is no longer running", file=sys.stderr)
        lm = text.train(args.files or None, cfg, out=out, resume=args.resume, init_from=args.init_from,
                        progress=not args.no_progress, log=tqdm.write, stop=stop, on_metrics=_plot_curves(out))
    if stop.requested:  # the task saved a checkpoint and said so; no sample after an interrupt
        return stop.report("text train", f"checkpoint saved in {out}; continue with: rnnkit text train --resume {out}")
    if lm.meta.get("trained_steps") == 0:  # --resume of a finished run: the model did not change
        return 0
    print(f"\nrun folder: {out}  (config.json, metrics.csv, learning_curves.png, checkpoints)")
    try:
        lm, which = _load(out, "best")
    except UserError:  # no best checkpoint (no finite validation loss): the final model
        which = f"the final model (step {lm.meta.get('step')})"
    temperature = lm.meta.get("config", {}).get("sample_temperature", cfg.sample_temperature)
    print(f"--- sample from {which}, temperature {temperature} ---")
    sys.stdout.flush()
    _stream(lm, prime="", length=500, temperature=temperature, top_k=None, seed=cfg.seed)
    print("\n---")
    print(f"more: rnnkit text generate {out} --prime \"...\" --temperature {DEFAULT_TEMPERATURE}")
    return 0


def _load(run, prefer: str):
    """(LanguageModel, a phrase saying which checkpoint it is: file, step and validation loss)."""
    from rnnkit.io import resolve_checkpoint
    from rnnkit.tasks import text

    path = resolve_checkpoint(run, prefer=prefer)
    lm = text.load(path)
    val = lm.meta.get("val_loss")
    kind = "the best checkpoint" if Path(path).name.startswith("best") else "checkpoint"
    return lm, (f"{kind} {path} (step {lm.meta.get('step', '?')}"
                + (f", validation loss {val:.4f} nats/char)" if isinstance(val, (int, float)) else ")"))


def _stream(lm, prime, length, temperature, top_k, seed) -> None:
    from rnnkit.tasks.text import generate

    out = sys.stdout
    out.write(prime)

    def emit(chars):
        out.write(chars[0])
        out.flush()

    generate(lm, prime=prime, length=length, temperature=temperature, top_k=top_k, seed=seed, on_text=emit)


def _read_prime_file(path) -> str:
    from rnnkit.data.text import read_text_file

    return read_text_file(path)


def _unknown_summary(unknown: dict[str, int]) -> str:
    """``3 character(s) the model never saw in training: '`' x2, '$' x1`` (most frequent first)."""
    shown = ", ".join(f"{c!r} x{n}" for c, n in list(unknown.items())[:20]) + (" ..." if len(unknown) > 20 else "")
    return f"{sum(unknown.values())} character(s) the model never saw in training: {shown}"


def run_generate(args) -> int:
    from rnnkit.tasks import text

    if args.prime and args.prime_file:
        raise UserError("give --prime or --prime-file, not both")
    prime = _read_prime_file(args.prime_file) if args.prime_file else args.prime
    lm, which = _load(args.run, args.checkpoint)
    if args.strict:
        lm.vocab.encode(prime, what="prime text")  # name unknown characters before anything is printed
    else:
        prime, unknown = lm.vocab.drop_unknown(prime)
        if unknown:
            print(f"warning: dropped from the prime {_unknown_summary(unknown)}", file=sys.stderr)
    print(f"using {which}", file=sys.stderr)  # stdout carries only the generated text
    if args.num_samples == 1:
        _stream(lm, prime, args.length, args.temperature, args.top_k, args.seed)
        sys.stdout.write("\n")
        return 0
    samples = text.generate(lm, prime=prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
                            seed=args.seed, num_samples=args.num_samples)
    for i, s in enumerate(samples, 1):
        print(f"--- sample {i} ---")
        print(prime + s)
    return 0


def run_evaluate(args) -> int:
    from rnnkit.data.text import read_texts
    from rnnkit.tasks import text

    if not args.files and args.score is None and not args.spelling:
        raise UserError("give a FILE to evaluate on, --score STRING or --spelling")
    lm, which = _load(args.run, args.checkpoint)
    print(f"using {which}")
    if args.files:
        corpus, sources = read_texts(args.files, errors="replace" if args.replace_bad_bytes else "strict")
        m = text.evaluate(lm, corpus, strict=args.strict)
        print(f"{', '.join(sources)}: {m['chars']:,} characters predicted")
        if m["skipped"]:
            print(f"skipped (not scored, not fed to the model; --strict refuses them) {_unknown_summary(m['unknown'])}")
        print(f"loss {m['loss']:.4f} nats/char | {m['bits_per_char']:.4f} bits/char | perplexity {m['perplexity']:.3f}")
    if args.score is not None:
        s = text.score(lm, args.score, strict=args.strict)
        if s["skipped"]:
            print(f"skipped in --score {_unknown_summary(s['unknown'])}")
        print(f"log-probability of {args.score!r}: {s['logprob']:.4f} nats ({-s['bits']:.3f} bits), "
              f"{s['chars']} characters, {s['logprob'] / s['chars']:.4f} nats/char")
    if args.spelling:
        from rnnkit.tasks.text_spelling import format_spelling

        report = text.spelling(lm, temperatures=args.temperatures, chars=args.spelling_chars)
        print("\n".join(format_spelling(report)))
    return 0
