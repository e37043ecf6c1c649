"""Baselines of sequence classification on the UCR/UEA archive files: accuracy and seconds of each.

    python benchmarks/classify_baselines.py [../shared/data/ucr] [--only PLAID]

For each NAME_TRAIN.ts / NAME_TEST.ts pair: majority class, 1-NN Euclidean, 1-NN DTW with the full window and
with the window learned by leave-one-out on the training data (rnnkit.tasks.classify_baselines), on the
official split, values as stored. One line per dataset and baseline.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rnnkit.data.tsfile import read_ts  # noqa: E402
from rnnkit.tasks.classify_baselines import baseline_report  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(REPO.parent / "shared" / "data" / "ucr"))
    ap.add_argument("--only", nargs="*", default=None, help="dataset names to run (default: all)")
    args = ap.parse_args(argv)
    folder = Path(args.folder)
    names = sorted(p.name[: -len("_TRAIN.ts")] for p in folder.glob("*_TRAIN.ts"))
    print(f"# {os.cpu_count()} cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    for name in names:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        Xtr, ytr = read_ts(folder / f"{name}_TRAIN.ts")
        Xte, yte = read_ts(folder / f"{name}_TEST.ts")
        read_s = time.perf_counter() - t0
        rep = baseline_report(Xtr, ytr, Xte, yte)
        print(f"{name}: {len(Xtr)} train, {len(Xte)} test, read in {read_s:.2f}s", flush=True)
        for key in ("majority", "1nn_euclidean", "1nn_dtw_full", "1nn_dtw_learned"):
            r = rep[key]
            extra = (f"  window {r['window']:.2f} (radius {r['radius']}, LOO acc {r['loo_accuracy']:.4f})"
                     if "window" in r else "")
            print(f"  {key:16s} acc {r['accuracy']:.4f}  {r['seconds']:8.2f}s{extra}", flush=True)


if __name__ == "__main__":
    main()
