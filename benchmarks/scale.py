"""Data-parallel scaling of text training on Ray: the default text model (GRU 384, embedding 64, batch 32
streams x 64 characters, float32) with 1 and 2 workers at the same global batch, against one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/scale.py [--steps 40] \
        [--save benchmarks/results/scale.txt]

Measured here (one node): steps/s and tokens/s; per step, the slowest worker's compute and the exchange (the
driver's wall time in train_step minus that compute, plus publishing the update); the efficiency
speed-up / N against one process. Then a stated model for 4, 16 and 64 workers from the measured compute per
batch size and the measured exchange; its multi-node part (network transfer) is an assumption, not measured.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from threadpoolctl import threadpool_limits  # noqa: E402

import rnnkit.distributed.driver as driver  # noqa: E402
from rnnkit.nn.losses import softmax_cross_entropy  # noqa: E402
from rnnkit.nn.optim import Adam, clip_grad_norm  # noqa: E402
from rnnkit.tasks import text  # noqa: E402
from rnnkit.tasks.text_model import build_model  # noqa: E402

NET_GBPS = 10.0  # assumed driver link for the multi-node model (10 GbE); NOT measured


def environment() -> list[str]:
    from blas_env import blas_line

    load = os.getloadavg()
    return [blas_line(),
            f"cores: {os.cpu_count()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start (other "
            "jobs on the machine slow every figure below; compare runs at similar loads)."]


class Spy(driver.TextGroup):
    """The real TextGroup, remembered so the benchmark can read its exchange counters."""
    last = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Spy.last = self


class Mark:
    """Copies the group's counters after the warm-up steps, so only steady steps are counted."""

    def __init__(self, warmup: int):
        self.warmup, self.at = warmup, None

    def on_step(self, record):
        if record["step"] == self.warmup and Spy.last is not None:
            self.at = dict(Spy.last.stats)


def run(workers: int | None, steps: int, warmup: int) -> dict:
    """One training run through text.train; workers None: one process, no Ray."""
    cfg = text.TextConfig(steps=warmup + steps, eval_every=10**6, eval_chars=2000, sample_length=0,
                          workers=workers or 1, ray_address="bench" if workers else None)
    # (ray_address: with Ray already initialised in this process it is only a switch to use the workers,
    # so that 1 worker also goes through Ray)
    mark = Mark(warmup)
    Spy.last = None
    lm = text.train(None, cfg, progress=False, callbacks=[mark])
    recs = [r for r in lm.history.train if r["step"] > warmup]
    seconds = sum(10 / r["steps_per_s"] for r in recs)  # log_every=10 inside text.train
    n = 10 * len(recs)
    out = {"steps_per_s": n / seconds, "tokens_per_s": n * cfg.batch_size * cfg.seq_len / seconds,
           "params": lm.model.num_params(), "itemsize": lm.model.dtype.itemsize}
    if workers:
        s, a = Spy.last.stats, mark.at
        k = s["steps"] - a["steps"]
        out["compute_ms"] = 1e3 * (s["compute"] - a["compute"]) / k
        out["exchange_ms"] = 1e3 * ((s["wall"] - a["wall"]) - (s["compute"] - a["compute"]) + (s["put"] - a["put"])) / k
    return out


def compute_ms(sizes=(32, 16, 8, 2), reps: int = 12) -> dict:
    """Forward + backward of the default model on B streams x 64 characters, one thread, for each B in
    ``sizes``: repetitions interleaved across the sizes (a load change hits them all), the minimum of each
    (on a shared machine the least disturbed repetition is the best estimate of the work), then the least-
    squares line a + b B through those minima, which the model uses."""
    cfg = text.TextConfig()
    rng = np.random.default_rng(0)
    model = build_model(100, cfg.arch(), rng=rng)
    model.rnn.threads = 1
    data = {B: (rng.integers(0, 100, (B, cfg.seq_len)), rng.integers(0, 100, (B, cfg.seq_len))) for B in sizes}
    best = {B: float("inf") for B in sizes}
    for rep in range(reps + 1):
        for B in sizes:
            xs, ys = data[B]
            t = time.perf_counter()
            model.zero_grad()
            logits, _ = model.forward(xs, None, training=True)
            _, d = softmax_cross_entropy(logits, ys)
            model.backward(d)
            if rep:  # the first round warms the buffers
                best[B] = min(best[B], 1e3 * (time.perf_counter() - t))
    slope, icept = np.polyfit(np.array(sizes, float), np.array([best[B] for B in sizes]), 1)
    return {"min": best, "line": (max(icept, 0.0), slope)}


def update_ms(reps: int = 8) -> float:
    """Clip + Adam step of the default model (what the driver does once per step at any N), minimum."""
    model = build_model(100, text.TextConfig().arch(), rng=0)
    opt = Adam(model.params, lr=1e-3)
    for g in model.grads.values():
        g[...] = 1e-3
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        times.append(time.perf_counter() - t)
    return 1e3 * min(times[1:])


