"""``rnnkit memory``: long-range memory benchmarks.

``rnnkit memory run --task adding --length 200 --cell lstm`` trains one model and says whether it solved
the task, in how many steps and seconds; ``rnnkit memory table`` runs Elman, Jordan, LSTM and GRU across
lengths under one budget and writes a Markdown table and a PNG.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnnkit.commands import options as O
from rnnkit.commands.interrupt import GracefulStop, guarded
from rnnkit.errors import UserError

DEFAULT_LENGTHS = "10,25,50,100,200"


def _add_training_options(p, max_steps: int = 10000) -> None:
    p.add_argument("--task", default="adding", help="adding, copy, order, schedule or words (default adding)")
    p.add_argument("--hidden-size", type=O.int_range(1, 1 << 16), default=64, help="hidden units (default 64)")
    p.add_argument("--num-layers", type=O.int_range(1, 64), default=1, help="stacked recurrent layers (default 1)")
    p.add_argument("--layers", type=O.int_range(1, 64), dest="num_layers", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old spelling of --num-layers, still accepted
    p.add_argument("--batch-size", type=O.int_range(1, 1 << 20), default=64, help="sequences per batch (default 64)")
    p.add_argument("--lr", type=O.learning_rate, default=5e-3, help="Adam learning rate (default 5e-3)")
    p.add_argument("--clip", type=O.nonneg_float, default=1.0, help="global gradient-norm clip, 0 = off (default 1.0)")
    p.add_argument("--forget-bias", type=O.finite_float, default=1.0, help="LSTM forget-gate bias (default 1.0)")
    p.add_argument("--max-steps", type=O.positive_int, default=max_steps,
                   help=f"training steps at most (default {max_steps})")
    p.add_argument("--max-seconds", type=O.float_range(0.5, 3.2e7), default=600.0,
                   help="time budget per model in seconds (default 600)")
    p.add_argument("--eval-every", type=O.positive_int, default=50, help="validation every N steps (default 50)")
    p.add_argument("--seed", type=O.seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=O.folder_path, default=None,
                   help="output folder (default runs/memory-<task>-<cell>-T<length>, or runs/memory-table-<task>)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("memory", help="long-range memory tasks: adding, copy, order, schedule, words",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="memory_command", metavar="ACTION")
    run_p = sub.add_parser("run", help="train one model on one task and report whether it solved it")
    _add_training_options(run_p)
    run_p.add_argument("--length", type=O.int_range(1, 10**7), default=100, help="sequence length T (copy: the delay)")
    run_p.add_argument("--cell", default="lstm", help="elman, jordan, lstm or gru (default lstm)")
    run_p.add_argument("--diagnostics", type=O.nonneg_int, default=10, metavar="N",
                       help="record gradient norms and the dL/dh ratio every N steps, 0 = off (default 10)")
    run_p.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_p.set_defaults(func=run_one)
    table_p = sub.add_parser("table", help="all cells across lengths under a fixed budget: Markdown + PNG")
    _add_training_options(table_p, max_steps=3000)
    table_p.add_argument("--cells", default="elman,jordan,lstm,gru", help="comma-separated cells (default "
                         "elman,jordan,lstm,gru)")
    table_p.add_argument("--lengths", default=DEFAULT_LENGTHS,
                         help=f"comma-separated sequence lengths (default {DEFAULT_LENGTHS})")
    table_p.add_argument("--seeds", default=None, help="comma-separated seeds, each a separate run (default: --seed)")
    table_p.add_argument("--resume", action="store_true",
                         help="reuse results already in OUT/results.json that were run with the same budget")
    table_p.set_defaults(func=run_table)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _config(args, cell: str, length: int, monitor_every: int = 0):
    from rnnkit.tasks.memory import MemoryConfig

    cfg = MemoryConfig(task=args.task, length=length, cell=cell, hidden_size=args.hidden_size,
                       num_layers=args.num_layers, batch_size=args.batch_size, lr=args.lr, clip=args.clip,
                       forget_bias=args.forget_bias, max_steps=args.max_steps, max_seconds=args.max_seconds,
                       eval_every=args.eval_every, monitor_every=monitor_every, seed=args.seed,
                       threads=getattr(args, "threads", None)).validate()  # the global ``rnnkit --threads N``
    # the held-out test set goes through the network in one batch, so it sets the activation memory
    need = O.recurrent_bytes(cfg.hidden_size, cfg.num_layers, 8, max(cfg.batch_size, cfg.test_size), cfg.length,
                             gates=4, itemsize=np.dtype(cfg.dtype).itemsize)
    O.check_memory(need, f"--length {cfg.length} with --hidden-size {cfg.hidden_size} and --num-layers "
                         f"{cfg.num_layers}", "lower --length or --hidden-size")
    return cfg


def _out_dir(args, default: str) -> Path:
    return O.out_folder(args.out or default)


def write_metrics(path, rows: list[dict]) -> None:
    """metrics.csv with the union of the rows' keys (kind and step first); missing values are empty."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    order = {"kind": 0, "step": 1, "loss": 2, "grad_norm": 3, "val_metric": 4, "test_metric": 5}
    keys.sort(key=lambda k: (order.get(k, 6), k.startswith("grad_norm/"), k))
    import io as _io

    from rnnkit.io import atomic_write_text

    buf = _io.StringIO()  # written atomically: no half file and no temporary left by an interrupt
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _describe(spec, value: float) -> str:
    name = "test MSE" if spec.metric == "mse" else "test accuracy"
    rule = f"below {spec.solved_at:g}" if spec.metric == "mse" else f"at least {spec.solved_at:g}"
    return f"{name} {value:.4g} (chance {spec.chance:.3g}; solved means {rule})"


