"""``rnnkit classify train|predict|evaluate``: sequence classification from UCR/UEA ``.ts`` or CSV files, always
scored beside the majority-class, 1-NN Euclidean and 1-NN DTW baselines on the same split."""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.commands import options as O
from rnnkit.commands.interrupt import GracefulStop, guarded
from rnnkit.errors import UserError

MODEL_FILE = "model.safetensors"


def _file_args(p):
    p.add_argument("--fill", choices=["interpolate", "zero", "ffill"],
                   help="fill missing values (NaN or ?) instead of refusing the file (default: refuse them)")
    p.add_argument("--label-col", help="CSV: the label column (default 'label', or the training run's)")
    p.add_argument("--case-col", help="CSV in long format: the case id column, with --time-col (default: wide format)")
    p.add_argument("--time-col", help="CSV in long format: the time column (default: wide format)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="classify sequences (train / predict / evaluate)",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    tr = sub.add_parser("train", help="fit a classifier; with --test, score it beside the baselines")
    tr.add_argument("train_file", help="training data: a .ts file (UCR/UEA) or a .csv file")
    tr.add_argument("--test", help="test file, scored once at the end, never used for training or model choice "
                                    "(default: none)")
    tr.add_argument("--out", type=O.folder_path, help="run folder (default runs/classify-<time>)")
    tr.add_argument("--model", default="rocket", choices=["rocket", "auto", "combined", "tdnn", "rnn"],
                    help="rocket (default): a random time-delay layer (MiniRocket's kernels) and a ridge readout, no "
                         "gradient training, seconds to fit; trained networks: combined (a TDNN branch beside a "
                         "recurrent branch), tdnn, rnn, or auto: combined or rnn, whichever validates better")
    tr.add_argument("--cell", default="gru", choices=["gru", "lstm", "elman", "jordan"],
                    help="recurrent cell of the recurrent branch (default gru)")
    tr.add_argument("--hidden-size", type=O.int_range(1, 1 << 16), default=64,
                    help="units per recurrent layer (default 64)")
    tr.add_argument("--num-layers", type=O.int_range(1, 64), default=1, help="stacked recurrent layers (default 1)")
    tr.add_argument("--bidirectional", action="store_true", help="read each case in both directions")
    tr.add_argument("--pool", default="mean", choices=["mean", "max", "last", "attention"],
                    help="pooling of the recurrent branch over time (default mean)")
    tr.add_argument("--stride", type=O.int_range(1, 10**6),
                    help="downsampling of the first TDNN block and the recurrent front-end (default: longest case "
                         "/ 300, rounded up)")
    tr.add_argument("--normalize", default="auto", choices=["auto", "series+scale", "global", "series", "none"],
                    help="global: per-channel mean/std of the training data; series+scale: each series "
                         "z-normalised, with its level and scale as extra channels; series: z-normalised only; "
                         "auto (default): global or series+scale, whichever validates better")
    tr.add_argument("--epochs", type=O.int_range(1, 10**6), default=500, help="training epochs at most (default 500)")
    tr.add_argument("--patience", type=O.int_range(1, 10**6), default=60,
                    help="early stopping: epochs without a better validation loss (default 60)")
    tr.add_argument("--batch-size", type=O.int_range(1, 1 << 20), default=16, help="cases per batch (default 16)")
    tr.add_argument("--lr", type=O.learning_rate, default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--val-size", type=O.fraction, default=0.2,
                    help="fraction of each class held out for validation (default 0.2)")
    tr.add_argument("--ensemble", type=O.int_range(1, 1000), default=5,
                    help="networks averaged, different seeds and validation splits (default 5)")
    tr.add_argument("--minutes", type=O.minutes, default=9.0, help="time budget for the whole fit (default 9)")
    tr.add_argument("--seed", type=O.seed_int, default=0, help="random seed (default 0)")
    O.add_worker_options(tr, "each batch's cases")
    tr.add_argument("--no-baselines", action="store_true", help="skip the baselines (DTW takes a while on "
                                                                 "large sets)")
    tr.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    _file_args(tr)
    tr.set_defaults(func=run_train)
    pr = sub.add_parser("predict", help="labels and class probabilities for a file, to CSV")
    pr.add_argument("run", help="run folder written by 'rnnkit classify train'")
    pr.add_argument("file", help=".ts or .csv file (labels optional)")
    pr.add_argument("--out", type=O.file_path, help="output CSV (default RUN/predictions.csv)")
    _file_args(pr)
    pr.set_defaults(func=run_predict)
    ev = sub.add_parser("evaluate", help="accuracy, balanced accuracy, macro F1, per-class table, baselines")
    ev.add_argument("run", help="run folder written by 'rnnkit classify train'")
    ev.add_argument("test_file", help="labelled .ts or .csv file")
    ev.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    _file_args(ev)
    ev.set_defaults(func=run_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _read_opts(args) -> dict:
    """The reading options given on the command line (only those given: a run's saved ones fill the rest)."""
    opts = {"fill": args.fill} if args.fill else {}
    if args.case_col or args.time_col:
        if not (args.case_col and args.time_col):
            raise UserError("long-format CSV needs both --case-col and --time-col")
        opts.update(case_col=args.case_col, time_col=args.time_col)
    return opts


def _read(path, opts: dict, labelled: bool = True):
    from rnnkit.data.tsfile import read_cases

    kw = dict(opts)
    if Path(path).suffix.lower() == ".csv":
        kw["label_col"] = opts.get("label_col", "label")
        if not labelled and "case_col" not in kw and kw["label_col"] not in _csv_header(path):
            kw["label_col"] = None  # no label column: every column is a time point
    else:
        kw.pop("label_col", None)
    X, y = read_cases(path, **kw)
    if labelled and y is None:
        raise UserError(f"{path}: the file has no class labels; training and evaluation need labelled cases "
                        "(@classLabel true in a .ts header, or a label column in a CSV)")
    return X, y


def _csv_header(path) -> list[str]:
    """The first row of a CSV file ([] when it cannot be read; the reader then says why)."""
    if not Path(path).is_file():  # a FIFO would block here; the reader then refuses it in one line
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _run_dir(args) -> Path:
    out = Path(args.out) if args.out else Path("runs") / f"classify-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_run(run) -> tuple:
    from rnnkit.tasks.classify import SequenceClassifier

    run = Path(run)
    if not run.is_dir() or not (run / MODEL_FILE).is_file() or not (run / "config.json").is_file():
        raise UserError(f"{run} is not a classify run folder (no {MODEL_FILE} and config.json); give the --out "
                        "folder of 'rnnkit classify train'")
    try:
        from rnnkit.io import read_json_file

        conf = read_json_file(run / "config.json")  # regular file, strict JSON object (UserError otherwise)
        read = conf.get("read", {})
        if not isinstance(read, dict) or not set(read) <= {"fill", "label_col", "case_col", "time_col"} or any(
                v is not None and not isinstance(v, str) for v in read.values()):
            raise ValueError("'read' must map fill/label_col/case_col/time_col to strings")
        if not isinstance(conf.get("train_file"), (str, type(None))):
            raise ValueError("'train_file' must be a path")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{run / 'config.json'} is damaged ({exc}); retrain into a new folder") from None
    return SequenceClassifier.load(run / MODEL_FILE), conf


def _metrics_rows(model) -> list[dict]:
    rows = []
    for m, history in enumerate(model.histories_):
        per_epoch = {}
        for r in history:
            if r["kind"] == "train":
                per_epoch.setdefault(r["step"], {})["train_loss"] = r["loss"]
            elif r["kind"] == "eval":
                per_epoch.setdefault(r["step"], {}).update(val_loss=r["val_loss"], val_acc=r["val_acc"])
        for e, step in enumerate(sorted(per_epoch), start=1):
            rows.append({"member": m, "epoch": e, "step": step, **per_epoch[step]})
    return rows


def _write_csv(path, header, rows):
    import io as _io

    from rnnkit.io import atomic_write_text

    buf = _io.StringIO()  # written atomically: a full disk or Ctrl-C leaves no half file and no temporary
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _evaluate_and_print(model, X_test, y_test, X_train, y_train, baselines: bool, out: Path | None, plot: bool):
    from rnnkit.tasks.classify_eval import evaluate
    from rnnkit.tasks.classify_metrics import format_report

    rep = evaluate(model, X_test, y_test, X_train, y_train, baselines=baselines)
    print(format_report(rep, rep.get("baselines")))
    for w in rep["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if out is not None:
        from rnnkit.io import write_json

        write_json(out / "report.json", {k: v for k, v in rep.items()})
        if plot:
            from rnnkit.plots.classify import confusion_matrix

            confusion_matrix(rep["confusion"], rep["labels"], out / "confusion.png",
                             title=f"test accuracy {rep['accuracy']:.3f} ({rep['n']} cases)")
    return rep


def _check_pair(args, X, y, test) -> None:
    """Refuse, before any training, what would only fail later: one class, channel counts that differ."""
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise UserError(f"{args.train_file}: every case has the label {classes[0]!r}, a single class; a classifier "
                        "needs at least two classes in the training file")
    if test is not None and test[0][0].shape[0] != X[0].shape[0]:
        raise UserError(f"{args.test} has {test[0][0].shape[0]} channel(s) but {args.train_file} has "
                        f"{X[0].shape[0]}; train and test files must have the same channels")


def _finish_rocket(args, clf, X, y, test, out: Path, stop) -> int:
    """metrics.csv (one row per random-TDNN member: its ridge penalty and leave-one-out accuracy), the summary,
    and the test report; no learning curves, since nothing is trained by epochs."""
    infos = [m.describe() for m in clf.nets_]
    _write_csv(out / "metrics.csv", ["member", "features", "dilations", "ridge_alpha", "loo_accuracy"],
               [[k, i["n_features"], i["n_dilations"], i["alpha"], i["loo_accuracy"]] for k, i in enumerate(infos)])
    loo = ", ".join(f"{i['loo_accuracy']:.4f}" for i in infos)
    print(f"fitted {len(infos)} random-TDNN member(s) in {clf.fit_seconds_:.1f} s; leave-one-out accuracy on the "
          f"training cases {loo}")
    if stop.requested:
        return stop.report("classify train", f"{len(infos)} member(s) saved in {out}")
    if test is not None:
        _evaluate_and_print(clf, test[0], test[1], X, y, not args.no_baselines, out, not args.no_plot)
    print(f"run folder: {out}")
    return 0


@guarded  # SIGTERM like Ctrl-C; the run folder locked while written
def run_train(args, locks) -> int:
    from rnnkit.io import write_json
    from rnnkit.tasks.classify import SequenceClassifier

    opts = _read_opts(args)
    opts["label_col"] = args.label_col or "label"
    X, y = _read(args.train_file, opts)
    test = _read(args.test, opts) if args.test else None
    clf = SequenceClassifier(model=args.model, cell=args.cell, hidden_size=args.hidden_size,
                             num_layers=args.num_layers, bidirectional=args.bidirectional, pool=args.pool,
                             stride=args.stride, normalize=args.normalize, epochs=args.epochs,
                             patience=args.patience, batch_size=args.batch_size, lr=args.lr, val_size=args.val_size,
                             n_estimators=args.ensemble, max_minutes=args.minutes, random_state=args.seed,
                             workers=args.workers, ray_address=args.ray_address,
                             threads=getattr(args, "threads", None))  # the global ``rnnkit --threads N``
    clf.config.check()
    _check_pair(args, X, y, test)
    out = locks.hold(_run_dir(args))
    if args.model == "rocket" and (args.workers > 1 or args.ray_address):
        print("note: --workers and --ray-address spread trained networks' batches (--model auto, combined, tdnn, "
              "rnn); the rocket model fits in seconds in this process", file=sys.stderr)
    print(f"classify: {len(X)} training cases, {len(set(y.tolist()))} classes, {X[0].shape[0]} channel(s), "
          f"lengths {min(c.shape[1] for c in X)}-{max(c.shape[1] for c in X)}", flush=True)
    with GracefulStop(notice="stopping after this step; the networks trained so far are saved (again to abort)") \
            as stop:
        clf.fit(X, y, progress=sys.stderr.isatty(), stop=stop,
                log=(lambda line: print(line, flush=True)) if args.model == "rocket" else None)
    clf.save(out / MODEL_FILE)
    write_json(out / "config.json", {"train_file": os.path.abspath(args.train_file), "read": opts,
                                     "classify": dataclasses.asdict(clf.config), "stride": clf.stride_,
                                     "classes": clf.state()[1]["classes_"]})
    if clf.model_ == "rocket":
        return _finish_rocket(args, clf, X, y, test, out, stop)
    rows = _metrics_rows(clf)
    _write_csv(out / "metrics.csv", ["member", "epoch", "step", "train_loss", "val_loss", "val_acc"],
               [[r["member"], r["epoch"], r["step"], r.get("train_loss", ""), r.get("val_loss", ""),
                 r.get("val_acc", "")] for r in rows])
    if not args.no_plot:
        from rnnkit.plots.classify import learning_curves

        learning_curves(rows, out / "learning_curves.png", title=f"{clf.model_} classifier")
    if clf.choice_scores_:
        print("chose " + f"{clf.model_}/{clf.normalize_} by validation loss (" + ", ".join(
            f"{c} {v:.4f}" for c, v in clf.choice_scores_.items()) + ")")
    print(f"trained {len(clf.nets_)} network(s) in {clf.fit_seconds_:.1f} s; best epochs "
          f"{', '.join(f'{e:.0f}' for e in clf.best_epochs_)}")
    if stop.requested:  # saved above; not evaluated after an interrupt
        return stop.report("classify train", f"{len(clf.nets_)} network(s) saved in {out}")
    if test is not None:
        _evaluate_and_print(clf, test[0], test[1], X, y, not args.no_baselines, out, not args.no_plot)
    print(f"run folder: {out}")
    return 0


def _run_options(args) -> tuple:
    """(model, config, reading options): the run's saved options, overridden by those given now."""
    model, conf = _load_run(args.run)
    opts = {**dict(conf.get("read") or {}), **_read_opts(args)}
    if args.label_col:
        opts["label_col"] = args.label_col
    return model, conf, opts


def run_predict(args) -> int:
    model, _, opts = _run_options(args)
    X, y = _read(args.file, opts, labelled=False)
    proba = model.predict_proba(X)
    pred = model.classes_[proba.argmax(axis=1)]
    out = Path(args.out) if args.out else Path(args.run) / "predictions.csv"
    header = ["case", "predicted"] + (["label"] if y is not None else []) + [f"p_{c}" for c in model.classes_]
    rows = []
    for i in range(len(X)):
        rows.append([i, pred[i]] + ([y[i]] if y is not None else []) + [f"{p:.6g}" for p in proba[i]])
    _write_csv(out, header, rows)
    if y is not None:
        acc = float(np.mean(pred.astype(str) == np.asarray(y).astype(str)))
        print(f"{len(X)} cases, accuracy {acc:.4f}")
    else:
        print(f"{len(X)} cases")
    print(f"wrote {out}")
    return 0


def run_evaluate(args) -> int:
    model, conf, opts = _run_options(args)
    X, y = _read(args.test_file, opts)
    X_train = y_train = None
    if not args.no_baselines:
        train_file = conf.get("train_file")
        if train_file and Path(train_file).is_file():
            X_train, y_train = _read(train_file, opts)
        else:
            print(f"note: the training file {train_file!r} is gone; baselines skipped", file=sys.stderr)
    _evaluate_and_print(model, X, y, X_train, y_train, not args.no_baselines, None, False)
    return 0
