"""``rnnkit forecast`` end to end, and every bad-input path: exit status 2 and a one-line message."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rnnkit.cli import main

FAST = ["--epochs", "5", "--hidden-size", "8"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.fixture
def monthly(tmp_path):
    t = np.arange(120)
    rng = np.random.default_rng(0)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 120)
    rows = [(f"{1990 + k // 12}-{k % 12 + 1:02d}", f"{v:.3f}", k % 12) for k, v in enumerate(y)]
    return write_csv(tmp_path / "m.csv", ["month", "sales", "moy"], rows)


def run_err(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_train_predict_backtest_end_to_end(tmp_path, monthly, capsys):
    out = tmp_path / "run"
    assert main(["forecast", "train", monthly, "--target", "sales", "--time", "month", "--horizon", "6",
                 "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "seasonal_naive" in printed and "window_mlp" in printed
    for name in ("model.safetensors", "config.json", "metrics.json", "metrics.csv", "forecast.png",
                 "forecast.csv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("model", "naive", "seasonal_naive", "window_mlp"):
        assert {"mae", "rmse", "smape", "mase"} <= set(metrics[key])
    assert 0 <= metrics["model"]["coverage"] <= 1
    assert metrics["season"] == 12

    first = (out / "forecast.csv").read_text()
    assert main(["forecast", "predict", str(out), "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text() == first  # saved model, same forecasts
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 6 and float(rows[0]["lower_90"]) < float(rows[0]["mean"]) < float(rows[0]["upper_90"])

    assert main(["forecast", "predict", str(out), "--data", monthly, "--out", str(tmp_path / "q.csv")]) == 0
    assert main(["forecast", "backtest", monthly, "--target", "sales", "--horizon", "6", "--folds", "2",
                 "--out", str(tmp_path / "bt"), *FAST]) == 0
    bt = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert len(bt["folds"]) == 2 and "seasonal_naive" in bt["mean"]


def test_several_series_and_future_covariates(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows = []
    for sid, scale in (("north", 1.0), ("south", 3.0)):
        for k in range(80):
            rows.append((sid, f"{scale * (20 + 5 * np.sin(k / 2) + rng.normal()):.3f}", k % 7))
    data = write_csv(tmp_path / "s.csv", ["store", "sales", "dow"], rows)
    out = tmp_path / "run"
    assert main(["forecast", "train", data, "--target", "sales", "--series-col", "store", "--horizon", "4",
                 "--future-covariates", "dow", "--out", str(out), *FAST]) == 0
    fut = write_csv(tmp_path / "f.csv", ["store", "dow"],
                    [(s, d) for s in ("north", "south") for d in range(4)])
    assert main(["forecast", "predict", str(out), "--future", fut]) == 0
    rows = list(csv.DictReader(open(out / "forecast.csv")))
    assert {r["series"] for r in rows} == {"north", "south"} and len(rows) == 8
    code, err = run_err(["forecast", "predict", str(out)], capsys)
    assert code == 2 and "--future" in err


@pytest.mark.parametrize("header,rows,extra,message", [
    (["t", "y"], [(i, i % 5 + 1) for i in range(60)], ["--target", "sales"],
     "no column 'sales'; the columns are: t, y"),
    (["t", "y"], [(i, "x" if i == 7 else i % 5 + 1) for i in range(60)], ["--target", "y"],
     "row 9, column 'y': 'x' is not a number"),
    (["t", "y"], [(i, "" if i == 3 else i % 5 + 1) for i in range(60)], ["--target", "y"],
     "row 5, column 'y' is empty or NaN"),
    (["t", "y"], [(i, "NaN" if i == 3 else i % 5 + 1) for i in range(60)], ["--target", "y"],
     "--fill interpolate|ffill"),
    (["t", "y"], [(i, i % 5 + 1) for i in range(20)], ["--target", "y", "--lookback", "10"],
     "has 10 points but lookback + horizon = 10 + 5 = 15"),
    (["t", "y"], [(i, 4.0) for i in range(60)], ["--target", "y"], "constant"),
    (["t", "y", "x"], [(i, i % 5 + 1, i) for i in range(60)],
     ["--target", "y", "--covariates", "x", "--strategy", "recursive"], "would have to ignore the past"),
    (["t", "y"], [(i, i % 5 + 1) for i in range(60)], ["--target", "y", "--cell", "mlp", "--num-layers", "2"],
     "--num-layers applies to recurrent cells"),
    (["t", "y"], [(i, i % 5 + 1) for i in range(60)], ["--target", "y", "--transform", "log", "--time", "t"],
     None),
])
def test_bad_input_exits_2_with_message(tmp_path, capsys, header, rows, extra, message):
    data = write_csv(tmp_path / "bad.csv", header, rows)
    code, err = run_err(["forecast", "train", data, "--horizon", "5", "--out", str(tmp_path / "r"),
                         *extra, *FAST], capsys)
    if message is None:  # a valid run, for contrast
        assert code == 0
        return
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_fill_makes_gaps_usable(tmp_path, capsys):
    rows = [(i, "" if i in (3, 4) else i % 5 + 1 + 0.01 * i) for i in range(60)]
    data = write_csv(tmp_path / "gap.csv", ["t", "y"], rows)
    assert main(["forecast", "train", data, "--target", "y", "--horizon", "5", "--fill", "interpolate",
                 "--no-plot", "--out", str(tmp_path / "r"), *FAST]) == 0


def test_log_of_nonpositive_and_missing_file_and_bad_run(tmp_path, capsys):
    data = write_csv(tmp_path / "z.csv", ["y"], [(v,) for v in np.sin(np.arange(60.0))])
    code, err = run_err(["forecast", "train", data, "--target", "y", "--horizon", "5", "--transform", "log",
                         "--out", str(tmp_path / "r"), *FAST], capsys)
    assert code == 2 and "positive" in err
    code, err = run_err(["forecast", "train", str(tmp_path / "nope.csv"), "--target", "y", "--horizon", "5"],
                        capsys)
    assert code == 2 and "no such file" in err
    code, err = run_err(["forecast", "predict", str(tmp_path)], capsys)
    assert code == 2 and "not a forecast run folder" in err


def test_warning_when_seasonal_naive_wins(tmp_path, capsys):
    t = np.arange(96)
    data = write_csv(tmp_path / "p.csv", ["y"], [(f"{v:.6f}",) for v in 10 + np.sin(2 * np.pi * t / 12)])
    assert main(["forecast", "train", data, "--target", "y", "--horizon", "6", "--season", "12", "--no-plot",
                 "--out", str(tmp_path / "r"), "--epochs", "2", "--hidden-size", "4"]) == 0
    err = capsys.readouterr().err
    assert "warning: the model does not beat seasonal naive" in err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["seasonal_naive"]["mae"] < 1e-9 and metrics["warnings"]
