"""``rnnkit gradcheck [--layer NAME ...] [--seed S] [--tol T]``: verify every hand-derived gradient.

Runs the float64 central-difference checker (:mod:`rnnkit.nn.gradcheck`) on each layer type, each loss and
each recurrent network (2 layers, bidirectional, T=4, a padded row, a random initial state), and prints the
relative error of every parameter, input and initial-state gradient with PASS/FAIL. Exit status 1 on a FAIL.
"""
from __future__ import annotations

import time

import numpy as np

from rnnkit.commands import options as O
from rnnkit.nn import gradcheck as gc
from rnnkit.nn import layers as L
from rnnkit.nn import losses

F64 = np.float64
B, T, D, H = 2, 4, 3, 4  # small enough that every element is probed


def _layer_cases() -> dict:
    def dense(rng):
        return gc.gradcheck(L.Dense(D, H, dtype=F64, rng=rng), rng.standard_normal((B, T, D)), rng=rng)

    def embedding(rng):
        return gc.gradcheck(L.Embedding(7, D, dtype=F64, rng=rng), rng.integers(0, 7, (B, T)), rng=rng)

    def sequential(rng):
        net = L.Sequential(L.Dense(D, H, dtype=F64, rng=rng), L.Tanh(F64), L.Dense(H, H, dtype=F64, rng=rng),
                           L.Sigmoid(F64), L.Dense(H, 2, dtype=F64, rng=rng), L.Softmax(F64))
        return gc.gradcheck(net, rng.standard_normal((B, T, D)), rng=rng)

    def activation(cls):
        def run(rng):
            x = rng.standard_normal((B, T, D))
            x[np.abs(x) < 1e-2] = 0.5  # away from ReLU's kink
            return gc.gradcheck(cls(F64), x, rng=rng)
        return run

    return {"dense": dense, "embedding": embedding, "sequential": sequential,
            "sigmoid": activation(L.Sigmoid), "tanh": activation(L.Tanh), "relu": activation(L.ReLU),
            "softmax": activation(L.Softmax)}


def _loss_cases() -> dict:
    def mask(rng):
        m = np.ones((B, T), bool)
        m[1, T - 1:] = False
        return m

    def mse(rng):
        pred, target = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, D))
        return gc.check_loss(losses.mse, (pred, target), kwargs={"mask": mask(rng)}, names=("pred",))

    def cross_entropy(rng):
        targets = rng.integers(0, 5, (B, T))
        targets[0, 0] = -1
        return gc.check_loss(losses.softmax_cross_entropy, (rng.standard_normal((B, T, 5)), targets),
                             kwargs={"mask": mask(rng), "ignore_index": -1}, names=("logits",))

    def gaussian_nll(rng):
        args = tuple(rng.standard_normal((B, T, 1)) for _ in range(3))
        return gc.check_loss(losses.gaussian_nll, args, wrt=(0, 1), kwargs={"mask": mask(rng)},
                             names=("mean", "log_var"))

    def pinball(rng):
        return gc.check_loss(losses.pinball, (rng.standard_normal((B, T, 3)), rng.standard_normal((B, T)),
                                              [0.1, 0.5, 0.9]), kwargs={"mask": mask(rng)}, names=("pred",))

    return {"mse": mse, "cross_entropy": cross_entropy, "gaussian_nll": gaussian_nll, "pinball": pinball}


def _recurrent_cases() -> dict:
    try:
        from rnnkit.nn import recurrent as R
    except ImportError:
        return {}
    builders = {
        "elman": lambda rng, **kw: R.ElmanRNN(D, H, **kw, dtype=F64, rng=rng),
        "elman_relu": lambda rng, **kw: R.ElmanRNN(D, H, nonlinearity="relu", **kw, dtype=F64, rng=rng),
        "jordan": lambda rng, **kw: R.JordanRNN(D, H, 3, **kw, dtype=F64, rng=rng),
        "lstm": lambda rng, **kw: R.LSTM(D, H, **kw, dtype=F64, rng=rng),
        "gru": lambda rng, **kw: R.GRU(D, H, **kw, dtype=F64, rng=rng),
        "gru_reset_before": lambda rng, **kw: R.GRU(D, H, reset_after=False, **kw, dtype=F64, rng=rng),
    }

    def case(build, return_sequences):
        def run(rng):
            layer = build(rng, num_layers=2, bidirectional=True, return_sequences=return_sequences)
            xs = rng.standard_normal((B, T, D))
            mask = np.ones((B, T), bool)
            mask[1, T - 1:] = False  # a shorter row
            state = tuple(rng.standard_normal(s.shape) for s in layer.initial_state(B))
            return gc.gradcheck(layer, xs, state=state, mask=mask, rng=rng)
        return run

    cases = {}
    for name, build in builders.items():
        cases[name] = case(build, True)
        cases[f"{name}_last"] = case(build, False)
    return cases


def all_cases() -> dict:
    """name -> function(rng) -> GradcheckResult, in the order the table prints them."""
    return {**_layer_cases(), **_loss_cases(), **_recurrent_cases()}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradcheck", help="check every hand-derived gradient against float64 central differences",
        description=__doc__)
    parser.add_argument("--layer", nargs="+", action="extend", metavar="NAME", default=None,
                        help="only these cases (default: all); one of: " + ", ".join(all_cases()))
    parser.add_argument("--seed", type=O.seed_int, default=0, help="random seed for inputs and weights (default 0)")
    parser.add_argument("--tol", type=O.float_range(0.0, 1.0, lo_open=True), default=gc.TOLERANCE,
                        help=f"relative-error pass mark (default {gc.TOLERANCE:g})")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rnnkit.errors import UserError

    cases = all_cases()
    names = args.layer or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise UserError(f"unknown --layer {', '.join(unknown)}; choose from {', '.join(cases)}")
    print(f"float64 central differences, eps=1e-6, seed {args.seed}; relative error "
          f"||a-n|| / (||a|| + ||n||), pass <= {args.tol:g}")
    print(f"{'case':<18}{'gradient':<20}{'rel. error':>12}  result")
    failed = 0
    t0 = time.perf_counter()
    for name in names:
        result = cases[name](np.random.default_rng(args.seed))
        for key, err in result.items():
            ok = err <= args.tol
            failed += not ok
            print(f"{name:<18}{key:<20}{err:>12.2e}  {'PASS' if ok else 'FAIL'}")
    total = sum(1 for _ in names)
    print(f"{'all passed' if not failed else f'{failed} FAILED'} ({total} cases, {time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0
