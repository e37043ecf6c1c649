"""Speed of rnnkit against PyTorch on a char-model training step and on one-character generation.

Same process run, same shapes, same dtype (float32): embedding -> recurrent layer -> linear -> softmax
cross-entropy -> backward -> global-norm clip (5.0) -> Adam, at B=32, T=100, V=65, E=64, and generation at
batch 1, one character at a time (embedding, step, linear, softmax, sample). PyTorch runs with 1 and 2
intra-op threads; rnnkit strictly on one thread, on one BLAS thread plus its background gradient thread, and
on two BLAS threads. Each framework is credited with its best setting; rnnkit's one-thread figure is printed
too. Printed: tokens/s (median over
steps), their ratio, the machine's float32 GEMM rate measured in this run and the fraction of it the
training step reaches, and the peak memory of a training step (each framework in a fresh subprocess).

    python benchmarks/rnn_speed.py                 # the full table (~10 minutes on 2 cores)
    python benchmarks/rnn_speed.py --cells lstm --hidden 256 --steps 5   # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

B, T, V, E = 32, 100, 65, 64
GATES = {"lstm": 4, "gru": 3, "elman": 1}


# -- rnnkit ---------------------------------------------------------------------------------------------
def rnnkit_model(cell, H, seed=0):
    from rnnkit.nn.layers import Dense, Embedding
    from rnnkit.nn.optim import Adam
    from rnnkit.nn.recurrent import GRU, LSTM, ElmanRNN

    rng = np.random.default_rng(seed)
    emb = Embedding(V, E, rng=rng)
    rnn = {"lstm": LSTM, "gru": GRU, "elman": ElmanRNN}[cell](E, H, rng=rng)
    head = Dense(H, V, rng=rng)
    params = {**{f"emb.{k}": v for k, v in emb.params.items()}, **{f"rnn.{k}": v for k, v in rnn.params.items()},
              **{f"head.{k}": v for k, v in head.params.items()}}
    grads = {**{f"emb.{k}": v for k, v in emb.grads.items()}, **{f"rnn.{k}": v for k, v in rnn.grads.items()},
             **{f"head.{k}": v for k, v in head.grads.items()}}
    return emb, rnn, head, params, grads, Adam(params, lr=2e-3)


def rnnkit_train_step_fn(cell, H):
    from rnnkit.nn.losses import softmax_cross_entropy
    from rnnkit.nn.optim import clip_grad_norm

    emb, rnn, head, params, grads, opt = rnnkit_model(cell, H)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, (B, T + 1))
    state = [None]

    def step():
        for g in grads.values():
            g.fill(0)
        x = emb.forward(ids[:, :-1])
        hs, st = rnn.forward(x, state[0], training=True)
        logits = head.forward(hs)
        loss, dlogits = softmax_cross_entropy(logits, ids[:, 1:])
        dx, _ = rnn.backward(head.backward(dlogits))
        emb.backward(dx)
        clip_grad_norm(grads, 5.0)
        opt.step(grads)
        state[0] = st  # carried across batches, as in char-rnn training
        return loss

    return step


def rnnkit_generate_fn(cell, H, n):
    emb, rnn, head, *_ = rnnkit_model(cell, H)
    rng = np.random.default_rng(2)
    table = emb.params["W"] @ rnn.params["l0.W_x"]  # the first layer's input projection of every character
    W, b = head.params["W"], head.params["b"]

    def generate():
        state, c = None, 0
        for _ in range(n):
            h, state = rnn.step(table[c:c + 1], state, projected=True)
            z = h @ W
            z += b
            p = np.exp(z - z.max())
            c = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))
            c = min(c, V - 1)
        return c

    return generate


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


def torch_generate_fn(cell, H, n):
    import torch

    emb, rnn, head, *_ = torch_model(cell, H)
    g = torch.Generator().manual_seed(2)

    def generate():
        with torch.inference_mode():
            state, c = None, torch.zeros((1, 1), dtype=torch.long)
            for _ in range(n):
                h, state = rnn(emb(c), state)
                p = torch.softmax(head(h[:, -1]), dim=-1)
                c = torch.multinomial(p, 1, generator=g)
        return c

    return generate


# -- timing ---------------------------------------------------------------------------------------------
def set_threads(framework, n):
    if framework == "torch":
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


SETTINGS = {  # name -> (BLAS/intra-op threads, rnnkit's background gradient thread on)
    "torch": {"1": (1, None), "2": (2, None)},
    "rnnkit": {"1 core": (1, False), "1+bg": (1, True), "2+bg": (2, True)},
}


def best_over_threads(framework, make_fn, repeats):
    """(best seconds per call, name of the best setting, {setting: seconds}).

    rnnkit's settings: "1 core" is strictly one thread; "+bg" lets the BPTT weight-gradient GEMMs run on a
    background thread (the second core) while the reverse loop runs; "2" gives BLAS two threads."""
    from rnnkit.nn.recurrent.core import Core

    results = {}
    for name, (n, background) in SETTINGS[framework].items():
        if background is not None:
            Core.overlap = background
        with set_threads(framework, n):
            results[name] = median_time(make_fn(), repeats)
    Core.overlap = True
    best = min(results, key=results.get)
    return results[best], best, results


def gemm_rate(threads, n=1024, repeats=7):
    """float32 GEMM FLOP/s of this machine, now (n x n times n x n, median)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    with threadpool_limits(limits=threads):
        return 2 * n ** 3 / median_time(lambda: a @ b, repeats)


