"""What one char-model training step of benchmarks/rnn_speed.py costs, counted: its shapes, its GEMMs, its
FLOPs, the roofline ratio to PyTorch they allow at a given GEMM rate, and the issue-13 target lines."""
from __future__ import annotations

import numpy as np

B, T, V, E = 32, 100, 65, 64
GATES = {"lstm": 4, "gru": 3, "elman": 1}


def step_gemms(cell, H):
    """The GEMMs of a training step at its shapes, (M, K, N) each, as if every one ran over all B*T rows at
    once: forward x W_x, h W_h and the head, and for each the two backward products (dW and dinput)."""
    G, M = GATES[cell], B * T
    forward = [(M, E, G * H), (M, H, G * H), (M, H, V)]
    return [g for (m, k, n) in forward for g in ((m, k, n), (k, m, n), (m, n, k))]


def step_flops(cell, H):
    """Floating-point operations of one training step, counted: per token the forward's 2 G H (E + H) of the
    layer (input and recurrent products) and 2 H V of the head, the backward twice the forward; B*T tokens.
    Element-wise work (gates, softmax, Adam) is left out: a lower bound on the work."""
    G = GATES[cell]
    forward = 2 * G * H * (E + H) + 2 * H * V
    return 3 * forward * B * T


def roofline(cell, H, torch_seconds, peak_flops):
    """The ratio to PyTorch a step would reach if all its counted FLOPs ran at the machine's GEMM peak: the
    best any implementation could do on this machine (element-wise work and the time loop only lower it)."""
    return torch_seconds / (step_flops(cell, H) / peak_flops)


def gemm_fn(cell, H):
    """The step's GEMMs (:func:`step_gemms`) as plain NumPy float32 GEMMs: timed among the frameworks' calls
    (same threads, same moments), this is the time a step would take at the machine's GEMM rate at its
    shapes, with no time loop and nothing else."""
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32),
              np.empty((m, n), np.float32)) for m, k, n in step_gemms(cell, H)]

    def run():
        for a, b, out in pairs:
            np.matmul(a, b, out=out)

    return run


def print_targets(rows, peak) -> None:
    """The issue's targets, each marked met or missed; for the training targets, whether the machine's GEMM
    peak (``peak`` FLOP/s, 1024^3) allows them at all."""
    for r in rows:
        name = f"{r['cell']} H={r['H']}"
        goal = 1.5 if r["cell"] in ("lstm", "gru") and r["H"] >= 256 else 1.0
        need = step_flops(r["cell"], r["H"]) * goal / (B * T / r["train_torch"])
        reach = (f"reachable at most: {r['roofline_ratio']:.2f}x at the GEMM peak; {goal}x needs "
                 f"{need / 1e9:.0f} GFLOP/s of {peak / 1e9:.0f}: {'possible' if need < peak else 'NOT possible'}")
        checks = [(f"training {r['train_ratio']:.2f}x PyTorch (target >= {goal}x; {reach})", r["train_ratio"] >= goal),
                  (f"generation {r['gen_ratio_cell']:.1f}x PyTorch's one-step cell (target >= 3x)",
                   r["gen_ratio_cell"] >= 3.0)]
        if "mem_rnnkit" in r:
            checks.append((f"peak memory {r['mem_rnnkit']:.0f} MiB vs PyTorch {r['mem_torch']:.0f} MiB (target <=)",
                           r["mem_rnnkit"] <= r["mem_torch"]))
        print(f"{name:12} " + "; ".join(f"{text}: {'met' if ok else 'MISSED'}" for text, ok in checks))
