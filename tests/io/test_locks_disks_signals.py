"""One writer per run folder, full and read-only disks, umask permissions, Ctrl-C/SIGTERM during saves."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from rnnkit import io, io_lock
from rnnkit.cli import main
from rnnkit.errors import UserError

TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--batch-size", "2", "--seq-len", "8", "--eval-chars", "64",
        "--sample-length", "0", "--no-progress"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 30, encoding="utf-8")
    return path


def _train(corpus, out, steps=6, *extra):
    return main(["text", "train", str(corpus), "--out", str(out), "--steps", str(steps), "--eval-every", "3",
                 *TINY, *extra])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-") or p.name == io_lock.LOCK_NAME) \
        if folder.exists() else []


# -- permissions follow the umask (issue 14) ---------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_permissions(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        ckpt = io.save_checkpoint(tmp_path / "c.safetensors", {"w": np.zeros(3, np.float32)}, {"a": 1})
        js = io.write_json(tmp_path / "config.json", {"a": 1})
    finally:
        os.umask(old)
    assert oct(ckpt.stat().st_mode & 0o777) == oct(mode)
    assert oct(js.stat().st_mode & 0o777) == oct(mode)


# -- locks -------------------------------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_holder_and_the_lock_goes_away(tmp_path):
    with io.RunLock(tmp_path / "run") as lock:
        assert (tmp_path / "run" / io_lock.LOCK_NAME).read_text().split()[0] == str(os.getpid())
        with pytest.raises(UserError, match=rf"in use by process {os.getpid()}\b"):
            io.RunLock(tmp_path / "run").acquire()
        assert lock.stale is None
    assert _leftovers(tmp_path / "run") == []
    io.RunLock(tmp_path / "run").acquire().release()  # free again


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, os, signal; sys.path.insert(0, %r); from rnnkit.io import RunLock; "
            "RunLock(%r).acquire(); os.kill(os.getpid(), signal.SIGKILL)") % (os.getcwd(), str(run))
    child = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert child.returncode == -signal.SIGKILL
    dead = int((run / io_lock.LOCK_NAME).read_text().split()[0])
    with io.RunLock(run) as lock:
        assert lock.stale == dead
    assert _leftovers(run) == []


def test_a_run_folder_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        io.RunLock(f).acquire()


def test_cli_writers_on_a_locked_folder_exit_2_at_once(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert _train(corpus, out) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with io.RunLock(out):
        for argv in (["text", "train", "--resume", str(out), "--steps", "3", "--no-progress"],
                     ["export", str(out), "--format", "torch"],
                     ["memory", "run", "--task", "adding", "--length", "5", "--max-steps", "2", "--out", str(out)]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"in use by process {os.getpid()}" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written while refused


# -- disks ---------------------------------------------------------------------------------------------------
def test_full_disk_is_refused_before_training(tmp_path, corpus, capsys, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(io_lock.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    out = tmp_path / "run"
    assert _train(corpus, out) == 2
    err = capsys.readouterr().err
    assert "MiB free" in err and "checkpoint needs" in err
    assert not out.exists()  # refused before anything was written; the folder it created is gone again


def test_read_only_folder_is_refused_before_training(tmp_path, corpus, capsys, monkeypatch):
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if str(path).endswith(io_lock.LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *a, **k)

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(io_lock.os, "open", ro_open)
    assert _train(corpus, tmp_path / "run") == 2
    assert "not writable (Read-only file system)" in capsys.readouterr().err
    assert list((tmp_path / "run").iterdir()) == []


def _fail_when_writing(monkeypatch, name_part, exc):
    """os.fsync raises ``exc`` for the temporary file of a checkpoint whose name contains ``name_part``."""
    real = os.fsync

    def fsync(fd):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if ".tmp-" in target and name_part in target:
            raise exc
        return real(fd)
    monkeypatch.setattr(io.os, "fsync", fsync)


def test_disk_full_mid_run_stops_with_a_message_keeps_the_last_checkpoint(tmp_path, corpus, capsys, monkeypatch):
    out = tmp_path / "run"
    _fail_when_writing(monkeypatch, "ckpt-00000006", OSError(errno.ENOSPC, "No space left on device"))
    assert _train(corpus, out, 9) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "ckpt-00000006" in err and "No space left on device" in err
    assert _leftovers(out) == [] and not (out / "ckpt-00000006.safetensors").exists()
    monkeypatch.undo()
    tensors, meta = io.load_checkpoint(out / "ckpt-00000003.safetensors")
    assert meta["step"] == 3
    assert main(["text", "train", "--resume", str(out), "--no-progress"]) == 0  # the run continues from step 3
    assert (out / "ckpt-00000009.safetensors").exists()


def test_second_ctrl_c_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path, corpus, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _train(corpus, out, 3) == 0
    before = (out / "ckpt-00000003.safetensors").read_bytes()
    _fail_when_writing(monkeypatch, "ckpt-00000006", KeyboardInterrupt())
    assert main(["text", "train", "--resume", str(out), "--steps", "6", "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _leftovers(out) == [] and not (out / "ckpt-00000006.safetensors").exists()
    assert (out / "ckpt-00000003.safetensors").read_bytes() == before


def test_sigterm_in_a_guarded_command_aborts_like_ctrl_c(tmp_path):
    from rnnkit.commands.interrupt import guarded

    seen = {}

    @guarded
    def command(args, locks):
        seen["out"] = locks.hold(tmp_path / "run")
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
        return 0

    old = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        command(None)
    assert signal.getsignal(signal.SIGTERM) is old
    assert _leftovers(seen["out"]) == []


def test_save_never_writes_what_load_refuses(tmp_path):
    with pytest.raises(UserError, match="lone surrogate"):
        io.save_checkpoint(tmp_path / "c.safetensors", {"w": np.zeros(1)}, {"vocab": "a\ud800"})
    with pytest.raises(UserError, match="nests"):
        io.save_checkpoint(tmp_path / "c.safetensors", {"w": np.zeros(1)}, {"x": eval("[" * 100 + "]" * 100)})
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_memory_run_saves_the_model_and_exits_130(tmp_path, capsys, monkeypatch):
    from rnnkit.tasks import memory as M

    real, calls = M.loss_and_grad, []

    def loss_and_grad(*a):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of training
        return real(*a)

    monkeypatch.setattr(M, "loss_and_grad", loss_and_grad)
    out = tmp_path / "mem"
    old = signal.getsignal(signal.SIGINT)
    assert main(["memory", "run", "--task", "adding", "--length", "6", "--hidden-size", "4", "--max-steps", "1000",
                 "--out", str(out), "--no-progress"]) == 130
    assert signal.getsignal(signal.SIGINT) is old
    assert f"interrupted (SIGINT); model, config.json and metrics.csv saved in {out}" in capsys.readouterr().err
    model, cfg = M.load(out)
    assert cfg.max_steps == 1000 and _leftovers(out) == [] and not (out / "result.json").exists()
    assert 5 <= len(calls) < 50  # stopped after the step, not at the end of the budget


def test_sigterm_during_classify_training_saves_the_networks_so_far(tmp_path, capsys, monkeypatch):
    from rnnkit.tasks import classify_train as CT
    from rnnkit.tasks.classify import SequenceClassifier

    rng = np.random.default_rng(0)
    lines = ["@problemName toy", "@timeStamps false", "@univariate true", "@classLabel true a b", "@data"]
    for i in range(16):
        xs = rng.standard_normal(12) + (i % 2)
        lines.append(",".join(f"{v:.4f}" for v in xs) + f":{'ab'[i % 2]}")
    train = tmp_path / "train.ts"
    train.write_text("\n".join(lines) + "\n")
    real, calls = CT.softmax_cross_entropy, []

    def loss(*a):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler stops the job
        return real(*a)

    monkeypatch.setattr(CT, "softmax_cross_entropy", loss)
    out = tmp_path / "cl"
    assert main(["classify", "train", str(train), "--out", str(out), "--epochs", "10000", "--hidden-size", "4",
                 "--minutes", "5", "--no-plot", "--model", "rnn", "--normalize", "global"]) == 130
    assert f"interrupted (SIGTERM); 1 network(s) saved in {out}" in capsys.readouterr().err
    assert len(SequenceClassifier.load(out / "model.safetensors").nets_) == 1
    assert _leftovers(out) == [] and len(calls) < 200
