"""Checkpoints: round trip, validation on load, atomic writes under a crash, keep-last-N and best."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rnnkit import io
from rnnkit.errors import UserError


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "embed.W": rng.standard_normal((5, 3)).astype(np.float32),
        "rnn.l0.W_h": rng.standard_normal((4, 16)),  # float64
        "data.ids": np.arange(7, dtype=np.uint8),
    }


def test_roundtrip_keeps_names_shapes_dtypes_values_and_meta(tmp_path):
    t = _tensors()
    meta = {"step": 12, "vocab": "ab\u00e9\U0001f642", "rng": {"state": 2**127 + 5}, "lr": 1e-3}
    path = io.save_checkpoint(tmp_path / "c.safetensors", t, meta)
    got, got_meta = io.load_checkpoint(path, expected=t)
    assert got_meta == meta and io.read_meta(path) == meta
    for k, v in t.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    # expected may also be (shape, dtype) pairs
    io.load_checkpoint(path, expected={k: (v.shape, v.dtype) for k, v in t.items()})


def test_file_is_plain_safetensors_with_json_metadata(tmp_path):
    from safetensors.numpy import load_file
    from safetensors import safe_open

    path = io.save_checkpoint(tmp_path / "c.safetensors", _tensors(), {"a": [1, 2]})
    assert set(load_file(path)) == set(_tensors())
    with safe_open(path, framework="np") as f:
        info = f.metadata()
    assert info["format"] == io.FORMAT and json.loads(info["meta"]) == {"a": [1, 2]}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.pop("embed.W"), r"unexpected tensors \['embed.W'\]"),
        (lambda e: e.update(extra=np.zeros(1)), r"missing tensors \['extra'\]"),
        (lambda e: e.update({"embed.W": np.zeros((5, 4), np.float32)}), r"'embed.W' has shape \(5, 3\).*\(5, 4\)"),
        (lambda e: e.update({"embed.W": np.zeros((5, 3), np.float64)}), r"'embed.W' has dtype float32.*float64"),
    ],
)
def test_mismatch_against_expected_is_a_user_error(tmp_path, change, message):
    t = _tensors()
    path = io.save_checkpoint(tmp_path / "c.safetensors", t, {})
    expected = dict(t)
    change(expected)
    with pytest.raises(UserError, match=message):
        io.load_checkpoint(path, expected=expected)


def test_non_finite_values_are_refused_on_load_and_never_saved(tmp_path):
    from safetensors.numpy import save

    t = _tensors()
    t["rnn.l0.W_h"][1, 2] = np.nan
    with pytest.raises(UserError, match=r"cannot save.*'rnn.l0.W_h' holds NaN"):
        io.save_checkpoint(tmp_path / "c.safetensors", t, {})
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "c.safetensors"  # written by another tool: the loader still refuses it
    path.write_bytes(save(t, metadata={"format": io.FORMAT, "version": "1", "meta": "{}"}))
    with pytest.raises(UserError, match=r"non-finite.*rnn.l0.W_h"):
        io.load_checkpoint(path)
    io.load_checkpoint(path, check_finite=False)


def test_missing_truncated_garbage_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        io.load_checkpoint(tmp_path / "nope.safetensors")
    path = io.save_checkpoint(tmp_path / "c.safetensors", _tensors(), {"x": 1})
    data = path.read_bytes()
    for i, broken in enumerate([data[: len(data) // 2], data[:5], b"", b"\xff" * 64]):
        p = tmp_path / f"broken{i}.safetensors"
        p.write_bytes(broken)
        with pytest.raises(UserError, match="corrupt or truncated"):
            io.load_checkpoint(p)
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(UserError, match="not an rnnkit checkpoint"):
        io.load_checkpoint(tmp_path / "foreign.safetensors")


def test_failed_replace_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    io.save_checkpoint(path, _tensors(0), {"v": "old"})

    def crash(src, dst):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(io.os, "replace", crash)
    with pytest.raises(UserError, match="cannot write .*simulated"):
        io.save_checkpoint(path, _tensors(1), {"v": "new"})
    monkeypatch.undo()
    tensors, meta = io.load_checkpoint(path)
    assert meta == {"v": "old"} and np.array_equal(tensors["embed.W"], _tensors(0)["embed.W"])
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_process_killed_while_writing_leaves_loadable_checkpoint(tmp_path):
    """A writer SIGKILLed in the middle of its write: the old file is intact, the stale temp is cleaned."""
    path = tmp_path / "run" / "ckpt-00000001.safetensors"
    io.save_checkpoint(path, _tensors(0), {"v": "old"})
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from rnnkit import io
        real_fsync = os.fsync
        def die(fd):  # data written to the temp file, not yet renamed: the worst moment
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        io.save_checkpoint({str(path)!r}, {{"embed.W": np.ones((5, 3), np.float32)}}, {{"v": "new"}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers  # the killed writer left its temp file behind...
    _, meta = io.load_checkpoint(path)
    assert meta == {"v": "old"}  # ...but the checkpoint is the previous complete one
    io.CheckpointManager(path.parent)  # opening the run folder removes stale temp files
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_manager_keeps_last_n_and_best(tmp_path):
    mgr = io.CheckpointManager(tmp_path, keep_last=2)
    metrics = [3.0, 2.0, 2.5, 2.2, 1.9, 2.1]
    for step, m in enumerate(metrics, start=1):
        mgr.save(step * 10, _tensors(step), {"note": step}, metric=m)
    assert [p.name for p in mgr.checkpoints()] == ["ckpt-00000050.safetensors", "ckpt-00000060.safetensors"]
    assert mgr.latest().name == "ckpt-00000060.safetensors"
    best_meta = io.read_meta(mgr.best())
    assert best_meta["step"] == 50 and best_meta["metric"] == 1.9
    # the best so far survives a restart, so a worse metric does not overwrite best.safetensors
    mgr2 = io.CheckpointManager(tmp_path, keep_last=2)
    assert mgr2.best_metric == 1.9
    mgr2.save(70, _tensors(7), {}, metric=2.0)
    assert io.read_meta(mgr2.best())["step"] == 50
    assert io.resolve_checkpoint(tmp_path) == tmp_path / "ckpt-00000070.safetensors"
    assert io.resolve_checkpoint(tmp_path, prefer="best") == tmp_path / "best.safetensors"


def test_resolve_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        io.resolve_checkpoint(tmp_path / "nothing")
    with pytest.raises(UserError, match="holds no checkpoint"):
        io.resolve_checkpoint(tmp_path)


def test_write_json_is_atomic_and_readable(tmp_path):
    p = io.write_json(tmp_path / "config.json", {"b": 1, "a": [1.5]})
    assert json.loads(p.read_text()) == {"a": [1.5], "b": 1}
    assert os.listdir(tmp_path) == ["config.json"]


def test_a_fifo_where_a_checkpoint_belongs_is_refused_at_once(tmp_path):
    import os
    import subprocess
    import sys

    fifo = tmp_path / "best.safetensors"
    os.mkfifo(fifo)
    code = ("import sys\nfrom rnnkit.io import load_checkpoint\nfrom rnnkit.errors import UserError\n"
            f"try:\n    load_checkpoint({str(fifo)!r})\nexcept UserError as e:\n    print(e)\n    sys.exit(3)\n")
    # in a child with a timeout: before the check, opening the FIFO blocked for ever
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "not a regular file" in done.stdout
