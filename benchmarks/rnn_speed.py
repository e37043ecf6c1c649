"""Speed of rnnkit against PyTorch on a char-model training step and on one-character generation.

Same process run, same shapes, same dtype (float32): embedding -> recurrent layer -> linear -> softmax
cross-entropy -> backward -> global-norm clip (5.0) -> Adam, at B=32, T=100, V=65, E=64; and generation at
batch 1, one character at a time (embedding, one step, linear, softmax, sample), PyTorch through its
one-step modules (``nn.LSTMCell``, ``GRUCell``, ``RNNCell``). PyTorch runs with 1 and 2 intra-op threads,
rnnkit with ``threads=1`` and ``threads=2`` on its layers and as many BLAS threads around them, as
``rnnkit --threads N`` runs (2: for the LSTM and GRU a team of two threads sharing the hidden units, for
Elman the background thread and one BLAS thread). The calls of all settings of both frameworks are
interleaved, repeat by repeat, so that a change in the machine's load hits them alike; each framework is
credited with its best setting (median), and the spread (half the interquartile range) is printed. Also
printed: the fraction of the machine's GEMM rate at the step's own shapes that the step reaches, the
roofline (the step's counted FLOPs at the machine's GEMM peak, ``--peak`` or measured: the best ratio to
PyTorch physically possible here, and whether the 1.5x target is within it), and the peak memory of a
training step, each framework alone in a fresh subprocess.

    python benchmarks/rnn_speed.py                       # the full table, as users run it (~15 min)
    python benchmarks/rnn_speed.py --as-set              # the same under this machine's OpenBLAS variables
    python benchmarks/rnn_speed.py --cells lstm --hidden 512 --steps 5 --no-memory

Where ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` is set (this project's machine sets both) it forces
NumPy's OpenBLAS onto an older kernel, and PyTorch is not affected; users do not have them. So the script
starts itself again without them unless given ``--as-set``. The first lines printed name the kernel
OpenBLAS runs (threadpoolctl's 'architecture') and the variables; the last lines the targets of issue 13.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import os

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from rnn_speed_model import B, E, GATES, T, V, gemm_fn, print_targets, roofline, step_flops  # noqa: F401

FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # force OpenBLAS's kernel where set; users have neither


# -- rnnkit ---------------------------------------------------------------------------------------------
def rnnkit_train_step_fn(cell, H):
    """The text task's model and step: CharRNN (embedding, layer, linear; its projected-embedding input),
    softmax cross-entropy, backward, clip, Adam. ``step.model.rnn.threads`` is set per call."""
    from rnnkit.nn.losses import softmax_cross_entropy
    from rnnkit.nn.optim import Adam, clip_grad_norm
    from rnnkit.tasks.text_model import CharRNN

    model = CharRNN(V, cell, H, 1, E, rng=0)
    opt = Adam(model.params, lr=2e-3)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, (B, T + 1))
    state = [None]

    def step():
        model.zero_grad()
        logits, st = model.forward(ids[:, :-1], state[0], training=True)
        loss, dlogits = softmax_cross_entropy(logits, ids[:, 1:])
        model.backward(dlogits)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        state[0] = st  # carried across batches, as in char-rnn training
        return loss

    step.model = model
    return step


def rnnkit_generate_fn(cell, H, n):
    """What users run: the text task's sampler (``rnnkit.tasks.text_sampling.generate``) on a CharRNN."""
    from rnnkit.data.text import CharVocab
    from rnnkit.tasks.text_model import CharRNN, LanguageModel
    from rnnkit.tasks.text_sampling import generate

    vocab = CharVocab("".join(chr(c) for c in range(33, 33 + V)))
    lm = LanguageModel(CharRNN(V, cell, H, 1, E, rng=0), vocab)

    def run():
        return generate(lm, prime="", length=n, temperature=1.0, seed=2)

    return run


# -- PyTorch --------------------------------------------------------------------------------------------
def torch_model(cell, H):
    import torch

    torch.manual_seed(0)
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[cell]
    emb, rnn, head = torch.nn.Embedding(V, E), rnn_cls(E, H, batch_first=True), torch.nn.Linear(H, V)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    return emb, rnn, head, params, torch.optim.Adam(params, lr=2e-3)


