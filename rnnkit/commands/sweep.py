"""``rnnkit sweep text|classify|forecast``: a hyperparameter sweep on Ray Tune (random or grid search, ASHA
early stopping on the validation metric), one run folder per trial, a results table and the best config."""
from __future__ import annotations

import json
import time
from pathlib import Path

from rnnkit.commands import options as O
from rnnkit.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="hyperparameter sweep on Ray Tune (text, classify, forecast)",
        description="Search config fields of a task on Ray Tune: random or grid search, ASHA early stopping on the "
                    "validation metric, one run folder per trial under the sweep folder, results.csv (best first) "
                    "and best_config.json. Needs pip install \"rnnkit[ray]\". Space JSON, e.g. "
                    '{"lr": {"loguniform": [1e-4, 1e-2]}, "hidden_size": {"choice": [64, 128]}, '
                    '"cell": {"grid": ["gru", "lstm"]}, "dropout": 0.1}; kinds: choice, uniform, loguniform, '
                    "randint (inclusive), grid (crossed, the cross repeated --trials times); a plain value is fixed.")
    p.add_argument("task", choices=("text", "classify", "forecast"), help="which task's settings to search")
    p.add_argument("files", nargs="*", metavar="DATA",
                   help="text: UTF-8 files (none: the built-in corpus); classify: one labelled .ts/.csv; "
                        "forecast: one CSV (with --target and --horizon)")
    p.add_argument("--space", metavar="SPACE.json", help="search space (default: the task's default space, "
                                                         "printed by --show-space)")
    p.add_argument("--trials", type=O.int_range(1), default=8, help="trials to run (default 8)")
    p.add_argument("--minutes", type=O.float_range(0, lo_open=True),
                   help="wall-clock budget of the whole sweep; each trial gets its share unless --set gives one "
                        "(default: no limit, each trial its own budget)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="a fixed setting for every trial, e.g. --set steps=300 --set batch_size=16 (repeatable)")
    p.add_argument("--out", help="sweep folder (default runs/sweep-<task>-<date>-<time>)")
    p.add_argument("--resume", metavar="SWEEP",
                   help="continue an interrupted sweep in this folder (default: start a new sweep)")
    p.add_argument("--seed", type=O.int_range(0), default=0, help="seed of the random search (default 0)")
    p.add_argument("--ray-address", metavar="ADDRESS", help="join this Ray cluster (default: a local instance)")
    p.add_argument("--target", help="forecast: the column to forecast (default: none, required for forecast)")
    p.add_argument("--time", help="forecast: the time column (default: none, rows in file order)")
    p.add_argument("--horizon", type=O.int_range(1), help="forecast: steps ahead (default: none, required for "
                                                            "forecast)")
    p.add_argument("--label-col", help="classify, CSV: the label column (default label)")
    p.add_argument("--show-space", action="store_true", help="print the task's default space as JSON and exit")
    p.set_defaults(func=run)


def _fixed(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: write FIELD=VALUE, e.g. --set steps=300")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value  # a bare word: a string
    return out


def run(args) -> int:
    from rnnkit.distributed.sweep_tasks import DEFAULT_SPACES

    if args.show_space:
        print(json.dumps(DEFAULT_SPACES[args.task], indent=2))
        return 0
    from rnnkit.distributed.sweep import run_sweep

    fixed = _fixed(args.set)
    if args.horizon is not None:
        fixed["horizon"] = args.horizon
    data_opts = {k: v for k, v in (("target", args.target), ("time", args.time), ("label_col", args.label_col))
                 if v is not None}
    if args.resume:
        out = Path(args.resume)
    else:
        out = Path(args.out) if args.out else Path("runs") / time.strftime(f"sweep-{args.task}-%Y%m%d-%H%M%S")
    run_sweep(args.task, out, files=args.files, space_path=args.space, trials=args.trials, minutes=args.minutes,
              fixed=fixed, data_opts=data_opts, seed=args.seed, ray_address=args.ray_address,
              resume=bool(args.resume), log=print)
    return 0
