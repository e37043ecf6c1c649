"""Hyperparameter sweeps on Ray Tune: random or grid search over any config field of a task, ASHA on the
validation metric, one run folder per trial, a results table (CSV and printed, best first), the best config.

A sweep folder holds ``sweep.json`` (task, data, fixed settings, space: enough to resume), ``tune/`` (Tune's
own experiment state, which ``resume`` restores), ``trials/<id>/`` (each trial's run folder), ``results.csv``
and ``best_config.json``. Space JSON: ``{"field": {"choice": [...]}|{"uniform": [a, b]}|{"loguniform": [a, b]}
|{"randint": [a, b]}|{"grid": [...]}, "other_field": fixed_value}``.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

from rnnkit.distributed import require_ray
from rnnkit.distributed.sweep_tasks import (DEFAULT_SPACES, METRICS, abspaths, config_fields, make_config,
                                            read_data, run_trial, write_json)
from rnnkit.errors import UserError

KINDS = ("choice", "uniform", "loguniform", "randint", "grid")
TASKS = tuple(DEFAULT_SPACES)


def check_space(task: str, space: dict) -> dict:
    """The space with every field and distribution checked (UserError naming the first bad entry)."""
    if not isinstance(space, dict) or not space:
        raise UserError("the search space must be a JSON object of config fields, e.g. "
                        '{"lr": {"loguniform": [1e-4, 1e-2]}, "hidden_size": {"choice": [64, 128]}}')
    fields = config_fields(task)
    for name, spec in space.items():
        if name not in fields or name in ("workers", "ray_address", "threads"):
            raise UserError(f"space field {name!r} is not a setting of {task}; choose among: "
                            f"{', '.join(f for f in fields if f not in ('workers', 'ray_address', 'threads'))}")
        if isinstance(spec, dict):
            if len(spec) != 1 or next(iter(spec)) not in KINDS:
                raise UserError(f"space field {name!r}: give exactly one of {', '.join(KINDS)}, got {sorted(spec)}")
            kind, arg = next(iter(spec.items()))
            if not isinstance(arg, list) or not arg:
                raise UserError(f"space field {name!r}: {kind} needs a non-empty list, got {arg!r}")
            if kind in ("uniform", "loguniform", "randint"):
                if len(arg) != 2 or not all(isinstance(v, (int, float)) for v in arg) or not arg[0] < arg[1]:
                    raise UserError(f"space field {name!r}: {kind} needs [low, high] with low < high, got {arg}")
                if kind == "loguniform" and arg[0] <= 0:
                    raise UserError(f"space field {name!r}: loguniform needs a positive low end, got {arg[0]}")
    return space


def read_space(task: str, path) -> dict:
    if path is None:
        return DEFAULT_SPACES[task]
    try:
        space = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--space {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--space {path} is not valid JSON: {exc}") from None
    return check_space(task, space)


def _tune_space(tune, space: dict) -> dict:
    out = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            out[name] = spec  # a fixed value
            continue
        kind, arg = next(iter(spec.items()))
        out[name] = {"choice": lambda a: tune.choice(a), "uniform": lambda a: tune.uniform(*a),
                     "loguniform": lambda a: tune.loguniform(*a), "randint": lambda a: tune.randint(a[0], a[1] + 1),
                     "grid": lambda a: tune.grid_search(a)}[kind](arg)
    return out


def _trial_budget(task: str, base: dict, minutes: float | None, trials: int, concurrent: int) -> dict:
    """Each trial's share of ``--minutes`` when the fixed settings give no budget of their own."""
    if minutes is None:
        return base
    share = max(0.05, minutes * concurrent / max(trials, 1) * 0.8)  # 20% for start-up and evaluation
    if task == "text" and base.get("steps") is None and base.get("minutes") is None:
        return {**base, "minutes": round(share, 3)}
    if task == "classify" and "max_minutes" not in base:
        return {**base, "max_minutes": round(share, 3)}
    return base