def flops_per_token(cell, H):
    """Training FLOPs per token from the shapes: the GEMMs of forward (x and h projections, head) times 3
    (forward + two backward GEMMs per forward GEMM)."""
    G = GATES[cell]
    return 3 * (2 * (E + H) * G * H + 2 * H * V)


# -- peak memory, each framework alone in a fresh process ----------------------------------------------------
def peak_memory_child(framework, cell, H, steps):
    """Runs in a subprocess: build, one warm-up step, reset the peak-RSS counter, run steps, report the peak
    resident memory above the level before the steps (MiB)."""
    make = rnnkit_train_step_fn if framework == "rnnkit" else torch_train_step_fn
    with set_threads(framework, 1):
        step = make(cell, H)
        step()
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
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        fw, cell, H, steps = args.memory_child
        return peak_memory_child(fw, cell, int(H), int(steps))

    import torch

    rates = {n: gemm_rate(n) for n in (1, 2)}
    print(f"rnnkit speed benchmark: B={B} T={T} V={V} E={E}, float32; numpy {np.__version__}, torch {torch.__version__}")
    print(f"machine float32 GEMM (1024^3, median): 1 thread {rates[1] / 1e9:.1f} GFLOP/s, "
          f"2 threads {rates[2] / 1e9:.1f} GFLOP/s")
    print()
    head = (f"{'cell':5} {'H':>4} | {'train tok/s rnnkit':>18} {'1 core':>7} {'torch':>8} {'ratio':>6} {'%GEMM':>6} | "
            f"{'gen char/s rnnkit':>17} {'torch':>7} {'ratio':>6}" + ("" if args.no_memory else
                                                                         f" | {'peak MiB rnnkit':>15} {'torch':>6}"))
    print(head)
    print("-" * len(head))
    rows = []
    for cell in args.cells:
        for H in args.hidden:
            r_s, r_thr, r_all = best_over_threads("rnnkit", lambda: rnnkit_train_step_fn(cell, H), args.steps)
            t_s, t_thr, _ = best_over_threads("torch", lambda: torch_train_step_fn(cell, H), args.steps)
            r_tok, t_tok = B * T / r_s, B * T / t_s
            frac = r_tok * flops_per_token(cell, H) / rates[SETTINGS["rnnkit"][r_thr][0]]
            one_core = B * T / r_all["1 core"]
            r_g, _, _ = best_over_threads("rnnkit", lambda: rnnkit_generate_fn(cell, H, args.chars), 5)
            t_g, _, _ = best_over_threads("torch", lambda: torch_generate_fn(cell, H, args.chars), 5)
            r_cps, t_cps = args.chars / r_g, args.chars / t_g
            row = dict(cell=cell, H=H, train_rnnkit=r_tok, train_torch=t_tok, train_ratio=r_tok / t_tok,
                       train_rnnkit_one_core=one_core,
                       threads_rnnkit=r_thr, threads_torch=t_thr, gemm_fraction=frac,
                       gen_rnnkit=r_cps, gen_torch=t_cps, gen_ratio=r_cps / t_cps)
            line = (f"{cell:5} {H:>4} | {r_tok:>18,.0f} {one_core:>7,.0f} {t_tok:>8,.0f} {r_tok / t_tok:>5.2f}x "
                    f"{100 * frac:>5.1f}% | "
                    f"{r_cps:>17,.0f} {t_cps:>7,.0f} {r_cps / t_cps:>5.1f}x")
            if not args.no_memory:
                row["mem_rnnkit"] = peak_memory("rnnkit", cell, H)
                row["mem_torch"] = peak_memory("torch", cell, H)
                line += f" | {row['mem_rnnkit']:>15.1f} {row['mem_torch']:>6.1f}"
            print(line, flush=True)
            rows.append(row)
    print()
    print("best setting (threads; +bg = background gradient thread): " + ", ".join(
        f"{r['cell']}/{r['H']}: rnnkit {r['threads_rnnkit']}, torch {r['threads_torch']}" for r in rows))
    print("'1 core' is rnnkit strictly on one thread; %GEMM is the best setting's FLOP rate over the GEMM rate "
          "measured above for its BLAS thread count.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm_gflops": {k: v / 1e9 for k, v in rates.items()}, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
