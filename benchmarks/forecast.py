"""Forecast quality: rnnkit's default forecaster against naive, seasonal naive and the window MLP.

Real data: airline passengers (monthly, last 12 months held out, season 12) and yearly sunspots (last 20
years held out, ~11-year cycle), averaged over seeds with the spread. Generated data: series with trend,
several seasonalities, level shifts, multiplicative growth, a noisy cycle and a random walk (test span of
three horizons each), to check that the defaults generalise beyond the two files. MASE is scaled by the in-sample seasonal-naive error.

    OPENBLAS_NUM_THREADS=1 python benchmarks/forecast.py [--seeds 3] [--cell gru] [--no-synthetic]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.data.series import load_csv
from rnnkit.tasks.forecast import Forecaster
from rnnkit.tasks.forecast_eval import evaluate

KEYS = ("model", "naive", "seasonal_naive", "window_mlp")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def synthetic(kind: str, seed: int):
    """(y, season, horizon) of one generated series; the season is None where none should be assumed."""
    rng = np.random.default_rng(10_000 + seed)
    if kind == "trend+season":
        t = np.arange(240)
        y = 50 + 0.3 * t + 10 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)) + rng.normal(0, 2, t.size)
        return y, 12, 12
    if kind == "two seasons":
        t = np.arange(420)
        y = 20 + 5 * np.sin(2 * np.pi * t / 7) + 8 * np.sin(2 * np.pi * t / 30.5 + 1) + rng.normal(0, 1.5, t.size)
        return y, 7, 14
    if kind == "level shifts":
        t = np.arange(300)
        shifts = np.cumsum(np.where(rng.random(t.size) < 0.02, rng.normal(0, 15, t.size), 0.0))
        return 100 + shifts + 6 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.5, t.size), 24, 24
    if kind == "multiplicative":
        t = np.arange(180)
        y = 30 * np.exp(0.012 * t) * (1 + 0.25 * np.sin(2 * np.pi * t / 12)) * np.exp(rng.normal(0, 0.03, t.size))
        return y, 12, 12
    if kind == "noisy cycle":
        y = np.zeros(300)
        y[:2] = rng.normal(size=2)
        for i in range(2, y.size):
            y[i] = 1.6 * y[i - 1] - 0.9 * y[i - 2] + rng.normal()
        return 50 + 5 * y, None, 10
    if kind == "random walk":
        return 100 + np.cumsum(rng.normal(0, 1, 250)), None, 10
    raise KeyError(kind)


SYNTHETIC = ("trend+season", "two seasons", "level shifts", "multiplicative", "noisy cycle", "random walk")


def run_one(y, horizon, season, seed, config, test_size=None):
    t0 = time.perf_counter()
    model = Forecaster(horizon=horizon, season=season, seed=seed, test_size=test_size, **config).fit(y)
    seconds = time.perf_counter() - t0
    rep = evaluate(model, warn=False)
    return rep["metrics"], seconds, model


def table(name, runs, out):
    """Rows: forecasters; columns: MASE mean ± std over seeds, MAE, sMAPE, coverage."""
    print(f"\n{name}", file=out)
    print(f"{'forecaster':<16}{'MASE':>8}{'± std':>8}{'MAE':>10}{'sMAPE%':>9}{'cover':>7}", file=out)
    for k in KEYS:
        mase = np.array([r[0][k]["mase"] for r in runs])
        mae = np.mean([r[0][k]["mae"] for r in runs])
        smape = np.mean([r[0][k]["smape"] for r in runs])
        cov = f"{np.mean([r[0][k]['coverage'] for r in runs]):7.2f}" if k == "model" else ""
        print(f"{k:<16}{mase.mean():8.3f}{mase.std():8.3f}{mae:10.3f}{smape:9.2f}{cov}", file=out)
    secs = np.mean([r[1] for r in runs])
    m = runs[0][2]
    print(f"(lookback {m.lookback_}, season {m.season_}, log {m.log_}, {secs:.1f}s per fit)", file=out)
    return np.mean([r[0]["model"]["mase"] for r in runs]), np.mean([r[0]["seasonal_naive"]["mase"] for r in runs])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cell", help="override the default cell")
    ap.add_argument("--no-synthetic", action="store_true")
    args = ap.parse_args(argv)
    out = sys.stdout
    config = {"cell": args.cell} if args.cell else {}
    seeds = range(args.seeds)
    d = Path(args.data_dir)
    cfg = Forecaster(horizon=1, **config).config
    print(f"rnnkit forecast benchmark: default forecaster = {cfg.cell} (hidden {cfg.hidden_size}, "
          f"{cfg.strategy}, ensemble {cfg.ensemble}); seeds {list(seeds)}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}", file=out)
    verdicts = []
    real = [("airline.csv (monthly, last 12 held out, season 12)", "airline.csv", "passengers", 12, 12),
            ("sunspots.csv (yearly, last 20 held out, season 11)", "sunspots.csv", "sunspots", 20, 11)]
    for title, fname, target, horizon, season in real:
        (s,) = load_csv(d / fname, target)
        runs = [run_one(s, horizon, season, seed, config) for seed in seeds]
        m, sn = table(title, runs, out)
        verdicts.append((fname, m, sn))
    if not args.no_synthetic:
        print("\nGenerated series (season given where the generator has one, else detected; test span = 3 "
              "horizons, so 3 forecast origins):", file=out)
        print(f"{'series':<16}{'model':>8}{'± std':>8}{'naive':>8}{'s.naive':>8}{'mlp':>8}{'cover':>7}"
              f"{'season':>7}{'lost':>6}", file=out)
        for kind in SYNTHETIC:
            runs = []
            for seed in seeds:
                y, season, horizon = synthetic(kind, seed)
                runs.append(run_one(y, horizon, season, seed, config, test_size=3 * horizon))
            mase = {k: np.array([r[0][k]["mase"] for r in runs]) for k in KEYS}
            cov = np.mean([r[0]["model"]["coverage"] for r in runs])
            print(f"{kind:<16}{mase['model'].mean():8.3f}{mase['model'].std():8.3f}{mase['naive'].mean():8.3f}"
                  f"{mase['seasonal_naive'].mean():8.3f}{mase['window_mlp'].mean():8.3f}{cov:7.2f}"
                  f"{runs[0][2].season_:7d}{int(np.sum(mase['model'] >= mase['seasonal_naive'])):>4d}/{len(runs)}",
                  file=out)
    print("(lost: seeds where the model did not beat seasonal naive; the library warns in that case)", file=out)
    print("", file=out)
    ok = True
    for fname, m, sn in verdicts:
        beat = m < sn
        ok &= beat
        print(f"{fname}: model MASE {m:.3f} vs seasonal naive {sn:.3f} -> {'beats' if beat else 'DOES NOT beat'}",
              file=out)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
