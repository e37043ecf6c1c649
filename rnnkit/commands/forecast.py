"""``rnnkit forecast train|predict|backtest``: time-series forecasting from a CSV file, always scored
against the naive, seasonal-naive and window-MLP baselines on the same split.

train scores the model on the held-out test span, then refits the same settings on all the data (train +
validation + test; model_refit.safetensors) so that predict forecasts the future from a model that has seen
every point; --no-refit keeps the evaluated model (model.safetensors). With --time, forecasts are dated."""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.commands import forecast_run as R
from rnnkit.commands import options as O
from rnnkit.commands.interrupt import GracefulStop, guarded, stop_callback
from rnnkit.errors import UserError

MODEL_FILE = "model.safetensors"


def _data_args(p, with_horizon=True):
    p.add_argument("data", help="CSV file with a header row")
    p.add_argument("--target", required=True, help="column to forecast")
    if with_horizon:
        p.add_argument("--horizon", type=O.int_range(1, 10**6), required=True, help="steps ahead to forecast")
    p.add_argument("--time", help="time column: its frequency is inferred and forecasts are dated (rows must be "
                   "in time order; default: none, forecasts are numbered by step)")
    p.add_argument("--covariates", nargs="+", default=[], metavar="COL",
                   help="past covariates: observed up to the forecast origin (direct strategy only; default: none)")
    p.add_argument("--future-covariates", nargs="+", default=[], metavar="COL",
                   help="covariates known ahead (calendar features); predict needs them via --future (default: none)")
    p.add_argument("--series-col", help="column naming the series: several series, one global model "
                   "(default: one series)")
    p.add_argument("--fill", choices=["interpolate", "ffill"],
                   help="fill empty/NaN cells instead of failing (default: refuse them)")


