"""``rnnkit export`` on tiny trained runs (text, forecast, memory): the files, their numbers against the
loaded run, the README's onnxruntime sampler and PyTorch recipe, and every refusal (exit 2, one line)."""
from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.export.runs import load_run
from tests.export.util import close, run, session

README = Path(__file__).resolve().parents[2] / "README.md"
CORPUS = "ROMEO: to be or not to be, that is the question.\nJULIET: what light through yonder window breaks.\n" * 12
TINY = ["--hidden-size", "12", "--embedding-dim", "4", "--batch-size", "2", "--seq-len", "8",
        "--sample-length", "10", "--steps", "4", "--eval-every", "2", "--no-progress"]


def text_run(tmp_path, cell: str, layers: int = 1) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / f"text-{cell}"
    assert main(["text", "train", str(corpus), "--out", str(out), "--cell", cell, "--num-layers", str(layers),
                 *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    with contextlib.redirect_stdout(io.StringIO()):
        return text_run(tmp_path_factory.mktemp("lstm"), "lstm", layers=2)


def error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit export: error:"), err  # one line, no traceback
    return err[0]


def readme_block(marker: str) -> str:
    """The README's python code block containing ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


# -- text ------------------------------------------------------------------------------------------------
def test_text_run_exports_both_graphs_equal_to_the_run(lstm_run, capsys):
    assert main(["export", str(lstm_run)]) == 0
    folder = lstm_run / "export" / "onnx"
    assert "model.step.onnx" in capsys.readouterr().out
    lm = load_run(lstm_run)
    info = json.loads((folder / "model.json").read_text())
    assert info["chars"] == lm.vocab.chars and info["model"] == "text"
    ids = lm.vocab.encode("ROMEO: to be")[None].astype(np.int64)
    state = lm.model.initial_state(1)
    logits, (h, c) = lm.model.forward(ids, state)
    out = run(session_from(folder / "model.onnx"), ids=ids, h0=state[0], c0=state[1])
    close(out["logits"], logits)
    close(out["hn"], h)
    close(out["cn"], c)


def session_from(path):
    import onnx

    return session(onnx.load(str(path)))


def test_readme_sampler_runs_on_an_exported_run(lstm_run, capsys):
    assert main(["export", str(lstm_run)]) == 0
    capsys.readouterr()
    code = readme_block("model.step.onnx")
    assert len(code.strip().splitlines()) <= 15
    folder = lstm_run / "export" / "onnx"
    code = code.replace('"runs/shakespeare/export/onnx/"', repr(f"{folder}/"))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "README sampler", "exec"), {})
    text = stdout.getvalue().rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == 301
    # replayed through rnnkit's own step with the same Gumbel draws, every sampled character is rnnkit's
    # choice too (unless the top two scores are within float32 noise of each other)
    lm = load_run(lstm_run)
    chars, rng = lm.vocab.chars, np.random.default_rng(0)
    ids, state, checked = [chars.index(c) for c in text], lm.model.initial_state(1), 0
    for t in range(300):
        logits, state = lm.model.step(np.array(ids[t:t + 1]), state)
        if t + 1 >= len("ROMEO:"):
            scores = logits[0] / 0.8 + rng.gumbel(size=len(chars))
            top2 = np.sort(scores)[-2:]
            if top2[1] - top2[0] > 1e-4:
                assert ids[t + 1] == int(np.argmax(scores)), t
                checked += 1
    assert checked > 250


def test_readme_torch_recipe_loads_the_weights(lstm_run, capsys):
    torch = pytest.importorskip("torch")
    assert main(["export", str(lstm_run), "--format", "torch"]) == 0
    capsys.readouterr()
    folder = lstm_run / "export" / "torch"
    code = readme_block("load_file").replace('"runs/shakespeare/export/torch/"', repr(f"{folder}/"))
    scope = {}
    exec(compile(code, "README torch recipe", "exec"), scope)
    lm = load_run(lstm_run)
    ids = lm.vocab.encode("ROMEO:")[None].astype(np.int64)
    logits, (h, c) = lm.model.forward(ids)
    with torch.no_grad():
        close(scope["logits"].numpy(), logits)
        close(scope["state"][0].numpy(), h)
        close(scope["state"][1].numpy(), c)


@pytest.mark.parametrize("cell", ["gru", "jordan"])
def test_gru_and_jordan_text_runs(tmp_path, cell, capsys):
    folder = text_run(tmp_path, cell)
    assert main(["export", str(folder), "--out", str(tmp_path / "x" / "m.onnx")]) == 0
    lm = load_run(folder)
    ids = lm.vocab.encode("JULIET: what")[None].astype(np.int64)
    logits, (s,) = lm.model.forward(ids)
    name = "y" if cell == "jordan" else "h"
    out = run(session_from(tmp_path / "x" / "m.onnx"), ids=ids, **{f"{name}0": lm.model.initial_state(1)[0]})
    close(out["logits"], logits)
    close(out[f"{name}n"], s)
    code = main(["export", str(folder), "--format", "torch"])
    if cell == "jordan":  # PyTorch has no Jordan layer
        assert code == 2 and "PyTorch has no JordanRNN" in error(capsys)
    else:
        assert code == 0


# -- forecast and memory ---------------------------------------------------------------------------------------
def forecast_run(tmp_path, *extra) -> Path:
    t = np.arange(100)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 1, 100)
    data = tmp_path / "m.csv"
    data.write_text("sales\n" + "\n".join(f"{v:.3f}" for v in y) + "\n")
    out = tmp_path / "fc"
    assert main(["forecast", "train", str(data), "--target", "sales", "--horizon", "4", "--epochs", "3",
                 "--hidden-size", "6", "--no-plot", "--out", str(out), *extra]) == 0
    return out


def test_forecast_run_graph_reproduces_predict(tmp_path, capsys):
    folder = forecast_run(tmp_path, "--cell", "lstm")
    assert main(["export", str(folder), "--out", str(tmp_path / "fc.onnx")]) == 0
    model = load_run(folder)
    info = json.loads((tmp_path / "fc.json").read_text())
    s = model.series_[0]
    L = info["lookback"]
    out = run(session_from(tmp_path / "fc.onnx"), history=s.y[-L:][None].astype(np.float32),
              series=np.array([info["series"].index(s.name)]))
    want = model.predict()[s.name]
    for name in ("mean", "lower", "upper"):
        np.testing.assert_allclose(out[name][0], want[name], rtol=1e-5)
    assert main(["export", str(folder), "--format", "torch"]) == 0


def test_forecast_export_takes_the_refit_model_unless_told(tmp_path, capsys):
    from rnnkit.tasks.forecast import Forecaster

    folder = forecast_run(tmp_path)
    assert (folder / "model_refit.safetensors").is_file()
    for flags, name in (([], "model_refit.safetensors"), (["--no-refit"], "model.safetensors")):
        capsys.readouterr()
        target = tmp_path / f"{name}.onnx"
        assert main(["export", str(folder), "--out", str(target), *flags]) == 0
        assert name in capsys.readouterr().out
        model = Forecaster.load(folder / name)
        s = model.series_[0]
        info = json.loads(target.with_suffix(".json").read_text())
        L = info["lookback"]
        out = run(session_from(target), history=s.y[-L:][None].astype(np.float32),
                  series=np.array([info["series"].index(s.name)]))
        np.testing.assert_allclose(out["mean"][0], model.predict()[s.name]["mean"], rtol=1e-5)
    a = json.loads((tmp_path / "model_refit.safetensors.json").read_text())
    b = json.loads((tmp_path / "model.safetensors.json").read_text())
    assert a != b  # the refit's scaler saw every point: the two exports differ


def test_recursive_forecast_run_is_refused(tmp_path, capsys):
    folder = forecast_run(tmp_path, "--strategy", "recursive")
    capsys.readouterr()
    assert main(["export", str(folder)]) == 2
    assert "--strategy direct" in error(capsys)


def test_memory_run_exports_a_masked_model(tmp_path, capsys):
    out = tmp_path / "mem"
    assert main(["memory", "run", "--task", "adding", "--cell", "gru", "--length", "6", "--max-steps", "3",
                 "--eval-every", "3", "--hidden-size", "8", "--batch-size", "4", "--no-progress",
                 "--out", str(out)]) == 0
    assert main(["export", str(out)]) == 0
    model = load_run(out)
    rng = np.random.default_rng(0)
    xs = rng.random((3, 6, 2)).astype(np.float32)
    lengths = np.array([6, 4, 2])
    want = model.forward(xs, mask=np.arange(6)[None] < lengths[:, None])
    close(run(session_from(out / "export" / "onnx" / "model.onnx"), xs=xs, lengths=lengths)["out"], want)


# -- refusals -------------------------------------------------------------------------------------------------
def test_without_onnx_installed_the_install_command_is_printed(lstm_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    assert main(["export", str(lstm_run)]) == 2
    msg = error(capsys)
    assert "pip install 'rnnkit[onnx]'" in msg and "not installed" in msg
    assert main(["export", str(lstm_run), "--format", "torch"]) == 0  # needs no onnx


def test_bad_run_paths(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "does not exist" in error(capsys)
    assert main(["export", str(tmp_path)]) == 2
    assert "holds no checkpoint" in error(capsys)
    from rnnkit.io import save_checkpoint

    save_checkpoint(tmp_path / "model.safetensors", {"w": np.zeros(2, np.float32)}, {"task": "unknown"})
    assert main(["export", str(tmp_path)]) == 2
    assert "does not know" in error(capsys)
