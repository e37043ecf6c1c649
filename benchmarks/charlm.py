"""Character language model quality in a fixed wall-clock budget: rnnkit's defaults against PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/charlm.py [../shared/data/tinyshakespeare.txt]
        [--minutes 10] [--save results/charlm.txt]
    python benchmarks/charlm.py --skip-torch --steps 4900 --set num_layers=1 dropout=0.1   # a fixed-step trial

Every run sees nanoGPT's split of tiny-shakespeare (first 90% train, last 10% validation), the same batches
(char-rnn streams, state carried across chunks), the same Adam + warm-up + cosine schedule whose horizon
follows the time budget, clipping at 5.0, and the same number of evaluations of the full validation split
inside the budget. Trained one after the other in this process, ``--minutes`` of wall time each: rnnkit
with its default settings; the same model in PyTorch (same initial weights, ported from rnnkit); and, with
``--also-torch`` (default: lstm), PyTorch models of the same sizes with other cells, so that rnnkit's
default cell is also measured against PyTorch's fastest CPU recurrent layer (its LSTM runs on oneDNN's
fused kernel). PyTorch runs at its faster thread count (1 or 2, measured first). The final losses are
computed by the same code (rnnkit's ``evaluate``, PyTorch's weights ported back) and compared. ``--steps N``
trains rnnkit alone for N steps instead (schedule over N steps, 10 evaluations): the machine-independent way
to compare candidate defaults when other work shares the CPU.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rnnkit.data.text import CharVocab, StreamBatcher, eval_streams, read_texts, split_ids  # noqa: E402
from rnnkit.nn.optim import CosineWarmupLR  # noqa: E402
from rnnkit.tasks import text  # noqa: E402
from rnnkit.tasks.text_model import build_model  # noqa: E402


class Tee:
    """Print to stdout and keep a copy for the results file."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, msg: str = "") -> None:
        print(msg, flush=True)
        self.lines.append(msg)


TARGET = 1.47  # nats/char on the validation split: nanoGPT's character-level GPU result on tiny Shakespeare

# -- PyTorch: the same model, batches, schedule and budget ---------------------------------------------
TORCH_CELLS = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN"}  # rnnkit cell -> torch.nn class name


def curves_from_report(lines) -> dict[str, list[tuple[float, float]]]:
    """{model: [(minutes, validation loss), ...]} from the lines this script prints (or saved)."""
    curves, model = {}, None
    for line in lines:
        if line.startswith("## rnnkit"):
            model = "rnnkit"
        elif line.startswith("## PyTorch"):
            model = "PyTorch " + line.split()[3]  # "## PyTorch 2.13.0+cpu gru (...)"
        found = re.match(r"\s+(rnnkit|torch) step\s+\d+ \|\s+([\d.]+) min \| val ([\d.]+)", line)
        if found and model:
            curves.setdefault(model, []).append((float(found.group(2)), float(found.group(3))))
    return curves


def plot_report(lines, path, cell: str) -> None:
    """Validation loss against minutes for every model of a report, with the 1.50 target."""
    from rnnkit.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for model, pts in curves_from_report(lines).items():
        name = f"rnnkit {cell}" if model == "rnnkit" else model
        ax.plot([m for m, _ in pts], [v for _, v in pts], "o-", lw=1.5, ms=4, label=f"{name}: {pts[-1][1]:.4f}")
    ax.axhline(TARGET, color="grey", ls="--", lw=1, label=f"target {TARGET} (nanoGPT's GPU result)")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("tiny Shakespeare, same wall time on 2 cores")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def torch_model(lm0, cfg):
    import torch
    import torch.nn as nn

    V = len(lm0.vocab)
    emb = nn.Embedding(V, cfg.embedding_dim)
    rnn = getattr(nn, TORCH_CELLS[lm0.model.cell])(cfg.embedding_dim, cfg.hidden_size, cfg.num_layers, batch_first=True, dropout=cfg.dropout)
    head = nn.Linear(cfg.hidden_size, V)
    m = lm0.model
    with torch.no_grad():  # start from rnnkit's initial weights
        emb.weight.copy_(torch.from_numpy(m.params["embed.W"]))
        for k, v in m.rnn.torch_state_dict().items():
            getattr(rnn, k).copy_(torch.from_numpy(v))
        head.weight.copy_(torch.from_numpy(m.params["head.W"].T.copy()))
        head.bias.copy_(torch.from_numpy(m.params["head.b"]))
    return emb, rnn, head