def _model_args(p):
    p.add_argument("--lookback", type=O.int_range(1, 10**6), help="input window length (default: from the season)")
    p.add_argument("--cell", default="gru", choices=["lstm", "gru", "elman", "jordan", "mlp"],
                   help="recurrent cell, or mlp for a window MLP (default gru)")
    p.add_argument("--strategy", default="direct", choices=["direct", "recursive"],
                   help="direct: all horizons at once; recursive: one step fed back (default direct)")
    p.add_argument("--hidden-size", type=O.int_range(1, 1 << 16), default=32, help="hidden units (default 32)")
    p.add_argument("--num-layers", type=O.int_range(1, 64), help="stacked recurrent layers (recurrent cells only; default 1)")
    p.add_argument("--highway", type=O.int_range(0, 10**6), help="lags in the linear highway to the output, 0 = off "
                   "(default: one season + 1)")
    p.add_argument("--season", type=O.int_range(1, 10**6), help="seasonal period (default: detected on the training span)")
    p.add_argument("--transform", default="auto", choices=["auto", "none", "log"],
                   help="log: model the log of a positive series; auto: log when the training span grows "
                        "multiplicatively (default auto)")
    p.add_argument("--val", type=O.int_range(0, 10**8), help="validation points at the end of each series (default: horizon)")
    p.add_argument("--test", type=O.int_range(0, 10**8), help="test points at the end of each series (default: horizon)")
    p.add_argument("--epochs", type=O.int_range(1, 10**6), default=200, help="training epochs at most (default 200)")
    p.add_argument("--patience", type=O.int_range(1, 10**6), default=40,
                   help="early-stopping patience in epochs (default 40)")
    p.add_argument("--lr", type=O.learning_rate, default=5e-3, help="Adam learning rate (default 5e-3)")
    p.add_argument("--batch-size", type=O.int_range(1, 1 << 20), default=32, help="windows per batch (default 32)")
    p.add_argument("--interval", type=O.probability, default=0.9,
                   help="prediction interval probability (default 0.9)")
    p.add_argument("--ensemble", type=O.int_range(1, 1000), default=1,
                   help="networks averaged (different seeds; default 1)")
    p.add_argument("--seed", type=O.seed_int, default=0, help="random seed (default 0)")
    O.add_worker_options(p, "each batch's windows")
    p.add_argument("--out", type=O.folder_path, help="run folder (default runs/forecast-<time>)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("forecast", help="forecast time series (train / predict / backtest)",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    tr = sub.add_parser("train", help="fit a forecaster, score it on the test span beside the baselines")
    _data_args(tr)
    _model_args(tr)
    tr.add_argument("--no-plot", action="store_true", help="skip the PNG")
    tr.add_argument("--no-refit", action="store_true",
                    help="do not refit on all the data after evaluation; forecast with the evaluated model "
                         "(default: refit, saved as model_refit.safetensors)")
    tr.set_defaults(func=run_train)
    pr = sub.add_parser("predict", help="forecast past the end of the data with a trained run")
    pr.add_argument("run", help="run folder written by 'rnnkit forecast train'")
    pr.add_argument("--data", help="CSV with newer data (same columns); default: the training data's tail")
    pr.add_argument("--future", help="CSV with the future covariates for the next horizon steps (default: none)")
    pr.add_argument("--out", type=O.file_path, help="output CSV (default RUN/forecast.csv)")
    pr.add_argument("--no-refit", action="store_true",
                    help="forecast with the evaluated model, not the one refit on all the data (default: "
                         "the refit model when the run has one)")
    pr.set_defaults(func=run_predict)
    bt = sub.add_parser("backtest", help="rolling-origin evaluation: refit and score at several origins")
    _data_args(bt)
    _model_args(bt)
    bt.add_argument("--folds", type=O.int_range(1, 1000), default=3, help="number of forecast origins (default 3)")
    bt.add_argument("--step", type=O.int_range(1, 10**8), help="distance between origins (default: horizon)")
    bt.add_argument("--no-plot", action="store_true", help="skip backtest.png")
    bt.set_defaults(func=run_backtest)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _config(args):
    from rnnkit.tasks.forecast import ForecastConfig

    if args.cell == "mlp" and args.num_layers is not None:
        raise UserError("--num-layers applies to recurrent cells; the window MLP (--cell mlp) would ignore "
                        "it, so drop --num-layers or choose --cell lstm|gru|elman|jordan")
    if args.strategy == "recursive" and args.covariates:
        raise UserError("--strategy recursive feeds its forecasts back and would have to ignore the past "
                        f"covariates {', '.join(args.covariates)}; use --strategy direct, or pass known-ahead "
                        "columns with --future-covariates")
    cfg = ForecastConfig(
        horizon=args.horizon, lookback=args.lookback, cell=args.cell, strategy=args.strategy,
        hidden_size=args.hidden_size, num_layers=args.num_layers or 1, season=args.season,
        transform=args.transform, val_size=args.val, test_size=args.test, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, interval=args.interval,
        ensemble=args.ensemble, seed=args.seed, highway="auto" if args.highway is None else args.highway,
        workers=args.workers, ray_address=args.ray_address,
        threads=getattr(args, "threads", None))  # the global ``rnnkit --threads N``
    cfg.check()
    return cfg


def _load_opts(args) -> dict:
    return {"target": args.target, "time": args.time, "covariates": list(args.covariates),
            "future_covariates": list(args.future_covariates), "series_col": args.series_col,
            "fill": args.fill}


def _run_dir(args, kind: str) -> Path:
    out = Path(args.out) if args.out else Path("runs") / f"forecast-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _print_report(rep):
    from rnnkit.tasks.forecast_metrics import format_table

    print(format_table(rep["metrics"]))
    for w in rep["warnings"]:
        print(f"warning: {w}", file=sys.stderr)


@guarded  # SIGTERM like Ctrl-C; the run folder locked while written
def run_train(args, locks) -> int:
    from rnnkit.data.series import load_csv
    from rnnkit.io import write_json
    from rnnkit.tasks.forecast import Forecaster
    from rnnkit.tasks.forecast_eval import evaluate, window_mlp_for

    cfg = _config(args)
    opts = _load_opts(args)
    series = load_csv(args.data, **opts)
    out = locks.hold(_run_dir(args, "train"))
    t0 = time.perf_counter()
    with GracefulStop(notice="stopping after this step and saving the model trained so far (again to abort)") \
            as stop:
        model, notes = R.quietly(Forecaster(config=cfg).fit, series, time=args.time,  # time: the column's name
                                 callback=stop_callback(stop))
    seconds = time.perf_counter() - t0
    if stop.requested:  # keep what was trained (predict works on it); no evaluation, refit or forecast
        model.save(out / MODEL_FILE)
        write_json(out / "config.json", {"data": os.path.abspath(args.data), "load": opts,
                                         "forecast": dataclasses.asdict(cfg), "season": model.season_,
                                         "lookback": model.lookback_, "log": model.log_, "refit": False})
        return stop.report("forecast train", f"the model trained so far is saved in {out} (not evaluated, "
                                             "no refit)")
    R.warn(notes)
    mlp = window_mlp_for(model)
    rep = evaluate(model, mlp=mlp, warn=False)
    model.save(out / MODEL_FILE)
    final = model
    if not args.no_refit:  # the forecast comes from the same settings refitted on all the data
        final = model.refit()
        final.save(out / R.REFIT_FILE)
    kind, which = R.describe(final)
    write_json(out / "config.json", {"data": os.path.abspath(args.data), "load": opts,
                                     "forecast": dataclasses.asdict(cfg), "season": model.season_,
                                     "lookback": model.lookback_, "log": model.log_,
                                     "refit": not args.no_refit})
    metrics = {k: {m: v for m, v in d.items() if m != "n"} for k, d in rep["metrics"].items()}
    write_json(out / "metrics.json", {**metrics, "echo_ratio": rep["echo"], "warnings": rep["warnings"],
                                      "season": model.season_, "lookback": model.lookback_,
                                      "train_seconds": seconds, "best_epochs": model.best_epochs_,
                                      "forecast_model": kind})
    _write_history(out / "metrics.csv", model.history_)
    fut = final.predict() if final.future_size_ == 0 else {}
    R.write_forecast_csv(out / "forecast.csv", final, fut, kind)
    if not args.no_plot:
        R.plot_run(out / "forecast.png", model, rep, fut, final)
    n = len(series)
    print(f"forecast: {cfg.cell} ({cfg.strategy}), {n} series, lookback {model.lookback_}, horizon "
          f"{cfg.horizon}, season {model.season_}{', log' if model.log_ else ''}; trained in {seconds:.1f}s")
    _print_report(rep)
    if fut:
        print(f"forecast.csv: the next {cfg.horizon} steps{R.span_text(final)} from {which}")
    print(f"run folder: {out}")
    return 0


def _write_history(path, histories):
    rows = [(k, r["step"], r.get("loss", ""), r.get("val_mse", "")) for k, h in enumerate(histories)
            for r in h if r["kind"] in ("train", "eval")]
    import io as _io

    from rnnkit.io import atomic_write_text

    buf = _io.StringIO()  # written atomically: a full disk or Ctrl-C leaves no half file and no temporary
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["net", "step", "train_loss", "val_mse"])
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def run_predict(args) -> int:
    from rnnkit.data.series import load_csv
    from rnnkit.tasks.forecast import Forecaster

    run = Path(args.run)
    if not (run / MODEL_FILE).is_file() or not (run / "config.json").is_file():
        raise UserError(f"{run} is not a forecast run folder (no {MODEL_FILE} and config.json); "
                        "give the --out folder of 'rnnkit forecast train'")
    from rnnkit.tasks.forecast_checks import run_config

    conf = run_config(run / "config.json")  # strict JSON, the "load" options typed (UserError otherwise)
    refit = (run / R.REFIT_FILE).is_file()
    model = Forecaster.load(run / (R.REFIT_FILE if refit and not args.no_refit else MODEL_FILE))
    opts = dict(conf["load"])
    data = None
    if args.data:
        data = load_csv(args.data, **opts)
    future = None
    if args.future:
        names = opts["future_covariates"]
        if not names:
            raise UserError("this model has no future covariates; drop --future")
        fseries = load_csv(args.future, target=names[0], covariates=names[1:],
                           series_col=opts["series_col"], fill=opts["fill"])
        future = {s.name: np.column_stack([s.y, s.past]) for s in fseries}
    fc = model.predict(data, future=future)
    out = Path(args.out) if args.out else run / "forecast.csv"
    kind, which = R.describe(model)
    why = " (--no-refit)" if args.no_refit else "" if refit else " (this run has no refit model: trained with --no-refit)"
    print(f"forecast from {which}{why}")
    R.warn(model.time_notes_)
    R.print_forecast(model, fc, data)
    R.write_forecast_csv(out, model, fc, kind, data)
    print(f"wrote {out}")
    return 0


