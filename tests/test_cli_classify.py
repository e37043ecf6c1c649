"""``rnnkit classify`` end to end on .ts and CSV files, and every bad-input path: exit 2 and one line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main

UCR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ucr"
FAST = ["--model", "auto", "--epochs", "4", "--hidden-size", "8", "--minutes", "1", "--no-plot"]


def write_ts(path, cases, labels, classes=None, extra_header=""):
    """A small univariate or multivariate .ts file; cases are lists of channels (lists of floats)."""
    classes = classes if classes is not None else sorted(set(labels))
    multi = len(cases[0]) > 1
    lines = ["@problemName toy", "@timeStamps false", "@missing false",
             f"@univariate {'false' if multi else 'true'}", "@equalLength false",
             f"@classLabel true {' '.join(classes)}", extra_header, "@data"]
    for chans, lab in zip(cases, labels):
        lines.append(":".join(",".join(f"{v:.5g}" for v in ch) for ch in chans) + f":{lab}")
    Path(path).write_text("\n".join(line for line in lines if line) + "\n")
    return str(path)


def toy_cases(n, rng, channels=1):
    cases, labels = [], []
    for i in range(n):
        k = i % 2
        L = int(rng.integers(15, 30))
        t = np.arange(L) / 3.0
        base = np.sin(t) if k == 0 else np.sign(np.sin(t))
        cases.append([list(base + 0.1 * rng.standard_normal(L)) for _ in range(channels)])
        labels.append(["up", "down"][k])
    return cases, labels


@pytest.fixture
def toy(tmp_path):
    rng = np.random.default_rng(0)
    tr = write_ts(tmp_path / "train.ts", *toy_cases(24, rng))
    te = write_ts(tmp_path / "test.ts", *toy_cases(10, rng))
    return tr, te


def run_err(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def test_train_predict_evaluate_end_to_end(tmp_path, toy, capsys):
    tr, te = toy
    out = tmp_path / "run"
    assert main(["classify", "train", tr, "--test", te, "--out", str(out), "--model", "auto", "--epochs", "4",
                 "--hidden-size", "8", "--minutes", "1"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "1-NN DTW (full window)" in text and "majority class" in text
    for name in ("model.safetensors", "config.json", "metrics.csv", "report.json", "confusion.png",
                 "learning_curves.png"):
        assert (out / name).is_file(), name
    rep = json.loads((out / "report.json").read_text())
    assert 0.0 <= rep["accuracy"] <= 1.0 and rep["n"] == 10
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 5 * 4 and rows[-1]["val_loss"] != ""  # 5 ensemble members x 4 epochs
    assert sorted({r["member"] for r in rows}) == ["0", "1", "2", "3", "4"]
    assert main(["classify", "predict", str(out), te]) == 0
    pred = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(pred) == 10 and {"case", "predicted", "label", "p_down", "p_up"} <= set(pred[0])
    probs = np.array([[float(r["p_down"]), float(r["p_up"])] for r in pred])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    capsys.readouterr()
    assert main(["classify", "evaluate", str(out), te]) == 0
    assert "balanced accuracy" in capsys.readouterr().out


def test_default_rocket_end_to_end(tmp_path, toy, capsys):
    """The default model: random-TDNN members, one metrics row each, no learning curves; predict and evaluate
    read it back."""
    tr, te = toy
    out = tmp_path / "run"
    assert main(["classify", "train", tr, "--test", te, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "random-TDNN member(s)" in text and "1-NN DTW (full window)" in text
    for name in ("model.safetensors", "config.json", "metrics.csv", "report.json", "confusion.png"):
        assert (out / name).is_file(), name
    assert not (out / "learning_curves.png").exists()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["member"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(0.0 <= float(r["loo_accuracy"]) <= 1.0 and float(r["ridge_alpha"]) > 0 for r in rows)
    rep = json.loads((out / "report.json").read_text())
    assert main(["classify", "predict", str(out), te]) == 0
    pred = list(csv.DictReader(open(out / "predictions.csv")))
    labels = [r["label"] for r in pred]
    assert np.mean([r["predicted"] == lab for r, lab in zip(pred, labels)]) == pytest.approx(rep["accuracy"])
    capsys.readouterr()
    assert main(["classify", "evaluate", str(out), te, "--no-baselines"]) == 0
    assert f"accuracy {rep['accuracy']:.4f}" in capsys.readouterr().out


@pytest.mark.skipif(not (UCR / "UnitTest_TRAIN.ts").exists(), reason="shared UCR data not present")
def test_shared_unittest_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classify", "train", str(UCR / "UnitTest_TRAIN.ts"), "--test", str(UCR / "UnitTest_TEST.ts"),
                 "--out", str(out), *FAST]) == 0
    assert "1-NN Euclidean" in capsys.readouterr().out


def test_csv_one_case_per_row(tmp_path, capsys):
    rng = np.random.default_rng(1)
    cases, labels = toy_cases(20, rng)
    path = tmp_path / "train.csv"
    width = max(len(c[0]) for c in cases)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"t{i}" for i in range(width)] + ["label"])
        for c, lab in zip(cases, labels):
            w.writerow([f"{v:.4f}" for v in c[0]] + [""] * (width - len(c[0])) + [lab])
    assert main(["classify", "train", str(path), "--out", str(tmp_path / "r"), *FAST]) == 0
    assert main(["classify", "predict", str(tmp_path / "r"), str(path)]) == 0


def test_unseen_test_label_is_reported_not_a_crash(tmp_path, toy, capsys):
    tr, _ = toy
    rng = np.random.default_rng(2)
    cases, labels = toy_cases(6, rng)
    labels[0] = "sideways"
    te = write_ts(tmp_path / "odd.ts", cases, labels, classes=["down", "sideways", "up"])
    code, err, out = run_err(["classify", "train", tr, "--test", te, "--out", str(tmp_path / "r"), *FAST,
                              "--no-baselines"], capsys)
    assert code == 0
    assert "never seen in training" in out and "sideways" in err


@pytest.mark.parametrize("content, expect", [
    ("", "empty"),
    ("@problemName x\n@classLabel true a b\n1,2,3:a\n", "@data"),
    ("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n1,x,3:b\n", "not a number"),
    ("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n1,2,3\n", "label"),
    ("@problemName x\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n1,?,3:b\n", "--fill"),
])
def test_bad_ts_files_exit_2_with_one_line(tmp_path, capsys, content, expect):
    path = tmp_path / "bad.ts"
    path.write_text(content)
    code, err, _ = run_err(["classify", "train", str(path), "--out", str(tmp_path / "r"), *FAST], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert expect.lower() in err.lower(), err


def test_fill_option_reads_missing_values(tmp_path, capsys):
    rng = np.random.default_rng(3)
    cases, labels = toy_cases(12, rng)
    path = write_ts(tmp_path / "gaps.ts", cases, labels)
    text = Path(path).read_text().replace(",", ",?,", 1)  # one missing value in the first case
    Path(path).write_text(text)
    code, err, _ = run_err(["classify", "train", path, "--out", str(tmp_path / "r"), *FAST], capsys)
    assert code == 2 and "gaps.ts:8:" in err and "--fill" in err  # file, line and the fix
    assert main(["classify", "train", path, "--out", str(tmp_path / "r"), *FAST, "--fill", "interpolate"]) == 0


def test_other_bad_inputs(tmp_path, toy, capsys):
    tr, te = toy
    rng = np.random.default_rng(4)
    one = write_ts(tmp_path / "one.ts", *toy_cases(4, rng)[:1], labels=["a"] * 4, classes=["a"])
    two_ch = write_ts(tmp_path / "two.ts", *toy_cases(6, rng, channels=2))
    cases = [
        (["classify", "train", str(tmp_path / "missing.ts")], "no such file"),
        (["classify", "train", one, *FAST], "single class"),
        (["classify", "train", tr, "--test", two_ch, "--out", str(tmp_path / "r2"), *FAST], "channel"),
        (["classify", "train", str(tmp_path / "x.txt")], "file"),
        (["classify", "train", tr, "--epochs", "0"], "epochs"),
        (["classify", "train", tr, "--val-size", "1.5"], "--val-size"),
        (["classify", "predict", str(tmp_path), te], "not a classify run folder"),
        (["classify", "evaluate", str(tmp_path / "nope"), te], "not a classify run folder"),
    ]
    (tmp_path / "x.txt").write_text("1,2,3\n")
    for argv, expect in cases:
        code, err, _ = run_err(argv, capsys)
        assert code == 2, argv
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert expect.lower() in err.lower(), (argv, err)


def test_damaged_run_folder(tmp_path, toy, capsys):
    tr, te = toy
    out = tmp_path / "run"
    assert main(["classify", "train", tr, "--out", str(out), *FAST]) == 0
    (out / "model.safetensors").write_bytes(b"\x00" * 20)
    code, err, _ = run_err(["classify", "predict", str(out), te], capsys)
    assert code == 2 and "model.safetensors" in err
    (out / "config.json").write_text("[1, 2")
    code, err, _ = run_err(["classify", "predict", str(out), te], capsys)
    assert code == 2 and "config.json" in err


def test_predict_on_an_unlabelled_csv_keeps_every_time_point(tmp_path, toy, capsys):
    tr, _ = toy
    out = tmp_path / "run"
    assert main(["classify", "train", tr, "--out", str(out), *FAST]) == 0
    path = tmp_path / "new.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"t{i}" for i in range(20)])
        for k in range(3):
            w.writerow([f"{np.sin(i / 3 + k):.4f}" for i in range(20)])
    assert main(["classify", "predict", str(out), str(path)]) == 0
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 3 and "label" not in rows[0]  # no column was taken for a label
    assert "accuracy" not in capsys.readouterr().out


@pytest.mark.parametrize("read", ['"x"', '{"foo": 1}', '{"fill": 3}'])
def test_damaged_config_read_options(tmp_path, toy, capsys, read):
    tr, te = toy
    out = tmp_path / "run"
    assert main(["classify", "train", tr, "--out", str(out), *FAST]) == 0
    conf = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(conf).replace(json.dumps(conf["read"]), read))
    code, err, _ = run_err(["classify", "evaluate", str(out), te], capsys)
    assert code == 2 and "config.json" in err and "Traceback" not in err
