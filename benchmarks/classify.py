"""Sequence-classification quality on the UCR archive files in ../shared/data/ucr (official TRAIN/TEST splits).

For each data set, in one run: rnnkit's default SequenceClassifier (model="rocket": random TDNN features and a
ridge readout; fit on TRAIN only, test used once at the end), rnnkit's trained networks (model="auto": the
combined TDNN+recurrent model or the recurrent one, chosen on a validation split), an ensemble of PyTorch LSTM
classifiers of the same size trained the way those networks are (see torch_lstm: rnnkit's recurrent branch with
an LSTM, the same normalisation, splits, optimiser, early stopping, ensemble size and time budget), and the
baselines majority class, 1-NN Euclidean and 1-NN DTW (full window, and a window learned by
leave-one-out on TRAIN). Test accuracy and fit times are printed as a table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/classify.py [--datasets ACSF1,PLAID]
        [--save benchmarks/results/classify.txt] [--no-nets] [--no-torch] [--no-baselines]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from rnnkit.data.tsfile import read_ts
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.tasks.classify_train import Padded, bucketed_batches, stratified_split

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ucr"
DATASETS = ("UnitTest", "PickupGestureWiimoteZ", "ACSF1", "PLAID")


def torch_lstm(clf: SequenceClassifier, X, y, X_test, threads: int = 1) -> tuple[np.ndarray, float]:
    """(predicted labels for X_test, seconds) from an ensemble of PyTorch LSTM classifiers trained the way
    rnnkit's members are: rnnkit's fitted normalisation, the same validation split per member (same seeds),
    the same recurrent-branch architecture with an LSTM (strided Conv1d front-end, LSTM, mean over valid
    steps, dropout, Linear), Adam, batch size, clipping at 5, early stopping on validation loss with the same
    patience, the best epoch's weights, probabilities averaged; the same time budget in all."""
    import torch
    from torch import nn

    from rnnkit.nn.base import as_rng

    torch.set_num_threads(threads)
    cfg = clf.config
    classes, ys = np.unique(y, return_inverse=True)
    s, C, hidden = clf.stride_, clf.n_inputs_, cfg.hidden_size

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = nn.Conv1d(C, cfg.front_size, 2 * s, stride=s, padding=s) if s > 1 else None
            self.lstm = nn.LSTM(cfg.front_size if s > 1 else C, hidden, batch_first=True)
            self.drop = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(hidden, len(classes))

        def forward(self, xs, lengths):  # xs (B, T, C), zero after each case's end
            h = xs
            if self.front is not None:
                h = self.front(xs.transpose(1, 2)).transpose(1, 2)
                lengths = (lengths + s - 1) // s
                h = h[:, : int(lengths.max())]
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
            mask = (torch.arange(out.shape[1])[None, :] < lengths[:, None]).float()
            return self.head(self.drop((out * mask[..., None]).sum(1) / lengths[:, None].float()))

    data = Padded([clf._normalize(c) for c in X])
    test = Padded([clf._normalize(c) for c in X_test])
    yt = torch.from_numpy(ys)
    loss_fn = nn.CrossEntropyLoss()

    def logits(net, d, idx):
        net.eval()
        with torch.no_grad():
            out = []
            for a in range(0, len(idx), 64):
                rows = idx[a: a + 64]
                xs, _ = d.batch(rows)
                out.append(net(torch.from_numpy(xs), torch.from_numpy(d.lengths[rows])))
        net.train()
        return torch.cat(out)

    seeds = as_rng(cfg.random_state).integers(0, 2**31, size=cfg.n_estimators)  # rnnkit's member seeds
    t0 = time.perf_counter()
    probs = np.zeros((len(test), len(classes)))
    for k, seed in enumerate(seeds):
        train_idx, val_idx = stratified_split(ys, cfg.val_size, as_rng(int(seed)))
        rng = as_rng(int(seed) + 1)
        torch.manual_seed(int(seed))
        net = Net()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        deadline = time.perf_counter() + 60 * (cfg.max_minutes - (time.perf_counter() - t0) / 60) / (len(seeds) - k)
        best, best_state, bad = math.inf, None, 0
        for _epoch in range(cfg.epochs):
            for rows in bucketed_batches(data.lengths[train_idx], min(cfg.batch_size, len(train_idx)), rng):
                rows = train_idx[rows]
                xs, _ = data.batch(rows)
                opt.zero_grad()
                loss = loss_fn(net(torch.from_numpy(xs), torch.from_numpy(data.lengths[rows])), yt[rows])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
            val = float(loss_fn(logits(net, data, val_idx), yt[val_idx]))
            if val < best:
                best, bad = val, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
            if bad >= cfg.patience or time.perf_counter() > deadline:
                break
        net.load_state_dict(best_state)
        probs += torch.softmax(logits(net, test, np.arange(len(test))), 1).double().numpy()
    return classes[probs.argmax(1)], time.perf_counter() - t0