def port_back(lm, emb, rnn, head) -> None:
    """Copy PyTorch weights into the rnnkit model ``lm`` so both are scored by the same code."""
    m = lm.model
    m.params["embed.W"][...] = emb.weight.detach().numpy()
    m.rnn.load_torch_state_dict({k: v.detach() for k, v in rnn.state_dict().items()})
    m.params["head.W"][...] = head.weight.detach().numpy().T
    m.params["head.b"][...] = head.bias.detach().numpy()
    m._table = None


def torch_val_loss(emb, rnn, head, val_ids, streams=32, burn_in=256, chunk=256) -> float:
    """Full-split loss with the layout of rnnkit's ``evaluate`` (for the learning-curve points)."""
    import torch
    import torch.nn.functional as F

    xs, ys, burn = eval_streams(val_ids, streams, burn_in)
    xs, ys = torch.from_numpy(xs.astype(np.int64)), torch.from_numpy(ys.astype(np.int64))
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        if burn:
            _, state = rnn(emb(xs[:, :burn]))
            state = tuple(s.clone() for s in state) if isinstance(state, tuple) else (state.clone(),)
            for s in state:
                s[:, 0] = 0
            state = state if len(state) > 1 else state[0]
        for t0 in range(burn, xs.shape[1], chunk):
            out, state = rnn(emb(xs[:, t0:t0 + chunk]), state)
            y = ys[:, t0:t0 + chunk].reshape(-1)
            logits = head(out).reshape(len(y), -1)
            total += float(F.cross_entropy(logits, y, ignore_index=-1, reduction="sum"))
            count += int((y >= 0).sum())
    return total / count