def run_sweep(task: str, out, *, files=(), space_path=None, trials: int = 8, minutes: float | None = None,
              fixed: dict | None = None, data_opts: dict | None = None, seed: int = 0,
              ray_address: str | None = None, resume: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Run (or with ``resume`` continue) a sweep in folder ``out``; returns the results rows, best first."""
    require_ray("rnnkit sweep")
    out = Path(out).resolve()
    if resume:
        try:
            spec = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{out} holds no sweep (sweep.json); give the folder a sweep was started in") from None
    else:
        if task not in TASKS:
            raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if (out / "sweep.json").exists():
            raise UserError(f"{out} already holds a sweep; continue it with --resume or choose another --out")
        if trials < 1:
            raise UserError(f"--trials must be at least 1, got {trials}")
        if minutes is not None and not minutes > 0:
            raise UserError(f"--minutes must be positive, got {minutes}")
        space = read_space(task, space_path)
        base = dict(fixed or {})
        bad = sorted(set(base) - set(config_fields(task)))
        if bad:
            raise UserError(f"--set {bad[0]}: not a setting of {task}")
        if task == "forecast" and "horizon" not in base:
            raise UserError("rnnkit sweep forecast needs --horizon H (steps ahead to forecast)")
        spec = {"task": task, "data": {"files": abspaths(files), **(data_opts or {})}, "fixed": base,
                "space": space, "trials": int(trials), "minutes": minutes, "seed": int(seed)}
    task = spec["task"]
    data = read_data(task, spec["data"])
    from rnnkit.distributed.cluster import connect

    cluster = connect(1, ray_address, what="rnnkit sweep", log_to_driver=False)  # trials' errors: results.csv
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        concurrent = max(1, int(cluster.ray.cluster_resources().get("CPU", 1)))
        base = _trial_budget(task, spec["fixed"], spec["minutes"], spec["trials"], concurrent)
        # a fixed setting or the first value of each range must make a valid config before anything starts
        make_config(task, {**base, **{k: (v if not isinstance(v, dict) else next(iter(v.values()))[0])
                                      for k, v in spec["space"].items()}})
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "sweep.json", spec)
        metric = METRICS[task]
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, task=task, base=base, data=data, sweep_dir=str(out)), {"cpu": 1})
        t0 = time.perf_counter()
        if resume:
            if not tune.Tuner.can_restore(str(out / "tune")):
                raise UserError(f"{out / 'tune'} holds no Tune state to resume from")
            log(f"resuming the sweep in {out}")
            tuner = tune.Tuner.restore(str(out / "tune"), trainable, resume_unfinished=True, resume_errored=True)
        else:
            sched = ASHAScheduler(time_attr="training_iteration", max_t=1000, grace_period=2, reduction_factor=2)
            from ray.tune.search.basic_variant import BasicVariantGenerator
            searcher = BasicVariantGenerator(random_state=spec["seed"])  # the same seed draws the same trials
            tuner = tune.Tuner(
                trainable, param_space=_tune_space(tune, spec["space"]),
                tune_config=tune.TuneConfig(metric=metric, mode="min", scheduler=sched, search_alg=searcher,
                                            num_samples=spec["trials"], reuse_actors=True,
                                            time_budget_s=spec["minutes"] * 60 if spec["minutes"] else None,
                                            trial_dirname_creator=lambda t: t.trial_id),
                run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0,
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        log(f"sweep {task}: {spec['trials']} trial(s), {concurrent} at a time, ASHA on {metric} | folder {out}")
        grid = tuner.fit()
        rows = results_table(grid, metric, spec["space"], out)
        write_results(out, rows, task, base, spec["space"], metric, log)
        left = sum(r["status"] == "unfinished" for r in rows)
        if left:
            log(f"interrupted with {left} trial(s) unfinished (table and best config so far written); continue "
                f"with: rnnkit sweep {task} --resume {out}")
        else:
            log(f"sweep done in {(time.perf_counter() - t0) / 60:.1f} min")
        return rows
    finally:
        cluster.close()


STATUS = {"TERMINATED": "done", "ERROR": "error", "PENDING": "unfinished", "RUNNING": "unfinished",
          "PAUSED": "unfinished"}


def results_table(grid, metric: str, space: dict, out: Path) -> list[dict]:
    from ray.tune import ExperimentAnalysis

    try:  # the trial states as saved (after an interrupt, unfinished trials are PENDING there)
        states = {t.trial_id: t.status for t in ExperimentAnalysis(str(out / "tune")).trials}
    except Exception:  # no saved state: take what the results say
        states = {}
    rows = []
    for result in grid:
        df = result.metrics_dataframe
        values = [] if df is None or metric not in df else [float(v) for v in df[metric] if math.isfinite(v)]
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        status = STATUS.get(states.get(trial_id, ""), "error" if result.error else "done")
        row = {"trial": trial_id, "status": status,
               metric: min(values) if values else float("nan"), "reports": len(values),
               "minutes": round(float((result.metrics or {}).get("time_total_s", 0.0)) / 60, 3),
               "run_folder": str(out / "trials" / trial_id),
               "error": str(result.error).strip().splitlines()[-1][:300] if result.error else ""}
        for k in space:
            row[k] = (result.config or {}).get(k)
        rows.append(row)
    most = max((r["reports"] for r in rows if r["status"] != "error"), default=0)
    for r in rows:  # ASHA ends a trial by not letting it report further
        if r["status"] == "done" and r["reports"] < most:
            r["status"] = "stopped early"
    rows.sort(key=lambda r: (not math.isfinite(r[metric]), r[metric] if math.isfinite(r[metric]) else 0.0))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def write_results(out: Path, rows: list[dict], task: str, base: dict, space: dict, metric: str, log) -> None:
    from rnnkit import io

    fields = ["rank", "trial", "status", metric, "reports", "minutes", *space, "run_folder", "error"]
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    io.atomic_write_text(out / "results.csv", buf.getvalue())
    shown = ["rank", "trial", metric, "reports", *space, "status"]
    cells = [[_fmt(r.get(k)) for k in shown] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(shown)]
    log("  ".join(h.ljust(wd) for h, wd in zip(shown, widths)))
    for c in cells:
        log("  ".join(v.ljust(wd) for v, wd in zip(c, widths)))
    best = next((r for r in rows if math.isfinite(r[metric])), None)
    if best is None:
        log("no trial reported a finite validation metric; see the trials' folders for their errors")
        return
    cfg = make_config(task, {**base, **{k: best[k] for k in space}})
    conf = {"task": task, "metric": metric, "value": best[metric], "trial": best["trial"],
            "run_folder": best["run_folder"], "config": _plain(cfg)}
    write_json(out / "best_config.json", conf)
    log(f"best: trial {best['trial']} {metric} {best[metric]:.4g}; config in {out / 'best_config.json'}, "
        f"table in {out / 'results.csv'}")


def _plain(cfg) -> dict:
    import dataclasses
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