def run_backtest(args) -> int:
    from rnnkit.data.series import load_csv
    from rnnkit.io import write_json
    from rnnkit.tasks.forecast import backtest
    from rnnkit.tasks.forecast_metrics import format_table

    cfg = _config(args)
    series = load_csv(args.data, **_load_opts(args))
    out = _run_dir(args, "backtest")

    def show(k, rep):
        m = rep["metrics"]
        print(f"fold {k + 1}/{args.folds} (origin {rep['origin']}): model MASE {m['model']['mase']:.3f}, "
              f"seasonal naive {m['seasonal_naive']['mase']:.3f}, naive {m['naive']['mase']:.3f}, "
              f"window MLP {m['window_mlp']['mase']:.3f}", flush=True)

    res, notes = R.quietly(backtest, series, cfg, folds=args.folds, step=args.step, callback=show, warn=False)
    R.warn(notes)
    print(f"mean over {args.folds} folds:")
    print(format_table(res["mean"]))
    R.warn(res["warnings"])
    folds = [{"origin": r["origin"], "origin_time": r["origin_time"],
              **{k: {m: v for m, v in d.items() if m != "n"} for k, d in r["metrics"].items()}}
             for r in res["folds"]]
    write_json(out / "backtest.json", {"mean": res["mean"], "folds": folds, "warnings": res["warnings"]})
    R.write_backtest_csv(out / "backtest.csv", res)
    if not args.no_plot:
        R.plot_backtest_run(out / "backtest.png", series, res, cfg, args.time)
    print(f"run folder: {out} (backtest.csv, backtest.png)")
    return 0
