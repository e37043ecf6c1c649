"""Forecasts that carry time (NumPy datetime64, pandas index for pandas input, step numbers without a regular
time column), the refit on all the data, and backtest warnings."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnkit.data.series import Series, load_csv
from rnnkit.errors import UserError
from rnnkit.tasks import forecast
from rnnkit.tasks import forecast_metrics as fm
from rnnkit.tasks.forecast import Forecaster, backtest

FAST = dict(epochs=6, hidden_size=8, patience=50)
DATA = "/work/shared/data"


def seasonal(n=120, seed=0, period=12):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1, n)


def monthly_series(n=96, start_year=1990):
    labels = [f"{start_year + k // 12}-{k % 12 + 1:02d}" for k in range(n)]
    return Series(seasonal(n), np.zeros((n, 0)), np.zeros((n, 0)), labels, "series", "sales")


# -- time ---------------------------------------------------------------------------------------
def test_predict_returns_dates_at_the_inferred_frequency(tmp_path):
    (air,) = load_csv(f"{DATA}/airline.csv", target="passengers", time="month")
    model = Forecaster(horizon=6, season=12, **FAST).fit(air)
    fc = model.predict()["series"]
    expected = np.array([f"1961-{m:02d}" for m in range(1, 7)], dtype="datetime64[M]")
    np.testing.assert_array_equal(fc["time"], expected)
    assert fc["mean"].shape == (6,)
    model.save(tmp_path / "m.safetensors")
    loaded = Forecaster.load(tmp_path / "m.safetensors")  # only the tail is stored, yet the dates continue
    np.testing.assert_array_equal(loaded.predict()["series"]["time"], expected)
    assert loaded.freqs_ == model.freqs_


def test_new_data_continues_from_its_own_last_date():
    model = Forecaster(horizon=3, season=12, **FAST).fit(monthly_series())
    newer = monthly_series(60, start_year=2001)  # ends 2005-12
    fc = model.predict(newer)["series"]
    np.testing.assert_array_equal(fc["time"], np.array(["2006-01", "2006-02", "2006-03"], dtype="datetime64[M]"))


def test_pandas_input_gives_a_pandas_index():
    pd = pytest.importorskip("pandas")
    y = pd.Series(seasonal(96), index=pd.date_range("2000-01-31", periods=96, freq="ME"), name="sales")
    model = forecast.fit(y, horizon=4, season=12, **FAST)
    fc = forecast.predict(model)["series"]
    assert model.label(model.series_[0]) == "sales"
    assert isinstance(fc["time"], pd.DatetimeIndex)
    assert [str(t.date()) for t in fc["time"]] == ["2008-01-31", "2008-02-29", "2008-03-31", "2008-04-30"]
    frame = pd.DataFrame({"when": pd.period_range("1990-01", periods=96, freq="M").astype(str), "v": seasonal(96)})
    model = forecast.fit(frame, horizon=2, target="v", time="when", season=12, **FAST)
    times = forecast.predict(model)["series"]["time"]
    assert isinstance(times, pd.DatetimeIndex) and times.name == "when"
    assert [str(t.date()) for t in times] == ["1998-01-01", "1998-02-01"]


def test_without_time_the_steps_continue_the_index_and_irregular_time_says_so():
    y = seasonal(80)
    fc = Forecaster(horizon=5, season=12, **FAST).fit(y).predict()["series"]
    np.testing.assert_array_equal(fc["time"], np.arange(80, 85))
    labels = [str(d) for d in np.datetime64("2020-01-01") + np.cumsum(np.r_[0, np.ones(79, int)])]
    labels[40:] = [str(np.datetime64(t) + 1) for t in labels[40:]]  # one gap of two days
    s = Series(y, np.zeros((80, 0)), np.zeros((80, 0)), labels, "series", "y")
    with pytest.warns(UserWarning, match="unevenly.*numbered by step"):
        model = Forecaster(horizon=5, season=12, **FAST).fit(s)
    assert model.freqs_["series"] is None and model.time_notes_
    np.testing.assert_array_equal(model.predict()["series"]["time"], np.arange(80, 85))


def test_unsorted_time_is_refused():
    s = monthly_series(60)
    s.time[10], s.time[11] = s.time[11], s.time[10]
    with pytest.raises(UserError, match="goes backwards"):
        Forecaster(horizon=3, **FAST).fit(s)


# -- refit --------------------------------------------------------------------------------------
def test_refit_sees_all_the_data_with_the_chosen_settings():
    y = np.exp(np.log(100) + 0.01 * np.arange(144) + 0.15 * np.sin(2 * np.pi * np.arange(144) / 12))
    model = Forecaster(horizon=12, transform="log", epochs=12, hidden_size=8, seed=1).fit(y)
    final = forecast.refit(model)
    # the scaler is fitted on all 144 points (the evaluated one on the 120 training points only)
    assert final.scalers_["series"].mean_ == pytest.approx(np.mean(np.log(y)))
    assert final.scalers_["series"].scale_ == pytest.approx(np.std(np.log(y)))
    assert model.scalers_["series"].mean_ == pytest.approx(np.mean(np.log(y[:120])))
    assert (final.season_, final.lookback_, final.log_, final.highway_) == \
        (model.season_, model.lookback_, model.log_, model.highway_)
    assert final.sigma_scale_ == model.sigma_scale_
    # trained for the evaluated fit's best epoch count, on every window of the whole series
    assert final.refit_["epochs"] == model.best_epochs_
    windows = 144 - model.lookback_ - 12 + 1
    steps_per_epoch = -(-windows // model.config.batch_size)
    assert final.history_[0].steps == model.best_epochs_[0] * steps_per_epoch
    evals = model.history_[0].evals
    nb = -(-(120 - model.lookback_ - 12 + 1) // model.config.batch_size)
    best = min(evals, key=lambda r: r["val_mse"])
    assert model.best_epochs_[0] in (0, best["step"] // nb)


def test_refit_learns_from_the_test_span_the_evaluated_model_never_sees():
    y = seasonal(120)
    kw = dict(horizon=6, season=12, seed=3, **FAST)
    a, b = Forecaster(**kw).fit(y), None
    wild = y.copy()
    wild[-6:] += 40.0  # the test span
    b = Forecaster(**kw).fit(wild)
    for k in a.nets_[0].params:  # evaluated models: identical
        np.testing.assert_array_equal(a.nets_[0].params[k], b.nets_[0].params[k])
    ra, rb = a.refit(), b.refit()
    assert rb.predict()["series"]["mean"].mean() > ra.predict()["series"]["mean"].mean() + 5


def test_refit_of_a_loaded_model_needs_the_data(tmp_path):
    model = Forecaster(horizon=4, season=12, **FAST).fit(seasonal(80))
    model.save(tmp_path / "m.safetensors")
    loaded = Forecaster.load(tmp_path / "m.safetensors")
    assert loaded.best_epochs_ == model.best_epochs_
    with pytest.raises(UserError, match="pass the data"):
        loaded.refit()
    again = loaded.refit(seasonal(80))
    np.testing.assert_array_equal(again.predict()["series"]["mean"], model.refit().predict()["series"]["mean"])


# -- backtest warnings -------------------------------------------------------------------------
def test_baseline_warnings_name_every_winner():
    m = {"model": {"mase": 1.0}, "naive": {"mase": 2.0}, "seasonal_naive": {"mase": 0.5},
         "window_mlp": {"mase": 0.9}}
    (w,) = fm.baseline_warnings(m, "on average over the 3 folds")
    assert "seasonal naive (MASE 1.000 vs 0.500)" in w and "window MLP (MASE 1.000 vs 0.900)" in w
    assert "naive (MASE 1.000 vs 2.000)" not in w and w.endswith("or more data")
    assert fm.baseline_warnings({**m, "model": {"mase": 0.4}}) == []
    assert fm.baseline_warnings({"model": {"mase": 0.9}, "window_mlp": {"mase": 0.9}}) == []  # --cell mlp


def test_backtest_warns_when_a_baseline_wins_on_average():
    t = np.arange(120)
    y = 10 + np.sin(2 * np.pi * t / 12)  # seasonal naive is exact
    cfg = Forecaster(horizon=6, season=12, epochs=2, hidden_size=4).config
    with pytest.warns(UserWarning, match="does not beat seasonal naive.*on average over the 2 folds"):
        res = backtest(y, cfg, folds=2)
    assert res["warnings"] and res["mean"]["seasonal_naive"]["mae"] < 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = backtest(y, cfg, folds=2, warn=False)
    assert quiet["warnings"] == res["warnings"]
    assert [f["origin_time"] for f in res["folds"]] == [None, None]


def test_new_dataframe_uses_the_fitted_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"when": [f"{1990 + k // 12}-{k % 12 + 1:02d}" for k in range(96)], "v": seasonal(96)})
    model = forecast.fit(frame, horizon=2, target="v", time="when", season=12, **FAST)
    newer = frame.iloc[:60]  # ends 1994-12
    fc = model.predict(newer)["series"]
    assert [str(t.date()) for t in fc["time"]] == ["1995-01-01", "1995-02-01"]
    np.testing.assert_array_equal(fc["mean"], model.predict(newer["v"].to_numpy())["series"]["mean"])


@pytest.mark.parametrize("key,value", [("freq", {"kind": "month", "step": 1, "unit": "Q"}),
                                       ("freq", {"kind": "weekly"}), ("time_tail", ["1990-01"]),
                                       ("time_tail", 7)])
def test_damaged_time_metadata_is_one_user_error(tmp_path, key, value):
    from rnnkit.io import save_checkpoint

    model = Forecaster(horizon=3, season=12, **FAST).fit(monthly_series(60))
    tensors, meta = model.state()
    meta["series"][0][key] = value
    save_checkpoint(tmp_path / "m.safetensors", tensors, meta)
    with pytest.raises(UserError, match="damaged"):
        Forecaster.load(tmp_path / "m.safetensors")