def torch_train_step_fn(cell, H):
    import torch

    emb, rnn, head, params, opt = torch_model(cell, H)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T + 1), generator=g)
    state = [None]
    for p in params:  # Adam's moments and the gradients exist from the start, as rnnkit's do
        p.grad = torch.zeros_like(p)
    opt.step()

    def step():
        opt.zero_grad(set_to_none=False)
        hs, st = rnn(emb(ids[:, :-1]), state[0])
        loss = torch.nn.functional.cross_entropy(head(hs).reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state[0] = tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach()
        return loss.item()

    return step


def torch_generate_fn(cell, H, n, module="layer"):
    """PyTorch's generation loop: embedding, one step, linear, softmax, multinomial. ``module="layer"`` steps
    the sequence module (``nn.LSTM`` on length 1, as the issue specifies); ``"cell"`` its one-step module
    (``nn.LSTMCell``), PyTorch's fastest way to take one step."""
    import torch

    torch.manual_seed(0)
    emb, head = torch.nn.Embedding(V, E), torch.nn.Linear(H, V)
    kind = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN"}[cell]
    rnn = getattr(torch.nn, kind + ("Cell" if module == "cell" else ""))(E, H)
    g = torch.Generator().manual_seed(2)

    def generate():
        with torch.inference_mode():
            state, c = None, torch.zeros(1, dtype=torch.long)
            for _ in range(n):
                if module == "cell":
                    state = rnn(emb(c), state)
                    h = state[0] if isinstance(state, tuple) else state
                else:
                    h, state = rnn(emb(c)[None], state)
                    h = h[0]
                p = torch.softmax(head(h), dim=-1)
                c = torch.multinomial(p, 1, generator=g)[:, 0]
        return c

    return generate


# -- timing ---------------------------------------------------------------------------------------------
def set_threads(framework, n):
    if framework.startswith("torch"):
        import torch

        torch.set_num_threads(n)
        return threadpool_limits(limits=n)
    return threadpool_limits(limits=n)


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


SETTINGS = {  # framework -> name -> threads: PyTorch's intra-op threads, rnnkit's threads= (layers and BLAS)
    "torch": {"1": 1, "2": 2},
    "torch_cell": {"1": 1, "2": 2},
    "rnnkit": {"1": 1, "2": 2},
    "gemm": {"1": 1, "2": 2},
}


def time_interleaved(fns, repeats, warmup=2):
    """fns: {framework: fn}. Every setting of every framework, one call each per repeat, in turn.

    Returns {framework: {setting: (median seconds, half interquartile range)}}."""
    def call(framework, setting, fn):
        n = SETTINGS[framework][setting]
        if hasattr(fn, "model"):  # rnnkit's training step: the one thread setting of its layer
            fn.model.rnn.threads = n
        with set_threads(framework, n):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

    plan = [(fw, setting, fn) for fw, fn in fns.items() for setting in SETTINGS[fw]]
    for _ in range(warmup):
        for item in plan:
            call(*item)
    times = {(fw, setting): [] for fw, setting, _ in plan}
    for _ in range(repeats):
        for item in plan:
            times[item[:2]].append(call(*item))
    out = {fw: {} for fw in fns}
    for (fw, setting), ts in times.items():
        q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (ts[0],) * 3
        out[fw][setting] = (statistics.median(ts), (q3 - q1) / 2)
    return out


def best(results):
    """(setting, median seconds, half-IQR) of the fastest setting."""
    setting = min(results, key=lambda k: results[k][0])
    return (setting, *results[setting])


def gemm_rate(threads, n=1024, repeats=7):
    """float32 GEMM FLOP/s of this machine, now (n x n times n x n, median)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    with threadpool_limits(limits=threads):
        return 2 * n ** 3 / median_time(lambda: a @ b, repeats)


def blas_report() -> dict:
    """The BLAS libraries loaded (NumPy's and PyTorch's), their kernels and thread counts, and the two
    environment variables that can force OpenBLAS's kernel."""
    libs = [dict(api=d.get("internal_api"), version=d.get("version"), kernel=d.get("architecture"),
                 threads=d.get("num_threads"), path=d.get("filepath"))
            for d in threadpool_info() if d.get("user_api") == "blas"]
    env = {k: os.environ.get(k) for k in FORCING}
    return dict(libraries=libs, env=env)


def print_blas_report(report: dict) -> None:
    for lib in report["libraries"]:
        path = lib["path"] or ""
        owner = "numpy" if "numpy" in path else "torch" if "torch" in path else "other"
        print(f"BLAS ({owner}): {lib['api']} {lib['version']}, kernel {lib['kernel']}, {lib['threads']} threads")
    env = report["env"]
    print("environment: " + ", ".join(f"{k}={'unset' if v is None else v}" for k, v in env.items())
          + ("" if all(v is None for v in env.values()) else
             "  <- set: OpenBLAS's kernel is forced; users do not have this. For their numbers run "
             "python benchmarks/rnn_speed.py without --as-set"))


# -- peak memory, each framework alone in a fresh process ----------------------------------------------------
def peak_memory_child(framework, cell, H, steps):
    """Runs in a subprocess: build the model, its gradients and the optimizer's state, reset the peak-RSS
    counter, run the steps, report the peak resident memory above the level before the first step (MiB):
    what a training step needs beyond the model itself, rnnkit's work buffers (kept between steps) and
    PyTorch's saved activations (freed after each backward) alike."""
    make = rnnkit_train_step_fn if framework == "rnnkit" else torch_train_step_fn
    with set_threads(framework, 1):
        step = make(cell, H)
        if framework == "rnnkit":
            step.model.rnn.threads = 1
        with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
            f.write("5")
        base = _status_kib("VmRSS")
        for _ in range(steps):
            step()
        peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - base) / 1024}))


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_memory(framework, cell, H, steps=3):
    out = subprocess.run([sys.executable, __file__, "--memory-child", framework, cell, str(H), str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "elman"], choices=list(GATES))
    ap.add_argument("--hidden", nargs="+", type=int, default=[128, 256, 512])
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per setting (median)")
    ap.add_argument("--chars", type=int, default=300, help="characters per timed generation run")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--peak", type=float, metavar="GFLOPS", help="the GEMM rate the roofline assumes (default: "
                    "measured now, the better of 1 and 2 threads; on a busy machine that is far below what the "
                    "machine can do, so pass the quiet figure, e.g. 187)")
    ap.add_argument("--as-set", action="store_true", help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as the "
                    "environment sets them (by default the benchmark runs without them, as users do)")
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        fw, cell, H, steps = args.memory_child
        return peak_memory_child(fw, cell, int(H), int(steps))

    import torch

    forced = [k for k in FORCING if k in os.environ]
    if forced and not args.as_set:  # OpenBLAS reads them at load time: start again without them
        print(f"rnn_speed: running without {' and '.join(forced)} (the user's BLAS); --as-set keeps them",
              flush=True)
        env = {k: v for k, v in os.environ.items() if k not in FORCING}
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)
    rates = {n: gemm_rate(n) for n in (1, 2)}
    blas = blas_report()
    print(f"rnnkit speed benchmark: B={B} T={T} V={V} E={E}, float32; numpy {np.__version__}, torch {torch.__version__}")
    print_blas_report(blas)
    print(f"machine float32 GEMM (1024^3, median): 1 thread {rates[1] / 1e9:.1f} GFLOP/s, "
          f"2 threads {rates[2] / 1e9:.1f} GFLOP/s")
    peak = args.peak * 1e9 if args.peak else max(rates.values())
    print(f"roofline ('max') at {peak / 1e9:.1f} GFLOP/s ({'given, --peak' if args.peak else 'measured now'})")
    print()
    head = (f"{'cell':5} {'H':>4} | {'tok/s rnnkit':>15} {'1 core':>7} {'torch':>13} {'ratio':>6} {'max':>6} "
            f"{'%GEMM':>6} | "
            f"{'gen rnnkit':>10} {'nn.LSTM':>7} {'ratio':>6} {'  Cell':>7} {'ratio':>6}" + ("" if args.no_memory else
                                                                         f" | {'peak MiB rnnkit':>15} {'torch':>6}"))
    print(head)
    print("-" * len(head))
    rows = []
    for cell in args.cells:
        for H in args.hidden:
            train = time_interleaved({"rnnkit": rnnkit_train_step_fn(cell, H), "torch": torch_train_step_fn(cell, H),
                                      "gemm": gemm_fn(cell, H)}, args.steps)
            gen = time_interleaved({"rnnkit": rnnkit_generate_fn(cell, H, args.chars),
                                    "torch": torch_generate_fn(cell, H, args.chars),
                                    "torch_cell": torch_generate_fn(cell, H, args.chars, "cell")}, 5)
            r_set, r_s, r_spread = best(train["rnnkit"])
            t_set, t_s, t_spread = best(train["torch"])
            r_tok, t_tok, one_core = B * T / r_s, B * T / t_s, B * T / train["rnnkit"]["1"][0]
            frac = best(train["gemm"])[1] / r_s  # the machine's GEMM time at these shapes, best thread count
            bound = roofline(cell, H, t_s, peak)  # PyTorch's time over the step's FLOPs at the peak
            g_r, g_t, g_c = best(gen["rnnkit"]), best(gen["torch"]), best(gen["torch_cell"])
            r_cps, t_cps, c_cps = args.chars / g_r[1], args.chars / g_t[1], args.chars / g_c[1]
            row = dict(cell=cell, H=H, train_rnnkit=r_tok, train_torch=t_tok, train_ratio=r_tok / t_tok,
                       train_rnnkit_one_core=one_core, spread_rnnkit=r_spread / r_s, spread_torch=t_spread / t_s,
                       threads_rnnkit=r_set, threads_torch=t_set, gemm_fraction=frac,
                       step_gflop=step_flops(cell, H) / 1e9, gflops_rnnkit=step_flops(cell, H) / r_s / 1e9,
                       roofline_ratio=bound,
                       gen_rnnkit=r_cps, gen_torch=t_cps, gen_ratio=r_cps / t_cps,
                       gen_torch_cell=c_cps, gen_ratio_cell=r_cps / c_cps,
                       gen_threads_rnnkit=g_r[0], gen_threads_torch=g_t[0])
            line = (f"{cell:5} {H:>4} | {r_tok:>10,.0f} ±{100 * r_spread / r_s:>2.0f}% {one_core:>7,.0f} "
                    f"{t_tok:>8,.0f} ±{100 * t_spread / t_s:>2.0f}% {r_tok / t_tok:>5.2f}x {bound:>5.2f}x "
                    f"{100 * frac:>5.1f}% | "
                    f"{r_cps:>10,.0f} {t_cps:>7,.0f} {r_cps / t_cps:>5.1f}x {c_cps:>7,.0f} {r_cps / c_cps:>5.1f}x")
            if not args.no_memory:
                row["mem_rnnkit"] = peak_memory("rnnkit", cell, H)
                row["mem_torch"] = peak_memory("torch", cell, H)
                line += f" | {row['mem_rnnkit']:>15.1f} {row['mem_torch']:>6.1f}"
            print(line, flush=True)
            rows.append(row)
    print()
    print("best setting (threads): " + ", ".join(
        f"{r['cell']}/{r['H']}: rnnkit {r['threads_rnnkit']}, torch {r['threads_torch']}" for r in rows))
    print("'1 core' is rnnkit with threads=1; ± is half the interquartile range over the repeats; %GEMM is the time "
          "the step's GEMMs take as plain whole-batch NumPy GEMMs (timed among the steps, best of 1 and 2 threads) "
          "over rnnkit's step time; 'max' is the roofline, the ratio to PyTorch a step would reach if its counted "
          "FLOPs (forward 2*G*H*(E+H) + 2*H*V per token, backward twice that) all ran at the 1024^3 "
          "GEMM rate ('roofline' above); "
          "'Cell' is PyTorch's one-step module (nn.LSTMCell...), the generation target's baseline.")
    print("The machine is shared (other jobs run on its 2 cores): figures are medians of interleaved calls and "
          "the ratios matter more than the absolute rates.")
    print()
    print_targets(rows, peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm_gflops": {k: v / 1e9 for k, v in rates.items()}, "blas": blas, "rows": rows}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
