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


# -- dated forecasts, refit, backtest outputs (issue 14) -------------------------------------------
def test_forecast_csv_is_dated_and_refit_by_default(tmp_path, monthly, capsys):
    out = tmp_path / "run"
    assert main(["forecast", "train", monthly, "--target", "sales", "--time", "month", "--horizon", "6",
                 "--no-plot", "--out", str(out), *FAST]) == 0
    assert "from the model refit on all 120 points" in capsys.readouterr().out
    assert (out / "model_refit.safetensors").is_file()
    rows = list(csv.DictReader(open(out / "forecast.csv")))
    assert [r["month"] for r in rows] == [f"2000-{m:02d}" for m in range(1, 7)]  # the data end in 1999-12
    assert {r["series"] for r in rows} == {"sales"} and {r["model"] for r in rows} == {"refit"}
    assert json.loads((out / "metrics.json").read_text())["forecast_model"] == "refit"

    assert main(["forecast", "predict", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "refit on all 120 points" in printed and "sales, monthly" in printed
    assert "2000-01" in printed and "2000-06" in printed
    assert list(csv.DictReader(open(out / "forecast.csv"))) == rows  # the saved refit model, same numbers

    assert main(["forecast", "predict", str(out), "--no-refit", "--out", str(tmp_path / "e.csv")]) == 0
    assert "the evaluated model, trained on the first 108 points" in capsys.readouterr().out
    evaluated = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert {r["model"] for r in evaluated} == {"evaluated"}
    assert [r["month"] for r in evaluated] == [r["month"] for r in rows]
    assert [r["mean"] for r in evaluated] != [r["mean"] for r in rows]


def test_no_refit_at_train_time(tmp_path, monthly, capsys):
    out = tmp_path / "run"
    assert main(["forecast", "train", monthly, "--target", "sales", "--horizon", "6", "--no-refit", "--no-plot",
                 "--out", str(out), *FAST]) == 0
    assert not (out / "model_refit.safetensors").exists()
    rows = list(csv.DictReader(open(out / "forecast.csv")))
    assert {r["model"] for r in rows} == {"evaluated"} and "month" not in rows[0]  # no --time: no time column
    capsys.readouterr()
    assert main(["forecast", "predict", str(out)]) == 0
    assert "this run has no refit model" in capsys.readouterr().out


def test_real_files_get_their_own_calendar(tmp_path, capsys):
    assert main(["forecast", "train", "/work/shared/data/sunspots.csv", "--target", "sunspots", "--time", "year",
                 "--horizon", "3", "--no-plot", "--out", str(tmp_path / "sun"), *FAST]) == 0
    rows = list(csv.DictReader(open(tmp_path / "sun" / "forecast.csv")))
    assert [r["year"] for r in rows] == ["2009", "2010", "2011"] and rows[0]["series"] == "sunspots"
    assert main(["forecast", "train", "/work/shared/data/airline.csv", "--target", "passengers", "--time", "month",
                 "--horizon", "12", "--out", str(tmp_path / "air"), *FAST]) == 0
    rows = list(csv.DictReader(open(tmp_path / "air" / "forecast.csv")))
    assert [r["month"] for r in rows] == [f"1961-{m:02d}" for m in range(1, 13)]
    assert (tmp_path / "air" / "forecast.png").stat().st_size > 10_000


def test_irregular_time_column_warns_and_numbers_the_steps(tmp_path, capsys):
    dates = [str(np.datetime64("2021-01-01") + k + (k >= 30)) for k in range(60)]  # one day missing
    data = write_csv(tmp_path / "d.csv", ["day", "y"], [(d, f"{5 + np.sin(k / 3):.4f}") for k, d in enumerate(dates)])
    assert main(["forecast", "train", data, "--target", "y", "--time", "day", "--horizon", "4", "--no-plot",
                 "--out", str(tmp_path / "r"), *FAST]) == 0
    err = capsys.readouterr().err
    assert "unevenly" in err and "numbered by step" in err
    rows = list(csv.DictReader(open(tmp_path / "r" / "forecast.csv")))
    assert [r["day"] for r in rows] == ["", "", "", ""] and [r["step"] for r in rows] == ["1", "2", "3", "4"]


def test_backtest_writes_per_fold_csv_plot_and_warns(tmp_path, capsys):
    rows = [(f"{2000 + k // 12}-{k % 12 + 1:02d}", f"{10 + np.sin(2 * np.pi * k / 12):.6f}") for k in range(96)]
    data = write_csv(tmp_path / "p.csv", ["month", "y"], rows)
    out = tmp_path / "bt"
    assert main(["forecast", "backtest", data, "--target", "y", "--time", "month", "--horizon", "6",
                 "--season", "12", "--folds", "3", "--out", str(out), "--epochs", "2", "--hidden-size", "4"]) == 0
    captured = capsys.readouterr()
    assert "warning: the model does not beat seasonal naive" in captured.err
    assert "on average over the 3 folds" in captured.err
    table = list(csv.DictReader(open(out / "backtest.csv")))
    assert len(table) == 3 * 4 + 4  # folds x forecasters, then the means
    folds = [r for r in table if r["forecaster"] == "model" and r["fold"] != "mean"]
    assert [(r["origin"], r["origin_time"]) for r in folds] == [("78", "2006-07"), ("84", "2007-01"),
                                                                ("90", "2007-07")]
    mean = next(r for r in table if r["fold"] == "mean" and r["forecaster"] == "model")
    assert float(mean["mase"]) == pytest.approx(np.mean([float(r["mase"]) for r in folds]), rel=1e-5)
    assert (out / "backtest.png").stat().st_size > 10_000
    assert json.loads((out / "backtest.json").read_text())["warnings"]
