"""Data-parallel text training on Ray: 2 workers equal one process at the same global batch, a resumed
2-worker run equals an uninterrupted one, a killed worker stops the run with its name and leaves a loadable
checkpoint, and without Ray ``--workers 2`` exits 2 with the install command."""
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit import io
from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.tasks import text
from rnnkit.tasks.text_model import build_model

CORPUS = "It was the best of times, it was the worst of times; the age of wisdom, the age of foolishness.\n" * 30
TINY = dict(cell="gru", hidden_size=16, num_layers=1, dropout=0.0, embedding_dim=8, batch_size=8, seq_len=10,
            lr=1e-2, sample_length=0, warmup_steps=3)  # no dropout: its masks are drawn per worker


def max_rel_diff(a, b) -> float:
    """Largest |a - b| of any parameter, relative to that parameter's largest |a|."""
    return max(float(np.max(np.abs(a.params[k] - b.params[k])) / np.max(np.abs(a.params[k]))) for k in a.params)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_two_workers_equal_one_process(ray_local, dtype, tol):
    cfg = text.TextConfig(**TINY, dtype=dtype, steps=20, eval_every=100)
    one = text.train(text=CORPUS, config=cfg, progress=False)
    lines = []
    two = text.train(text=CORPUS, config=text.TextConfig(**TINY, dtype=dtype, steps=20, eval_every=100, workers=2),
                     progress=False, log=lines.append)
    assert any("data-parallel: 2 Ray workers" in l for l in lines)
    init = build_model(one.model.vocab_size, one.model.arch(), rng=np.random.default_rng(0))
    assert max_rel_diff(one.model, init) > 1e-2  # 20 steps moved the weights: the comparison means something
    assert max_rel_diff(one.model, two.model) < tol
    assert two.history.last("train")["loss"] == pytest.approx(one.history.last("train")["loss"], rel=tol * 10)


def test_resume_after_a_stop_equals_uninterrupted(ray_local, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    cfg = text.TextConfig(**{**TINY, "dtype": "float64"}, steps=12, eval_every=4, workers=2)
    seen = {"step": 0}

    class Watch:
        def on_step(self, record):
            seen["step"] = record["step"]

    out = tmp_path / "run"  # stopped after step 8 (as Ctrl-C does), then resumed from the shell
    text.train(str(corpus), cfg, out=out, progress=False, callbacks=[Watch()], stop=lambda: seen["step"] >= 8)
    assert text.load(out, prefer="latest").meta["step"] == 8
    assert main(["text", "train", "--resume", str(out), "--workers", "2", "--no-progress"]) == 0
    assert "data-parallel: 2 Ray workers" in capsys.readouterr().out
    resumed = text.load(out, prefer="latest")
    assert resumed.meta["step"] == 12
    whole = text.train(str(corpus), cfg, out=tmp_path / "whole", progress=False)
    assert max_rel_diff(whole.model, resumed.model) < 1e-12
    # the checkpoint holds the whole batch's carried state, laid out as a one-process run stores it
    a, _ = io.load_checkpoint(io.resolve_checkpoint(out, prefer="latest"))
    b, _ = io.load_checkpoint(io.resolve_checkpoint(tmp_path / "whole", prefer="latest"))
    assert a["state.0"].shape == (1, 8, 16)
    np.testing.assert_allclose(a["state.0"], b["state.0"], rtol=0, atol=1e-12)


def test_killed_worker_stops_with_its_name_and_a_loadable_checkpoint(ray_local, tmp_path):
    lines = []

    class KillWorker1:
        def on_step(self, record):
            if record["step"] == 7:
                pid = int(re.search(r"worker 1 pid (\d+)", "\n".join(lines)).group(1))
                os.kill(pid, signal.SIGKILL)

    out = tmp_path / "run"
    cfg = text.TextConfig(**TINY, steps=30, eval_every=5, workers=2)
    with pytest.raises(UserError) as err:
        text.train(text=CORPUS, config=cfg, out=out, progress=False, log=lines.append, callbacks=[KillWorker1()])
    msg = str(err.value)
    pid = re.search(r"worker 1 pid (\d+)", "\n".join(lines)).group(1)
    assert f"worker 1 of 2 (pid {pid} on " in msg and "died" in msg and "--resume" in msg
    assert "ckpt" in msg  # names the checkpoint left behind
    lm = text.load(out, prefer="latest")
    assert lm.meta["step"] == 5
    assert all(np.isfinite(p).all() for p in lm.model.params.values())


def test_without_ray_workers_exit_2_with_install_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    tiny = ["--hidden-size", "8", "--embedding-dim", "4", "--batch-size", "2", "--seq-len", "8",
            "--sample-length", "0", "--no-progress"]
    code = main(["text", "train", str(corpus), "--out", str(tmp_path / "r"), "--steps", "2", "--workers", "2", *tiny])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "rnnkit[ray]"' in err and "Traceback" not in err
    assert not (tmp_path / "r" / "config.json").exists()
    # everything else still works without Ray
    assert main(["text", "train", str(corpus), "--out", str(tmp_path / "r1"), "--steps", "2", *tiny]) == 0


def test_engine_never_imports_ray():
    root = Path(text.__file__).resolve().parents[1] / "nn"
    hits = [p for p in root.rglob("*.py") if re.search(r"^\s*(import|from)\s+ray\b", p.read_text(), re.M)]
    assert hits == []


def test_unreachable_ray_address_is_refused_at_once():
    from rnnkit.distributed.cluster import _reachable

    with pytest.raises(UserError, match="cannot reach the Ray cluster at --ray-address 127.0.0.1:1"):
        _reachable("127.0.0.1:1")  # nothing listens on port 1
    _reachable("auto")  # left to Ray