@guarded  # SIGTERM like Ctrl-C; the run folder locked while written
def run_one(args, locks) -> int:
    from rnnkit.io import atomic_write_text, write_json
    from rnnkit.plots.gradients import training_diagnostics
    from rnnkit.tasks import memory as M

    cfg = _config(args, args.cell, args.length, max(0, args.diagnostics))
    spec = M.get_task(cfg.task)
    out = locks.hold(_out_dir(args, f"runs/memory-{cfg.task}-{cfg.cell}-T{cfg.length}"))
    print(f"memory run: task {cfg.task} ({spec.about})")
    print(f"  cell {cfg.cell}, T={cfg.length}, hidden {cfg.hidden_size}x{cfg.num_layers}, batch {cfg.batch_size}, "
          f"Adam lr {cfg.lr:g}, clip {cfg.clip:g}, budget {cfg.max_steps} steps / {cfg.max_seconds:g} s, "
          f"seed {cfg.seed} -> {out}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always", RuntimeWarning)
        warnings.showwarning = lambda msg, *a, **k: print(f"  warning: {msg}", file=sys.stderr)
        with GracefulStop(notice="stopping after this step and saving the model (again to abort)") as stop:
            model, res = M.train(cfg, progress=not args.no_progress, log=lambda line: print(f"  {line}"), stop=stop)
    write_json(out / "config.json", {"command": "memory run", **asdict(cfg)})
    write_metrics(out / "metrics.csv", res.history)
    M.save(model, out / M.MODEL_FILE, cfg, step=res.steps)
    training_diagnostics(res.history, out / "learning_curve.png",
                         title=f"{cfg.cell} on {cfg.task}, T={cfg.length}", metric=spec.metric)
    if stop.requested:  # the model, config and metrics are saved; nothing generated after an interrupt
        return stop.report("memory run", f"model, config.json and metrics.csv saved in {out}")
    summary = {k: v for k, v in asdict(res).items() if k != "history"}
    lines = []
    if cfg.task == "words":
        lines = [M.generate_words(model, s.split()[0]) for s in M.sq.SENTENCES]
        atomic_write_text(out / "generated.txt", "\n".join(lines) + "\n")
        summary["generated"] = lines
    if cfg.task == "schedule":
        summary["schedule"] = rep = M.schedule_report(model, cfg.length)
        lines = [f"accuracy {rep['accuracy']:.4f} overall, {rep['accuracy_after_missed_day']:.4f} on the "
                 f"{rep['missed_days']} missed days (where the model must rely on its own previous prediction)"]
    write_json(out / "result.json", summary)
    verdict = "SOLVED" if res.solved else "NOT solved"
    print(f"{verdict}: {cfg.cell} on {cfg.task} T={cfg.length}: {_describe(spec, res.test_metric)}; "
          f"{res.steps} steps in {res.seconds:.1f} s (stopped: {res.stopped})")
    for line in lines:
        print(f"  {'generated: ' if cfg.task == 'words' else ''}{line}")
    print(f"  wrote {out}/config.json, metrics.csv, model.safetensors, learning_curve.png, result.json")
    return 0