def torch_train(lm0, cfg, train_ids, val_ids, minutes: float, threads: int, log):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    emb, rnn, head = torch_model(lm0, cfg)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batcher = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len)
    schedule = CosineWarmupLR(cfg.lr, cfg.warmup_steps, 10**9, min_lr=cfg.min_lr)
    budget, interval = minutes * 60.0, 60.0 * cfg.eval_minutes
    curve, state, step = [], None, 0
    t0 = time.perf_counter()
    next_eval = interval
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= budget:
            break
        if step >= 3:  # the same horizon rule as rnnkit's TimeHorizon
            schedule.total_steps = max(step + 1, int(step + (budget - elapsed) * step / elapsed))
        xs, ys, reset = batcher.batch(step)
        if reset:
            state = None
        for g in opt.param_groups:
            g["lr"] = schedule(step)
        out, state = rnn(emb(torch.from_numpy(xs)), state)
        state = _detach(state)
        out = F.dropout(out, p=cfg.dropout, training=True)  # as rnnkit's CharRNN: dropout before the output layer
        loss = F.cross_entropy(head(out).reshape(-1, len(lm0.vocab)), torch.from_numpy(ys).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        step += 1
        if time.perf_counter() - t0 >= next_eval:
            emb.eval(), rnn.eval(), head.eval()
            v = torch_val_loss(emb, rnn, head, val_ids)
            emb.train(), rnn.train(), head.train()
            m = (time.perf_counter() - t0) / 60
            curve.append((m, step, v))
            log(f"  torch step {step:>5} | {m:5.2f} min | val {v:.4f} nats/char")
            next_eval += interval
    return (emb, rnn, head), step, curve


def pick_torch_threads(lm0, cfg, train_ids, log) -> int:
    """Time a few training steps at 1 and 2 threads; keep the faster (2 cores shared with other work)."""
    import torch
    import torch.nn.functional as F

    times = {}
    batcher = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len)
    for n in (1, 2):
        torch.set_num_threads(n)
        emb, rnn, head = torch_model(lm0, cfg)
        params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=1e-4)
        spent = []
        for step in range(4):
            xs, ys, _ = batcher.batch(step)
            t = time.perf_counter()
            out, _ = rnn(emb(torch.from_numpy(xs)))
            loss = F.cross_entropy(head(out).reshape(-1, len(lm0.vocab)), torch.from_numpy(ys).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            spent.append(time.perf_counter() - t)
        times[n] = float(np.median(spent[1:]))
    best = min(times, key=times.get)
    log(f"PyTorch threads: 1 -> {times[1] * 1000:.0f} ms/step, 2 -> {times[2] * 1000:.0f} ms/step; using {best}")
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", nargs="?", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each model (default 10)")
    p.add_argument("--eval-minutes", type=float, default=2.0,
                   help="minutes between full-validation evaluations, inside each budget (default 2)")
    p.add_argument("--skip-torch", action="store_true", help="train only rnnkit (for quick trials)")
    p.add_argument("--steps", type=int, help="train rnnkit alone for this many steps instead of --minutes")
    p.add_argument("--also-torch", nargs="*", default=["lstm"], metavar="CELL",
                   help="PyTorch cells trained besides the one rnnkit uses, same sizes (default: lstm)")
    p.add_argument("--save", help="also write the printed report to this file")
    p.add_argument("--keep-model", help="write the trained rnnkit model to this checkpoint file")
    p.add_argument("--plot", help="also write the learning curves (validation loss vs minutes) to this PNG")
    p.add_argument("--plot-from", metavar="REPORT", help="only draw --plot from a saved report, no training")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override TextConfig fields (trials)")
    args = p.parse_args(argv)
    if args.plot_from:
        if not args.plot:
            p.error("--plot-from needs --plot PNG")
        lines = Path(args.plot_from).read_text(encoding="utf-8").splitlines()
        cell = re.search(r"config: (\w+) ", "\n".join(lines)).group(1)
        plot_report(lines, args.plot, cell)
        return 0
    log = Tee()

    corpus, _ = read_texts([args.path])
    cfg = text.TextConfig(minutes=args.minutes, eval_chars=None, eval_minutes=args.eval_minutes, sample_length=0,
                          val_fraction=0.1)
    if args.steps:
        cfg.steps, cfg.minutes, cfg.eval_minutes, args.skip_torch = args.steps, None, None, True
    for kv in args.set:
        k, v = kv.split("=", 1)
        setattr(cfg, k, type(getattr(cfg, k))(v) if getattr(cfg, k) is not None else float(v))
    vocab = CharVocab.from_text(corpus)
    ids = vocab.encode(corpus)
    train_ids, val_ids = split_ids(ids, cfg.val_fraction)
    from blas_env import blas_line

    log(blas_line())
    log(f"# charlm benchmark: {Path(args.path).name}, {len(ids):,} chars, vocab {len(vocab)}; "
        f"train {len(train_ids):,} / validation {len(val_ids):,} (nanoGPT split)")
    log(f"config: {cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embedding {cfg.embedding_dim}, batch "
        f"{cfg.batch_size}x{cfg.seq_len}, Adam lr {cfg.lr:g} warm-up {cfg.warmup_steps} cosine to {cfg.min_lr:g} "
        f"over the budget, clip {cfg.clip}, dropout {cfg.dropout}; budget "
        f"{f'{args.steps} steps' if args.steps else f'{args.minutes:g} min each'}; "
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")

    # -- rnnkit --------------------------------------------------------------------------------------
    log("\n## rnnkit (numpy, 1 BLAS thread: the CLI's default)")
    t = time.perf_counter()
    # no run folder: checkpoints and plots would cost rnnkit time that the PyTorch loop does not spend;
    # the thread limit is the command layer's job (rnnkit --threads), so the benchmark sets it as the CLI does
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        lm = text.train(text=corpus, config=cfg, out=None, progress=False, log=lambda m: None)
    wall = time.perf_counter() - t
    curve = [(float(r["minutes"]), int(r["step"]), float(r["loss"])) for r in lm.rows if r["kind"] == "val"]
    for m, s, v in curve:
        log(f"  rnnkit step {s:>5} | {m:5.2f} min | val {v:.4f} nats/char")
    if args.keep_model:  # the trained rnnkit model, loadable with rnnkit.tasks.text.load
        from rnnkit import io
        from rnnkit.tasks.text_model import model_tensors

        io.save_checkpoint(args.keep_model, model_tensors(lm.model),
                           {"kind": "rnnkit-text", "arch": lm.model.arch(), "vocab": lm.vocab.chars,
                            "config": cfg.to_dict(), "step": lm.meta["step"]})
    ours = text.evaluate(lm, val_ids)
    best_step, best = lm.meta["best_step"], lm.meta["best_val_loss"]
    log(f"rnnkit: {lm.meta['step']} steps ({lm.meta['step'] * cfg.batch_size * cfg.seq_len / len(train_ids):.2f} "
        f"epochs) in {wall / 60:.2f} min; full validation loss {ours['loss']:.4f} nats/char "
        f"({ours['bits_per_char']:.4f} bits/char); best evaluation {best:.4f} at step {best_step}")

    # -- PyTorch -------------------------------------------------------------------------------------
    theirs = {}
    cells = [] if args.skip_torch else [cfg.cell] + [c for c in args.also_torch if c != cfg.cell]
    unknown = [c for c in cells if c not in TORCH_CELLS]
    if unknown:
        raise SystemExit(f"PyTorch has no layer to compare with {unknown}; known: {list(TORCH_CELLS)}")
    for cell in cells:
        import torch

        what = "same model" if cell == cfg.cell else f"the same sizes with nn.{TORCH_CELLS[cell]}"
        log(f"\n## PyTorch {torch.__version__} {cell} ({what}, init, batches, schedule)")
        arch = dict(cfg.arch(), cell=cell)
        from rnnkit.tasks.text_model import LanguageModel

        lm0 = LanguageModel(build_model(len(lm.vocab), arch, rng=np.random.default_rng(cfg.seed)), lm.vocab)
        threads = pick_torch_threads(lm0, cfg, train_ids, log)
        torch.manual_seed(cfg.seed)
        t = time.perf_counter()
        (emb, rnn, head), steps, tcurve = torch_train(lm0, cfg, train_ids, val_ids, args.minutes, threads, log)
        wall = time.perf_counter() - t
        port_back(lm0, emb, rnn, head)
        theirs[cell] = text.evaluate(lm0, val_ids)
        native = torch_val_loss(emb.eval(), rnn.eval(), head.eval(), val_ids)
        log(f"PyTorch {cell}: {steps} steps ({steps * cfg.batch_size * cfg.seq_len / len(train_ids):.2f} epochs) "
            f"in {wall / 60:.2f} min; full validation loss {theirs[cell]['loss']:.4f} nats/char "
            f"({theirs[cell]['bits_per_char']:.4f} bits/char; PyTorch's own evaluation: {native:.4f})")

    # -- summary -------------------------------------------------------------------------------------
    log("\n## result (full validation split, nats per character; lower is better)")
    log(f"rnnkit {cfg.cell:5s} {ours['loss']:.4f}   target <= {TARGET}: {'met' if ours['loss'] <= TARGET else 'NOT met'}")
    for cell, res in theirs.items():
        verdict = "rnnkit lower" if ours["loss"] < res["loss"] else "PyTorch lower"
        log(f"PyTorch {cell:5s} {res['loss']:.4f}   ({verdict}, difference {res['loss'] - ours['loss']:+.4f})")
    log(f"load average at the end: {os.getloadavg()[0]:.2f}")
    log("\n## sample from the rnnkit model (prime 'ROMEO:', temperature 0.8, seed 0)")
    sample = text.generate(lm, prime="ROMEO:", length=600, temperature=0.8, seed=0)[0]
    log("ROMEO:" + sample)
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text("\n".join(log.lines) + "\n", encoding="utf-8")
    if args.plot:
        plot_report(log.lines, args.plot, cfg.cell)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
