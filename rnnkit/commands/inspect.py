"""``rnnkit inspect``: look inside recurrent networks.

``rnnkit inspect gradients [RUN] [--cell lstm --length 100] --out DIR`` plots ||dL/dh_t|| and ||ds_T/dh_t||
against t (log scale) for several cells side by side (freshly initialised, or the model of a ``memory run``
folder next to the same architecture untrained), and a gate-saturation histogram for LSTM/GRU. ``rnnkit inspect clipping --out DIR`` trains an Elman
network with large recurrent weights with and without global-norm clipping and plots both loss curves.
"""
from __future__ import annotations

import argparse

from pathlib import Path

import numpy as np

from rnnkit.commands import options as O
from rnnkit.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="gradient flow across time, gate saturation, clipping demo",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="inspect_command", metavar="ACTION")
    g = sub.add_parser("gradients", help="dL/dh_t and ||ds_T/dh_t|| over time, gate saturation")
    g.add_argument("run", nargs="?", default=None, help="a 'rnnkit memory run' folder (default: fresh cells)")
    g.add_argument("--cell", "--cells", dest="cells", default="elman,jordan,lstm,gru",
                   help="comma-separated cells for fresh models (default elman,jordan,lstm,gru)")
    g.add_argument("--length", type=O.int_range(2, 10**4), default=None,
                   help="sequence length T (default 100, or the run's)")
    g.add_argument("--task", default="adding", help="task whose sequences are fed in (default adding)")
    g.add_argument("--hidden-size", type=O.int_range(1, 1 << 14), default=64,
                   help="hidden units of fresh cells (default 64)")
    g.add_argument("--num-layers", type=O.int_range(1, 64), default=1,
                   help="stacked recurrent layers of fresh cells (default 1)")
    g.add_argument("--layers", type=O.int_range(1, 64), dest="num_layers", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old spelling of --num-layers, still accepted
    g.add_argument("--batch-size", type=O.int_range(1, 1 << 16), default=8,
                   help="sequences averaged over (default 8)")
    g.add_argument("--seed", type=O.seed_int, default=0, help="random seed of weights and inputs (default 0)")
    g.add_argument("--out", type=O.folder_path, required=True, help="output folder")
    g.set_defaults(func=run_gradients)
    c = sub.add_parser("clipping", help="exploding gradients: Elman with large recurrent weights, clip vs none")
    c.add_argument("--clip", type=O.positive_float, default=1.0,
                   help="global-norm threshold of the clipped run (default 1.0)")
    c.add_argument("--gain", type=O.float_range(0.0, 1e3, lo_open=True), default=1.5,
                   help="spectral radius of the recurrent matrix (default 1.5)")
    c.add_argument("--nonlinearity", default="tanh", choices=("tanh", "relu"),
                   help="the Elman cell's nonlinearity (default tanh)")
    c.add_argument("--length", type=O.int_range(2, 10**4), default=50, help="sequence length T (default 50)")
    c.add_argument("--steps", type=O.int_range(1, 10**5), default=300, help="SGD steps per run (default 300)")
    c.add_argument("--lr", type=O.learning_rate, default=0.1, help="SGD learning rate (default 0.1)")
    c.add_argument("--seed", type=O.seed_int, default=0, help="random seed (default 0)")
    c.add_argument("--out", type=O.folder_path, required=True, help="output folder")
    c.set_defaults(func=run_clipping)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _out(path) -> Path:
    return O.out_folder(path)


def _check_size(length: int, hidden: int, layers: int, batch: int) -> None:
    """Refuse sizes whose float64 models and state Jacobians ds_T/dh_t, (B, T, S, S) per layer with S = 2H for
    an LSTM's (h, c), plus the SVD's copy, cannot fit in memory."""
    weights = 4 * 8 * 2 * hidden * (3 * hidden) * layers * 4  # four cells, W_x and W_h of G*H columns
    O.check_memory(weights + 2.0 * layers * batch * length * (2 * hidden) ** 2 * 8, f"--length {length} with "
                   f"--hidden-size {hidden}, --num-layers {layers} and --batch-size {batch}", "lower them")


def flow_for(model, spec, batch) -> dict:
    """dL/dh_t norms for the task loss (through the head), Jacobian norms and gate saturation."""
    from rnnkit import diagnostics as D
    from rnnkit.tasks.memory import loss_and_grad

    rnn = model.rnn
    saved = {k: g.copy() for k, g in model.grads.items()}
    rnn.record_dh = True
    out = model.forward(batch.xs, mask=batch.valid)
    loss, dout = loss_and_grad(spec, out, batch)
    model.backward(dout)
    dh = D.dh_norms(rnn)
    gates = rnn.gate_activations()
    rnn.record_dh = False
    for k, g in model.grads.items():
        g[...] = saved[k]
    jac = D.jacobian_norms(rnn, batch.xs, mask=batch.valid)
    sat = D.gate_saturation(rnn) if gates else {}
    return {"loss": loss, "dh": dh, "jac": jac, "gates": gates, "saturation": sat,
            "dh_ratio": D.early_late_ratio(dh[0]), "jac_ratio": D.early_late_ratio(jac[0])}


def run_gradients(args) -> int:
    from rnnkit import diagnostics as D
    from rnnkit.io import write_json
    from rnnkit.plots.gradients import gate_histograms, gradient_flow
    from rnnkit.tasks import memory as M

    out = _out(args.out)
    if args.run:
        model, cfg = M.load(args.run)
        spec = M.get_task(cfg.task)
        length = args.length or cfg.length
        _check_size(length, cfg.hidden_size, cfg.num_layers, args.batch_size)

        def build(rng):  # float64: in float32 the reverse loop flushes gradients below 1e-30 to zero
            return M.build_model(spec, cfg.cell, cfg.hidden_size, cfg.num_layers, cfg.forget_bias, np.float64,
                                 rng=rng)

        trained = build(0)
        trained.load_state_dict(model.state_dict())
        fresh = build(M.run_rngs(cfg.seed)[0])  # its initial weights
        models = {f"{cfg.cell} (trained)": trained, f"{cfg.cell} (untrained)": fresh}
        what = f"trained run {args.run} vs the same model untrained"
    else:
        spec = M.get_task(args.task)
        length = args.length or 100
        _check_size(length, args.hidden_size, args.num_layers, args.batch_size)
        cells = [c.strip() for c in args.cells.split(",") if c.strip()]
        for c in cells:
            if c not in M.CELLS:
                raise UserError(f"--cell: unknown cell {c!r}; choose from {', '.join(M.CELLS)}")
        if args.hidden_size < 1 or args.num_layers < 1:
            raise UserError("--hidden-size and --layers must be at least 1")
        # float64, to follow a vanishing gradient below float32's range (and its 1e-30 flush)
        models = {c: M.build_model(spec, c, args.hidden_size, args.num_layers, dtype=np.float64, rng=args.seed)
                  for c in cells}
        what = f"fresh cells, hidden {args.hidden_size}x{args.num_layers}, seed {args.seed}"
    if (length < 2 and not spec.fixed_data) or args.batch_size < 1:
        raise UserError("--length must be at least 2 and --batch-size at least 1")
    batch = spec.make(args.batch_size, length, np.random.default_rng(args.seed + 1))
    batch.xs = batch.xs.astype(next(iter(models.values())).dtype)
    results = {name: flow_for(m, spec, batch) for name, m in models.items()}
    title = f"{spec.name} task, T={batch.xs.shape[1]}, {what}"
    gradient_flow(results, out / "gradients.png", title=title)
    written = ["gradients.png"]
    gates = {name: r["gates"] for name, r in results.items() if r["gates"]}
    if gates:
        gate_histograms(gates, out / "gates.png", title=title)
        written.append("gates.png")
    summary = {name: {"dh": [d.tolist() for d in r["dh"]], "jacobian": [j.tolist() for j in r["jac"]],
                      "dh_ratio": r["dh_ratio"], "jacobian_ratio": r["jac_ratio"], "loss": r["loss"],
                      "saturation": r["saturation"]} for name, r in results.items()}
    write_json(out / "gradients.json", {"title": title, "cells": summary})
    written.append("gradients.json")
    print(f"gradient flow: {title}")
    print(f"  {'cell':16s} {'dL/dh_0 / dL/dh_T':>18s} {'||ds_T/dh_0||':>14s}  note")
    for name, r in results.items():
        note = D.flow_warning(r["dh_ratio"]) or ""
        print(f"  {name:16s} {r['dh_ratio']:18.3e} {r['jac'][0][0]:14.3e}  {note.split(';')[0]}")
        for layer, gates_ in r["saturation"].items():
            parts = ", ".join(f"{g} {v['left']:.0%}/{v['right']:.0%}" for g, v in gates_.items())
            print(f"    {layer} gates saturated (<0.1 / >0.9): {parts}")
    print(f"  wrote {', '.join(str(out / w) for w in written)}")
    return 0


def run_clipping(args) -> int:
    from rnnkit.io import write_json
    from rnnkit.plots.gradients import clipping_curves
    from rnnkit.tasks.memory import exploding_demo

    if args.steps < 1 or args.length < 2 or not args.clip > 0 or not args.gain > 0 or not args.lr > 0:
        raise UserError("--steps >= 1, --length >= 2 and positive --clip, --gain and --lr are required")
    out = _out(args.out)
    kw = dict(steps=args.steps, length=args.length, gain=args.gain, lr=args.lr, nonlinearity=args.nonlinearity,
              seed=args.seed)
    runs = {"no clipping": exploding_demo(None, **kw), f"clipped at {args.clip:g}": exploding_demo(args.clip, **kw)}
    title = (f"Elman ({args.nonlinearity}) with recurrent spectral radius {args.gain:g}, adding problem "
             f"T={args.length}, SGD lr {args.lr:g}")
    clipping_curves(runs, out / "clipping.png", title=title)
    write_json(out / "clipping.json", {"title": title, **{k: {m: [x if np.isfinite(x) else None for x in v]
                                                              for m, v in r.items()} for k, r in runs.items()}})
    print(f"exploding gradients: {title}")
    for name, r in runs.items():
        loss, norm = np.array(r["loss"]), np.array(r["grad_norm"])
        finite = np.isfinite(loss) & np.isfinite(norm)
        end = (f"loss non-finite at step {len(loss)}" if not finite.all()
               else f"final loss {np.mean(loss[-20:]):.4g} (mean of last 20 steps)")
        print(f"  {name:16s} {len(loss)} steps; largest gradient norm {np.nanmax(np.where(finite, norm, np.nan)):.3g}; "
              f"{end}")
    print(f"  wrote {out / 'clipping.png'}, {out / 'clipping.json'}")
    return 0