def _parse_list(text: str, kind, what: str):
    try:
        items = [kind(t.strip()) for t in text.split(",") if t.strip()]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UserError(f"--{what}: expected a comma-separated list ({exc}), got {text!r}") from None
    if not items:
        raise UserError(f"--{what}: empty list")
    return items


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (cell, length) over seeds: ``solved`` (count), ``runs``, median ``metric`` over all
    seeds, median ``steps`` and ``seconds`` over the seeds that solved it (None if none did)."""
    rows = []
    keys = list(dict.fromkeys((r["cell"], r["length"]) for r in results))
    for cell, length in keys:
        rs = [r for r in results if r["cell"] == cell and r["length"] == length]
        ok = [r for r in rs if r["solved"]]
        rows.append(dict(cell=cell, length=length, runs=len(rs), solved=len(ok),
                         metric=float(np.median([r["metric"] for r in rs])),
                         steps=float(np.median([r["steps"] for r in ok])) if ok else None,
                         seconds=float(np.median([r["seconds"] for r in ok])) if ok else None))
    return rows


def markdown_table(results: list[dict], spec, budget: str) -> str:
    rows = aggregate(results)
    lengths = sorted({r["length"] for r in rows})
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    seeds = sorted({r.get("seed", 0) for r in results})
    name = "test MSE" if spec.metric == "mse" else "test accuracy"
    lines = [f"Task `{spec.name}`: {spec.about}. Budget per model: {budget}; seeds {seeds}. Each entry: "
             f"seeds that solved it, median {name} over all seeds, and (if solved) median steps and seconds "
             "to solve; **bold** = every seed solved it.", "",
             "| cell | " + " | ".join(f"T={t}" for t in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for cell in cells:
        entries = []
        for t in lengths:
            r = next((r for r in rows if r["cell"] == cell and r["length"] == t), None)
            if r is None:
                entries.append("")
                continue
            text = f"{r['solved']}/{r['runs']}, {r['metric']:.3g}"
            if r["solved"]:
                text += f", {r['steps']:.0f} st, {r['seconds']:.0f} s"
            entries.append(f"**{text}**" if r["solved"] == r["runs"] else text)
        lines.append(f"| {cell} | " + " | ".join(entries) + " |")
    last = {}
    for cell in cells:
        ok = [r["length"] for r in rows if r["cell"] == cell and 2 * r["solved"] > r["runs"]]
        last[cell] = max(ok) if ok else None
    lines += ["", "Longest length solved by most seeds: " +
              ", ".join(f"{c} {'T=' + str(v) if v else 'none'}" for c, v in last.items()) + "."]
    return "\n".join(lines) + "\n"


@guarded
def run_table(args, locks) -> int:
    from rnnkit.io import atomic_write_text, read_json_file, write_json
    from rnnkit.plots.gradients import memory_table
    from rnnkit.tasks import memory as M

    spec = M.get_task(args.task)
    cells = _parse_list(args.cells, str, "cells")
    lengths = _parse_list(args.lengths, O.int_range(1, 10**7), "lengths")
    seeds = _parse_list(args.seeds, O.seed_int, "seeds") if args.seeds else [args.seed]
    for c in cells:
        if c not in M.CELLS:
            raise UserError(f"--cells: unknown cell {c!r}; choose from {', '.join(M.CELLS)}")
    configs = []
    for c in cells:
        for t in lengths:
            for seed in seeds:
                args.seed = seed
                configs.append(_config(args, c, t))
    out = locks.hold(_out_dir(args, f"runs/memory-table-{args.task}"))
    budget = (f"{args.max_steps} steps or {args.max_seconds:g} s, hidden {args.hidden_size}, batch "
              f"{args.batch_size}, Adam lr {args.lr:g}, clip {args.clip:g}")
    print(f"memory table: task {spec.name}, cells {', '.join(cells)}, lengths {lengths}, seeds {seeds}; "
          f"budget {budget} -> {out}")
    from tqdm import tqdm

    done = {}
    if args.resume and (out / "results.json").exists():
        old = read_json_file(out / "results.json", "results file")  # regular file, a strict JSON object
        if old.get("task") == spec.name and old.get("budget") == budget:
            try:
                done = {(r["cell"], r["length"], r.get("seed", 0)): r for r in old["results"]}
                aggregate(list(done.values()))  # what the table needs from each result, tried before training
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise UserError(f"results file {out / 'results.json'} is damaged ({type(exc).__name__}: {exc}); "
                                "delete it to start the table again") from None
            print(f"  resuming: {len(done)} results with the same budget in {out / 'results.json'}")
    results = []
    for cfg in tqdm(configs, unit="model", file=sys.stderr, leave=False, dynamic_ncols=True):
        if (cfg.cell, cfg.length, cfg.seed) in done:
            results.append(done[(cfg.cell, cfg.length, cfg.seed)])
            continue
        _, res = M.train(cfg)
        results.append(dict(cell=cfg.cell, length=cfg.length, seed=cfg.seed, metric=res.test_metric,
                            solved=res.solved, steps=res.steps, seconds=round(res.seconds, 2), stopped=res.stopped))
        verdict = "solved" if res.solved else "not solved"
        print(f"  {cfg.cell:6s} T={cfg.length:<4d} seed {cfg.seed} {verdict:10s} {_describe(spec, res.test_metric)}; "
              f"{res.steps} steps, {res.seconds:.1f} s", flush=True)
        write_json(out / "results.json", {"task": spec.name, "budget": budget, "results": results})
    write_json(out / "results.json", {"task": spec.name, "budget": budget, "results": results})
    text = markdown_table(results, spec, budget)
    atomic_write_text(out / "table.md", text)
    memory_table(aggregate(results), out / "table.png", baseline=spec.chance, threshold=spec.solved_at,
                 metric="test MSE" if spec.metric == "mse" else "test accuracy",
                 title=f"{spec.name}: {budget}; seeds {seeds}")
    print(text)
    print(f"wrote {out}/table.md, table.png, results.json")
    return 0
