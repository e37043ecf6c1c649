"""Speed of rnnkit's TDNN against PyTorch's Conv1d: one forward + backward, same shapes, float32.

Default shapes: B=16, T=1460, D=64 inputs, C=128 channels, kernel 5, causal padding (PyTorch pads on the
left with F.pad, inside the timed call). PyTorch runs on its native (B, D, T) layout ("torch") and, as a
batch-first user would call it, with the two transposes ("torch-bf"). rnnkit runs its default
(algorithm="auto": Winograd at these shapes) and the unfolded-GEMM reference ("rk-unfold"). Each runs
with 1 and 2 threads (rnnkit's BLAS through threadpoolctl); all settings are interleaved repeat by
repeat, one thread count at a time, so a change in the machine's load hits them alike. Printed: median
and spread (half the interquartile range) per setting, with the median CPU time (on a machine shared
with other work the wall clock includes time the core spent on others; the CPU time does not: of the
calling thread at 1 thread, of the process at 2), and the ratios of the best medians (> 1: rnnkit
slower).

    python benchmarks/tdnn_speed.py                  # ~1 minute
    python benchmarks/tdnn_speed.py --repeats 5 --time 400
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits


def rnnkit_step_fn(B, T, D, C, K, algorithm, seed=0):
    from rnnkit.nn import TDNN

    rng = np.random.default_rng(seed)
    layer = TDNN(D, C, K, padding="causal", rng=rng, algorithm=algorithm)
    xs = rng.standard_normal((B, T, D)).astype(np.float32)
    dys = rng.standard_normal((B, T, C)).astype(np.float32)

    def step():
        layer.zero_grad()
        layer.forward(xs, training=True)
        return layer.backward(dys)

    return step, layer, xs, dys


def torch_step_fn(torch, layer, xs, dys, batch_first):
    F = torch.nn.functional
    K = layer.kernel_size
    conv = torch.nn.Conv1d(layer.input_size, layer.channels_out, K)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.torch_state_dict()["weight"]))
        conv.bias.copy_(torch.from_numpy(layer.b))
    x_bf = torch.from_numpy(xs).requires_grad_(True)
    x_cf = torch.from_numpy(np.ascontiguousarray(xs.transpose(0, 2, 1))).requires_grad_(True)
    dy_bf = torch.from_numpy(dys)
    dy_cf = torch.from_numpy(np.ascontiguousarray(dys.transpose(0, 2, 1)))

    def step():
        conv.zero_grad(set_to_none=False)
        if batch_first:
            x_bf.grad = None
            y = conv(F.pad(x_bf.transpose(1, 2), (K - 1, 0))).transpose(1, 2)
            y.backward(dy_bf)
            return x_bf.grad
        x_cf.grad = None
        y = conv(F.pad(x_cf, (K - 1, 0)))
        y.backward(dy_cf)
        return x_cf.grad.transpose(1, 2)

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--time", type=int, default=1460)
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    import torch

    B, T, D, C, K = args.batch, args.time, args.inputs, args.channels, args.kernel
    ours, layer, xs, dys = rnnkit_step_fn(B, T, D, C, K, "auto")
    reference = rnnkit_step_fn(B, T, D, C, K, "unfold")[0]
    theirs = {"torch": torch_step_fn(torch, layer, xs, dys, False),
              "torch-bf": torch_step_fn(torch, layer, xs, dys, True)}
    # same numbers first: the input gradient of both (float32 tolerance)
    dx_ours, dx_torch = ours(), theirs["torch"]().numpy()
    err = float(np.abs(dx_ours - dx_torch).max() / np.abs(dx_torch).max())
    settings = {}
    for threads in (1, 2):
        settings[f"rnnkit {threads}t"] = ("rnnkit", threads, ours)
        settings[f"rk-unfold {threads}t"] = ("rk-unfold", threads, reference)
        for name, fn in theirs.items():
            settings[f"{name} {threads}t"] = ("torch", threads, fn)
    times = {k: [] for k in settings}
    cpu = {k: [] for k in settings}
    for threads in (1, 2):  # one thread count at a time: idle pool threads of the other may still spin
        torch.set_num_threads(threads)
        # at 1 thread all the work is on this thread, and its CPU time leaves out any other thread's
        clock = time.thread_time if threads == 1 else time.process_time
        with threadpool_limits(threads):
            for _ in range(args.repeats + 2):  # the first two repeats warm up and are dropped
                for key, (_, n, fn) in settings.items():
                    if n == threads:
                        t0, c0 = time.perf_counter(), clock()
                        fn()
                        times[key].append(time.perf_counter() - t0)
                        cpu[key].append(clock() - c0)
    flops = 3 * 2 * B * T * K * D * C  # forward, dW and dx GEMMs
    from blas_env import blas_line

    print(blas_line())
    print(f"TDNN forward+backward, B={B} T={T} D={D} C={C} K={K}, causal, float32, "
          f"rnnkit: {'winograd' if layer.uses_winograd() else 'unfold'} (auto) and the unfold reference, "
          f"{args.repeats} repeats (torch {torch.__version__}, numpy {np.__version__}); "
          f"max rel. diff of dx vs torch {err:.1e}")
    best, best_cpu = {}, {}
    for key, ts in times.items():
        ts, cs = ts[2:], cpu[key][2:]
        med, med_cpu = statistics.median(ts), statistics.median(cs)
        q = statistics.quantiles(ts, n=4)
        fw, threads = settings[key][:2]
        best[fw] = min(best.get(fw, float("inf")), med)
        if threads == 1:
            best_cpu[fw] = min(best_cpu.get(fw, float("inf")), med_cpu)
        print(f"  {key:14s} median {med * 1e3:7.1f} ms  +- {(q[2] - q[0]) / 2 * 1e3:5.1f}  "
              f"({flops / med / 1e9:5.1f} direct-conv GFLOP/s)   CPU time {med_cpu * 1e3:7.1f} ms")
    for name in ("rnnkit", "rk-unfold"):
        print(f"{name} best / torch best = {best[name] / best['torch']:.2f} wall clock, "
              f"{best_cpu[name] / best_cpu['torch']:.2f} CPU time at 1 thread (< 1: rnnkit faster)")


if __name__ == "__main__":
    main()