BASELINES = (("majority", "majority"), ("1nn_euclidean", "1-NN ED"), ("1nn_dtw_full", "1-NN DTW"),
             ("1nn_dtw_learned", "DTW learned w"))


def table(results: dict) -> list[str]:
    """The results as text rows: test accuracy and fit seconds, the baselines (the learned DTW window in %)."""
    head = (f"{'data set':<22} {'train/test':>10} {'rnnkit':>7} {'fit s':>6} {'nets':>7} {'fit s':>6} "
            f"{'torch LSTM':>10} {'fit s':>6}")
    head += "".join(f" {label:>14}" for _, label in BASELINES) + "  nets' choice"
    lines = [head]
    for name, r in results.items():
        nan = float("nan")
        line = (f"{name:<22} {r['n_train']:>4}/{r['n_test']:<5} {r['rnnkit']:>7.4f} {r['rnnkit_s']:>6.0f} "
                f"{r.get('nets', nan):>7.4f} {r.get('nets_s', nan):>6.0f} "
                f"{r.get('torch_lstm', nan):>10.4f} {r.get('torch_lstm_s', nan):>6.0f}")
        d = r.get("baseline_details", {})
        for key, _ in BASELINES:
            cell = f"{d[key]['accuracy']:.4f}" if key in d else "-"
            if key == "1nn_dtw_learned" and key in d:
                cell += f" ({d[key]['window']:.0%})"
            line += f" {cell:>14}"
        lines.append(line + f"  {r.get('choice', '')}")
    if len(results) > 1:
        mean = lambda k: np.mean([r.get(k, np.nan) for r in results.values()])  # noqa: E731
        lines.append(f"{'mean':<22} {'':>10} {mean('rnnkit'):>7.4f} {'':>6} {mean('nets'):>7.4f} {'':>6} "
                     f"{mean('torch_lstm'):>10.4f}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-nets", action="store_true", help="skip rnnkit's trained networks and the PyTorch LSTM")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1, help="PyTorch's intra-op threads (rnnkit runs one "
                                                                 "BLAS thread, as the CLI does)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--save", help="also write the table (and a JSON beside it) here")
    args = ap.parse_args(argv)
    from blas_env import blas_line

    lines = [blas_line(), ""]
    print(lines[0], flush=True)
    results = {}
    for name in args.datasets.split(","):
        X, y = read_ts(Path(args.data) / f"{name}_TRAIN.ts")
        Xt, yt = read_ts(Path(args.data) / f"{name}_TEST.ts")
        row = {"n_train": len(X), "n_test": len(Xt), "classes": len(set(y.tolist())),
               "length": f"{min(c.shape[1] for c in X)}-{max(c.shape[1] for c in X)}"}
        clf = SequenceClassifier(random_state=args.seed).fit(X, y)  # the default, exactly as users call it
        row["rnnkit"], row["rnnkit_s"] = clf.score(Xt, yt), clf.fit_seconds_
        print(f"{name}: rnnkit (default, {clf.model_}) {row['rnnkit']:.4f} in {clf.fit_seconds_:.0f} s", flush=True)
        if not args.no_nets:
            clf = SequenceClassifier(model="auto", random_state=args.seed).fit(X, y)
            row["nets"], row["nets_s"] = clf.score(Xt, yt), clf.fit_seconds_
            row["choice"] = f"{clf.model_}/{clf.normalize_}"
            print(f"{name}: rnnkit trained networks {row['nets']:.4f} in {clf.fit_seconds_:.0f} s ({row['choice']})",
                  flush=True)
        if not args.no_nets and not args.no_torch:
            pred, secs = torch_lstm(clf, X, y, Xt, args.torch_threads)
            row["torch_lstm"], row["torch_lstm_s"] = float(np.mean(pred == yt)), secs
            print(f"{name}: torch LSTM {row['torch_lstm']:.4f} in {secs:.0f} s", flush=True)
        if not args.no_baselines:
            from rnnkit.tasks.classify_baselines import baseline_report
            from rnnkit.tasks.classify_eval import baseline_accuracies

            rep = baseline_report(X, y, Xt, yt)
            row["baselines"] = baseline_accuracies(rep)
            row["baseline_details"] = rep
            print(f"{name}: baselines {row['baselines']}", flush=True)
        results[name] = row
    lines.extend(table(results))
    text = "\n".join(lines)
    print("\n" + text)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n" + text + "\n")
        Path(args.save).with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
