"""``rnnkit sweep``: 4 short text trials on a local Ray (2 CPUs) write one run folder each, results.csv
best first (each value checked against the trial's own metrics.csv) and the best config; bad spaces and a
missing Ray give one clear error."""
import csv
import json
import sys

import pytest

from rnnkit.cli import main
from rnnkit.distributed.sweep import check_space
from rnnkit.errors import UserError

FIXED = ["--set", "steps=20", "--set", "eval_every=5", "--set", "batch_size=4", "--set", "seq_len=12",
         "--set", "embedding_dim=4", "--set", "sample_length=0", "--set", "num_layers=1", "--set", "dropout=0"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text("a stitch in time saves nine; a rolling stone gathers no moss.\n" * 40, encoding="utf-8")
    return p


def test_sweep_runs_four_trials_and_writes_its_table(ray_local, tmp_path, corpus, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"hidden_size": {"choice": [8, 12]}, "lr": {"loguniform": [1e-3, 3e-2]}}))
    out = tmp_path / "sweep"
    assert main(["sweep", "text", str(corpus), "--space", str(space), "--trials", "4", "--out", str(out), *FIXED]) == 0
    printed = capsys.readouterr().out
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    losses = [float(r["val_loss"]) for r in rows]
    assert losses == sorted(losses)
    for r in rows:
        assert int(r["hidden_size"]) in (8, 12) and 1e-3 <= float(r["lr"]) <= 3e-2
        with open(f"{r['run_folder']}/metrics.csv", newline="") as f:  # the trial's own run folder
            vals = [float(m["loss"]) for m in csv.DictReader(f) if m["kind"] == "val"]
        assert float(r["val_loss"]) == pytest.approx(min(vals), rel=1e-9)
        assert int(r["reports"]) == len(vals)
    best = json.loads((out / "best_config.json").read_text())
    assert best["trial"] == rows[0]["trial"] and best["value"] == pytest.approx(losses[0])
    assert best["config"]["hidden_size"] == int(rows[0]["hidden_size"]) and best["config"]["steps"] == 20
    lines = printed.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("rank"))
    assert lines[header + 1].split()[:2] == ["1", rows[0]["trial"]]  # printed best first


def test_bad_spaces_are_refused_with_the_field_named():
    with pytest.raises(UserError, match="'hidden'.*not a setting of text"):
        check_space("text", {"hidden": {"choice": [1, 2]}})
    with pytest.raises(UserError, match="loguniform needs a positive low end"):
        check_space("text", {"lr": {"loguniform": [0, 1]}})
    with pytest.raises(UserError, match="exactly one of"):
        check_space("classify", {"lr": {"normal": [0, 1]}})


def test_sweep_without_ray_exits_2_with_install_hint(monkeypatch, tmp_path, corpus, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", "text", str(corpus), "--trials", "2", "--out", str(tmp_path / "s")]) == 2
    assert 'pip install "rnnkit[ray]"' in capsys.readouterr().err
