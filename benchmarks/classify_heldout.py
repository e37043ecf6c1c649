"""Held-out check of the Python API: every <Name>_TRAIN.ts / <Name>_TEST.ts pair in a folder, classified by
``SequenceClassifier()`` exactly as the README documents it (defaults, fit on TRAIN, score on TEST once), with
1-NN DTW (full window) and 1-NN Euclidean on the same split, in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/classify_heldout.py [--data DIR]
        [--datasets A,B] [--model auto] [--save benchmarks/results/classify_heldout.txt]

--data defaults to ../shared/data/ucr beside the repository. A file SOURCES.txt in that folder (lines
"<Name> <where the files came from>") is copied into the saved result so that it names its data.
--model passes model=... (e.g. "auto": the trained networks) to time those instead of the default; --seed
passes random_state=... (to see how much one draw of the random kernels matters). Equal-length test sets are
also predicted as one 3-D array (aeon's layout) and must give the same labels as the list of cases.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.data.tsfile import read_ts
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.classify_baselines import nn1_dtw, nn1_euclidean

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ucr"


def pairs(folder: Path, only: list[str] | None) -> list[str]:
    """Names with both a _TRAIN.ts and a _TEST.ts file in ``folder``, sorted (or ``only``, in its order)."""
    names = sorted(p.name[: -len("_TRAIN.ts")] for p in folder.glob("*_TRAIN.ts")
                   if (folder / p.name.replace("_TRAIN.ts", "_TEST.ts")).is_file())
    if only:
        missing = [n for n in only if n not in names]
        if missing:
            raise SystemExit(f"no TRAIN/TEST pair in {folder} for {', '.join(missing)}; found {', '.join(names)}")
        return only
    if not names:
        raise SystemExit(f"no <Name>_TRAIN.ts / <Name>_TEST.ts pairs in {folder}")
    return names


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def run_one(folder: Path, name: str, params: dict) -> dict:
    X, y = read_ts(folder / f"{name}_TRAIN.ts")
    Xt, yt = read_ts(folder / f"{name}_TEST.ts")
    lens = [c.shape[1] for c in X + Xt]
    row = {"n_train": len(X), "n_test": len(Xt), "channels": int(X[0].shape[0]),
           "classes": len(set(y.tolist())), "min_len": int(min(lens)), "max_len": int(max(lens))}
    try:
        clf, secs = timed(SequenceClassifier(**params).fit, X, y)  # as the README documents it
        pred, row["predict_s"] = timed(clf.predict, Xt)
        row["rnnkit"] = float(np.mean(pred == yt))
        row["fit_s"] = secs
        if len({c.shape[1] for c in Xt}) == 1:  # the same test cases as one 3-D array (aeon's equal-length layout)
            row["same_as_3d"] = bool(np.array_equal(clf.predict(np.stack(Xt)), pred))
        row["model"] = f"{clf.model_}/{clf.normalize_} x{len(clf.nets_)}"
    except Exception as e:  # noqa: BLE001  a failure is a result here: record it, go on to the next data set
        row["error"] = f"{type(e).__name__}: {e}"
    pred, row["dtw_s"] = timed(nn1_dtw, X, y, Xt, window=None)
    row["dtw"] = float(np.mean(pred == yt))
    row["ed"] = float(np.mean(nn1_euclidean(X, y, Xt) == yt))
    return row


def table(results: dict) -> list[str]:
    lines = [f"{'data set':<18} {'train/test':>10} {'ch':>3} {'length':>9} {'cls':>4} {'rnnkit':>7} {'fit s':>6} "
             f"{'1-NN DTW':>8} {'1-NN ED':>8}  note"]
    for name, r in results.items():
        length = f"{r['min_len']}" if r["min_len"] == r["max_len"] else f"{r['min_len']}-{r['max_len']}"
        acc = f"{r['rnnkit']:>7.4f} {r['fit_s']:>6.1f}" if "rnnkit" in r else f"{'ERROR':>7} {'':>6}"
        notes = [r["error"]] if "error" in r else []
        if "rnnkit" in r and r["rnnkit"] < max(r["dtw"], r["ed"]):
            notes.append("below " + ("1-NN DTW" if r["dtw"] >= r["ed"] else "1-NN ED"))
        if r.get("same_as_3d") is False:
            notes.append("3-D array input predicts differently from the list")
        note = "; ".join(notes)
        lines.append(f"{name:<18} {r['n_train']:>4}/{r['n_test']:<5} {r['channels']:>3} {length:>9} "
                     f"{r['classes']:>4} {acc} {r['dtw']:>8.4f} {r['ed']:>8.4f}  {note}".rstrip())
    ok = [r for r in results.values() if "rnnkit" in r]
    failed = len(results) - len(ok)
    mean = lambda k, rows: float(np.mean([r[k] for r in rows])) if rows else float("nan")  # noqa: E731
    lines.append(f"{'mean':<18} {'':>10} {'':>3} {'':>9} {'':>4} {mean('rnnkit', ok):>7.4f} "
                 f"{sum(r['fit_s'] for r in ok):>6.1f} {mean('dtw', ok):>8.4f} {mean('ed', ok):>8.4f}  "
                 f"over {len(ok)} data sets; fit s: total"
                 + (f"; {failed} failed (counted as 0 below)" if failed else ""))
    if failed:
        allm = float(np.mean([r.get("rnnkit", 0.0) for r in results.values()]))
        lines.append(f"mean over all {len(results)} with failures as 0: {allm:.4f}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA), help="folder of <Name>_TRAIN.ts / <Name>_TEST.ts pairs")
    ap.add_argument("--datasets", help="comma-separated names (default: every pair in --data)")
    ap.add_argument("--model", help="pass model=... to SequenceClassifier (default: its own default)")
    ap.add_argument("--seed", type=int, help="pass random_state=... (default: its own default)")
    ap.add_argument("--save", help="also write the table here (and a JSON beside it)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from blas_env import FORCING, blas_line

    folder = Path(args.data)
    names = pairs(folder, args.datasets.split(",") if args.datasets else None)
    params = {"model": args.model} if args.model else {}
    if args.seed is not None:
        params["random_state"] = args.seed
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())  # fit seconds depend on what else runs
    head = [f"rnnkit at commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {load}; "
            f"SequenceClassifier({', '.join(f'{k}={v!r}' for k, v in params.items())}).fit(X_train, y_train), "
            "predict(X_test); 1-NN DTW full window, 1-NN Euclidean, raw values as stored", blas_line()]
    print("\n".join(head), flush=True)
    results = {}
    for name in names:
        r = results[name] = run_one(folder, name, params)
        print(f"{name}: rnnkit {r.get('rnnkit', r.get('error'))} ({r.get('model', '')}, "
              f"{r.get('fit_s', float('nan')):.1f} s), DTW {r['dtw']:.4f}, ED {r['ed']:.4f}", flush=True)
    lines = table(results)
    print("\n" + "\n".join(lines))
    if args.save:
        sources = folder / "SOURCES.txt"
        src = [f"data: {ln.strip()}" for ln in (sources.read_text().splitlines() if sources.is_file() else [])
               if ln.split(maxsplit=1)[:1] and ln.split(maxsplit=1)[0] in names]
        unset = not any(v in os.environ for v in FORCING)  # the command as it ran: the variables unset or not
        cmd = ("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " if unset else "") + "python " + " ".join(sys.argv)
        Path(args.save).write_text("\n".join([cmd, *head, *src, "", *lines]) + "\n")
        Path(args.save).with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