def gather_ms(ray, size: int, reps: int = 8) -> float:
    """One gradient more on one node: fetch a worker's flat float32 gradient from the object store and add it
    into the weighted sum (minimum over ``reps``)."""
    g = np.full(size, 1e-3, np.float32)
    acc = np.zeros_like(g)
    times = []
    for _ in range(reps + 1):
        ref = ray.put(g)
        t = time.perf_counter()
        acc += ray.get(ref) * 0.5
        times.append(time.perf_counter() - t)
    return 1e3 * min(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="measured steps per run (after 10 warm-up steps)")
    ap.add_argument("--save", help="also write the report to this file")
    args = ap.parse_args()
    import ray

    command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scale.py " + " ".join(sys.argv[1:])
    lines = [f"command: {command}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", *environment()]
    say = lambda s="": (print(s, flush=True), lines.append(s))  # noqa: E731
    for l in lines:
        print(l, flush=True)
    driver_TextGroup = driver.TextGroup
    driver.TextGroup = Spy
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with threadpool_limits(limits=1):  # as the CLI runs (rnnkit --threads 1); each worker also sets 1
            one = run(None, args.steps, 10)
            r1 = run(1, args.steps, 10)
            r2 = run(2, args.steps, 10)
            work = compute_ms()
            u = update_ms()
            ew = gather_ms(ray, one["params"])
    finally:
        ray.shutdown()
        driver.TextGroup = driver_TextGroup
    P, item = one["params"], one["itemsize"]
    mb = P * item / 1e6
    say()
    say(f"default text model: {P:,} parameters, float32: {mb:.2f} MB per gradient; global batch 32 x 64 = 2,048 "
        f"characters per step; {args.steps} steps measured after 10 warm-up steps")
    say(f"{'run':<22}{'steps/s':>9}{'tokens/s':>10}{'compute ms':>12}{'exchange ms':>13}{'efficiency':>12}")
    base = one["steps_per_s"]
    for name, r, n in (("1 process (no Ray)", one, 1), ("Ray, 1 worker", r1, 1), ("Ray, 2 workers", r2, 2)):
        eff = r["steps_per_s"] / (n * base)
        ms = [f"{r[k]:.1f}" if k in r else "-" for k in ("compute_ms", "exchange_ms")]
        say(f"{name:<22}{r['steps_per_s']:>9.2f}{r['tokens_per_s']:>10,.0f}{ms[0]:>12}{ms[1]:>13}{eff:>12.0%}")
    say("efficiency = steps/s with N workers / (N x steps/s of one process), same global batch")
    say()
    a0, a1 = work["line"]
    c = {B: a0 + a1 * B for B in (32, 16, 8, 2)}
    say("work per step, one thread, minimum of 12 interleaved repetitions (ms): forward+backward of "
        + ", ".join(f"{B} streams {v:.1f}" for B, v in work["min"].items())
        + f" -> line {a0:.1f} + {a1:.2f} x streams; clip + Adam {u:.1f}; one more gradient gathered and summed "
        f"on the driver {ew:.1f}")
    # the model: T(N) = compute(32/N streams) + update + exchange(N)
    t1 = c[32] + u                        # one process, ms per step, by the same measure
    e1 = r1["exchange_ms"]
    efix = max(0.0, e1 - ew)              # call latency and the update's publication, paid once per step
    net = lambda n: 2 * n * P * item / (NET_GBPS * 1e9 / 8) * 1e3  # noqa: E731  (n gradients in, n reads out)
    say()
    say("model (stated, from the work figures): ms per step T(N) = compute(streams per worker, from the line) + update "
        "+ exchange(N),")
    say(f"  exchange(N) on one node = {efix:.1f} + N x {ew:.1f} ms (the 1-worker exchange measured above, less one "
        "gather, plus one gather per worker); efficiency = T(1 process) / (N x T(N)) with T(1 process) = "
        f"compute(32) + update = {t1:.1f} ms")
    say(f"  across nodes add 2 N x {mb:.2f} MB through the driver's link at an ASSUMED {NET_GBPS:g} Gb/s "
        f"({net(1):.1f} ms per worker): NOT measured, there is no second machine here")
    say("  strong scaling keeps the global batch of 32 streams (so at most 32 workers); weak scaling gives each "
        "worker 16 streams (global batch 16 N) against one process at 16 streams")
    say(f"{'workers':>8}{'streams each':>14}{'one node: T ms':>16}{'eff.':>7}{'multi-node: T ms':>18}{'eff.':>7}"
        f"{'weak, multi-node eff.':>23}")
    comp = {1: c[32], 2: c[16], 4: c[8], 16: c[2]}
    t16 = c[16] + u
    for n in (2, 4, 16, 64):
        ex = efix + n * ew
        weak = t16 / (t16 + ex + net(n))
        if n in comp:
            tl, tm = comp[n] + u + ex, comp[n] + u + ex + net(n)
            say(f"{n:>8}{32 // n:>14}{tl:>16.1f}{t1 / (n * tl):>7.0%}{tm:>18.1f}{t1 / (n * tm):>7.0%}{weak:>23.0%}")
        else:
            say(f"{n:>8}{'(32 < 64)':>14}{'-':>16}{'-':>7}{'-':>18}{'-':>7}{weak:>23.0%}")
    say("(all rows are the model, not measurements: the N = 2 row is there to compare with the measured run above; "
        "a node with 4 to 64 free cores, and any second node, are hypothetical on this 2-core machine)")
    say(f"load average at the end: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.save:
        Path(args.save).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
