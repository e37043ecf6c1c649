"""Forecasting task: leakage, save/load, strategies, covariates, global models, metrics and baselines."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.errors import UserError
from rnnkit.tasks import forecast_metrics as fm
from rnnkit.tasks.forecast import Forecaster
from rnnkit.tasks.forecast import backtest
from rnnkit.tasks.forecast_eval import evaluate

FAST = dict(epochs=8, hidden_size=8, patience=50)


def seasonal(n=160, seed=0, period=12):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1, n)


# -- leakage ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "mlp"])
def test_test_span_never_reaches_scaler_or_weights(cell):
    y = seasonal()
    kw = dict(horizon=6, season=12, cell=cell, seed=3, **FAST)
    a = Forecaster(**kw).fit(y)
    wild = y.copy()
    wild[-6:] = np.array([1e6, -5e5, 3e4, 0.0, 7e7, 1.0])  # the test span (last horizon points)
    b = Forecaster(**kw).fit(wild)
    assert a.scalers_ == b.scalers_
    for k in a.nets_[0].params:
        np.testing.assert_array_equal(a.nets_[0].params[k], b.nets_[0].params[k])


def test_validation_span_never_reaches_scaler():
    y = seasonal()
    kw = dict(horizon=6, season=12, seed=3, **FAST)
    a = Forecaster(**kw).fit(y)
    wild = y.copy()
    wild[-12:-6] *= 100.0  # the validation span
    b = Forecaster(**kw).fit(wild)
    assert a.scalers_ == b.scalers_
    assert a.lookback_ == b.lookback_ and a.log_ == b.log_


def test_season_and_log_are_chosen_on_the_training_span():
    y = seasonal(period=12)
    model = Forecaster(horizon=6, **FAST).fit(y)
    assert model.season_ == 12
    noisy = y.copy()
    noisy[-12:] = np.random.default_rng(0).normal(0, 100, 12)
    assert Forecaster(horizon=6, **FAST).fit(noisy).season_ == 12


# -- save / load --------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy,cell", [("direct", "lstm"), ("recursive", "elman"), ("direct", "jordan")])
def test_save_load_identical_forecasts(tmp_path, strategy, cell):
    model = Forecaster(horizon=5, season=12, strategy=strategy, cell=cell, ensemble=2, **FAST).fit(seasonal())
    before = model.predict()
    model.save(tmp_path / "m.safetensors")
    loaded = Forecaster.load(tmp_path / "m.safetensors")
    after = loaded.predict()
    for k in ("mean", "lower", "upper"):
        np.testing.assert_array_equal(before["series"][k], after["series"][k])
    new = seasonal(seed=5)[:100]
    np.testing.assert_array_equal(model.predict(new)["series"]["mean"], loaded.predict(new)["series"]["mean"])


def test_load_rejects_other_checkpoints(tmp_path):
    from rnnkit.io import save_checkpoint

    save_checkpoint(tmp_path / "x.safetensors", {"w": np.zeros(2)}, {"task": "text"})
    with pytest.raises(UserError, match="not a forecast checkpoint"):
        Forecaster.load(tmp_path / "x.safetensors")


# -- learning ---------------------------------------------------------------------------------
def test_tiny_gru_learns_a_sine_quickly():
    t = np.arange(240)
    y = np.sin(2 * np.pi * t / 16)
    model = Forecaster(horizon=4, lookback=16, season=1, cell="gru", hidden_size=8, epochs=60, lr=1e-2,
                       highway=False, seed=0).fit(y)
    rep = evaluate(model, mlp=model)
    assert rep["metrics"]["model"]["rmse"] < 0.1  # amplitude 1
    assert rep["metrics"]["model"]["mase"] < 0.5 * rep["metrics"]["naive"]["mase"]


def test_recursive_strategy_forecasts_and_intervals_widen():
    model = Forecaster(horizon=8, season=12, strategy="recursive", cell="gru", **FAST).fit(seasonal())
    f = model.predict()["series"]
    width = f["upper"] - f["lower"]
    assert f["mean"].shape == (8,) and np.all(width > 0)
    assert width[-1] > width[0]


def test_future_covariates_are_used_and_required():
    rng = np.random.default_rng(0)
    n = 200
    promo = (rng.random(n) < 0.3).astype(float)
    y = 10 + 5 * promo + rng.normal(0, 0.3, n)
    from rnnkit.data.series import Series

    s = Series(y, np.zeros((n, 0)), promo[:, None], None, "shop", "sales", (), ("promo",))
    model = Forecaster(horizon=4, season=1, lookback=8, epochs=80, hidden_size=8, lr=1e-2, seed=0).fit(s)
    rep = evaluate(model, mlp=model)
    assert rep["metrics"]["model"]["mase"] < 0.5 * rep["metrics"]["naive"]["mase"]
    with pytest.raises(UserError, match="future covariates"):
        model.predict()
    hi = model.predict(future=np.ones((4, 1)))["shop"]["mean"]
    lo = model.predict(future=np.zeros((4, 1)))["shop"]["mean"]
    assert np.all(hi - lo > 3)


def test_recursive_with_past_covariates_is_an_error():
    data = np.column_stack([seasonal(), np.arange(160.0)])
    with pytest.raises(UserError, match="recursive.*past covariates"):
        Forecaster(horizon=4, strategy="recursive", **FAST).fit(data)


@pytest.mark.parametrize("kw,msg", [
    (dict(cell="mlp", num_layers=2), "num-layers"),
    (dict(cell="tcn"), "unknown cell"),
    (dict(strategy="both"), "unknown strategy"),
    (dict(interval=1.5), "interval"),
    (dict(horizon=0), "horizon"),
])
def test_bad_settings(kw, msg):
    with pytest.raises(UserError, match=msg):
        Forecaster(**{"horizon": 3, **kw})


def test_short_training_span_names_lengths():
    with pytest.raises(UserError, match=r"has 30 points but lookback \+ horizon = 27 \+ 5 = 32"):
        Forecaster(horizon=5, lookback=27, **FAST).fit(np.arange(40.0) % 7)


def test_global_model_over_several_series():
    ys = [seasonal(seed=k) * (k + 1) for k in range(3)]
    model = Forecaster(horizon=6, season=12, **FAST).fit(ys)
    assert set(model.scalers_) == {"0", "1", "2"}
    fc = model.predict()
    assert set(fc) == {"0", "1", "2"}
    assert fc["2"]["mean"].mean() > fc["0"]["mean"].mean()  # each series stays on its own scale
    rep = evaluate(model, mlp=model)
    assert rep["metrics"]["model"]["n"] == 18


def test_backtest_rolls_the_origin():
    res = backtest(seasonal(200), Forecaster(horizon=6, season=12, **FAST).config, folds=3)
    assert [r["origin"] for r in res["folds"]] == [182, 188, 194]
    assert set(res["mean"]) == {"model", "naive", "seasonal_naive", "window_mlp"}


# -- metrics and baselines ----------------------------------------------------------------------
def test_point_metrics_known_values():
    d = fm.point_metrics([1.0, 2.0, 4.0], [2.0, 2.0, 2.0], scale=2.0)
    assert d["mae"] == pytest.approx(1.0)
    assert d["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert d["mase"] == pytest.approx(0.5)
    assert d["smape"] == pytest.approx(100 * (2 / 3 + 0 + 2 * 2 / 6) / 3)
    assert fm.point_metrics([0.0], [0.0], 1.0)["smape"] == 0.0


def test_baselines_and_scale():
    h = np.arange(1.0, 13.0)
    np.testing.assert_array_equal(fm.naive_forecast(h, 3), [12, 12, 12])
    np.testing.assert_array_equal(fm.seasonal_naive_forecast(h, 5, 4), [9, 10, 11, 12, 9])
    assert fm.mase_scale(h, 4) == 4.0
    assert fm.mase_scale(np.array([1.0, 2.0, 1.0, 2.0]), 2) == 1.0  # falls back to lag 1
    assert fm.coverage([1, 2, 3], [0, 2.5, 2], [2, 3, 4]) == pytest.approx(2 / 3)


def test_warnings_for_losing_and_echoing():
    metrics = {"model": {"mase": 1.2}, "seasonal_naive": {"mase": 1.0}}
    w = fm.warnings_for(metrics, echo=0.05)
    assert any("does not beat seasonal naive" in x for x in w)
    assert any("echoes the last observed value" in x for x in w)
    assert fm.warnings_for({"model": {"mase": 0.8}, "seasonal_naive": {"mase": 1.0}}, echo=0.9) == []
    y = np.array([1.0, 3, 2, 5, 4, 6])
    assert fm.echo_ratio(y[1:], y[1:], y[:-1]) == pytest.approx(1.0)  # a perfect forecast
    assert fm.echo_ratio(y[1:], y[:-1] + 0.01, y[:-1]) < 0.05


def test_evaluate_reports_every_forecaster():
    model = Forecaster(horizon=6, season=12, **FAST).fit(seasonal())
    rep = evaluate(model)
    assert set(rep["metrics"]) == {"model", "naive", "seasonal_naive", "window_mlp"}
    for d in rep["metrics"].values():
        assert set(fm.METRICS) <= set(d)
    assert 0.0 <= rep["metrics"]["model"]["coverage"] <= 1.0


def test_functional_api():
    from rnnkit.tasks import forecast

    model = forecast.fit(seasonal(), horizon=6, season=12, **FAST)
    fc = forecast.predict(model)["series"]
    assert fc["mean"].shape == (6,) and np.all(fc["lower"] <= fc["mean"]) and np.all(fc["mean"] <= fc["upper"])
    assert "seasonal_naive" in forecast.evaluate(model)["metrics"]


def test_loaded_model_evaluates_on_given_data(tmp_path):
    y = seasonal()
    model = Forecaster(horizon=6, season=12, **FAST).fit(y)
    model.save(tmp_path / "m.safetensors")
    loaded = Forecaster.load(tmp_path / "m.safetensors")
    with pytest.raises(UserError, match="pass the data"):
        evaluate(loaded)
    a, b = evaluate(model, mlp=model), evaluate(loaded, y, mlp=loaded)
    assert a["metrics"]["model"] == b["metrics"]["model"]


def test_past_covariate_leading_indicator_is_used():
    rng = np.random.default_rng(2)
    n = 240
    lead = rng.normal(0, 1, n + 3)
    y = 20 + 3 * lead[:-3] + rng.normal(0, 0.1, n)  # y[t] follows the indicator three steps later
    x = lead[3:]  # observed now, says where y goes in three steps
    model = Forecaster(horizon=3, season=1, lookback=6, epochs=80, hidden_size=16, lr=1e-2, seed=0).fit(
        np.column_stack([y, x]))
    rep = evaluate(model, mlp=model)
    assert rep["metrics"]["model"]["mase"] < 0.3 * rep["metrics"]["naive"]["mase"]
