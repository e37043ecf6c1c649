"""The forecaster as one ONNX graph on the original scale: raw history in, mean and interval out.

The graph applies what :meth:`Forecaster.forecast_at` does around the networks: the series' scaler (log,
standardisation; chosen per row by its ``series`` index), differencing to the last observed value, the
covariate scalers, every ensemble member, the mixture of their Gaussians, the calibrated interval and the
inverse transform. Scaling and the mixture run in float64 inside the graph, the networks in float32.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from rnnkit.errors import UserError
from rnnkit.export.graph import FLOAT, INT64, Graph, batch_first_to_time_major, dense
from rnnkit.export.onnx import Export, exporter
from rnnkit.export.recurrent import emit
from rnnkit.tasks.forecast_models import LOG_SIGMA_MAX, LOG_SIGMA_MIN

_F32, _F64 = 1, 11  # TensorProto.FLOAT, TensorProto.DOUBLE for Cast


def _cols(g: Graph, x: str, lo: int, hi: int, axis: int) -> str:
    return g.op("Slice", x, g.ints(lo), g.ints(hi), g.ints(axis))


def _scaled(g: Graph, x: str, scaler) -> str:
    """(x - mean_) / scale_ per last-axis column, in float64."""
    return g.op("Div", g.op("Sub", g.op("Cast", x, to=_F64), g.const(scaler.mean_, "cov.mean", np.float64)),
                g.const(scaler.scale_, "cov.scale", np.float64))


def _net(g: Graph, net, xs: str, fut: str | None, L: int, D: int, k: int) -> tuple[str, str]:
    """One ForecastNet on xs (B, L, D) float32 -> (mu, log_sigma), each (B, K) float32."""
    p = {n: v.astype(np.float32) for n, v in net.params.items()}
    K = net.out_steps
    if net.cell == "mlp":
        h = g.op("Tanh", dense(g, g.op("Reshape", xs, g.ints(0, L * D)), p["enc.W"], p["enc.b"], f"net{k}.enc"))
    else:
        _, _, h = emit(g, net.encoder, batch_first_to_time_major(g, xs))  # the top layer's final output
    if fut is not None:
        h = g.op("Concat", h, fut, axis=1)
    out = dense(g, h, p["head.W"], p["head.b"], f"net{k}.head")  # (B, 2K)
    mu = _cols(g, out, 0, K, 1)
    if net.highway:
        window = g.op("Squeeze", _cols(g, _cols(g, xs, L - net.highway, L, 1), 0, 1, 2), g.ints(2))
        mu = g.op("Add", mu, dense(g, window, p["skip.W"], p["skip.b"], f"net{k}.skip"))
    log_sigma = g.op("Clip", _cols(g, out, K, 2 * K, 1), g.const(LOG_SIGMA_MIN, "lo"),
                      g.const(LOG_SIGMA_MAX, "hi"))
    return mu, log_sigma


@exporter("rnnkit.tasks.forecast:Forecaster")
def forecaster(model) -> Export:
    """history (B, L) [, past_covariates (B, L, P)] [, future_covariates (B, L+H, F)], series (B,) ->
    mean, lower, upper (B, H) on the original scale."""
    if not getattr(model, "nets_", None):
        raise UserError("the forecaster is not fitted; fit it (or load a trained run) before exporting")
    cfg = model.config
    if cfg.strategy != "direct":
        raise UserError("a recursive forecaster cannot be exported to ONNX: its intervals come from 200 "
                        "random sample paths fed back through the network one step at a time; train with "
                        "--strategy direct to get an exportable model")
    L, H, K = model.lookback_, cfg.horizon, model.out_steps
    names = list(model.scalers_)
    first = model.series_[0]
    P, F = len(first.past_names), model.future_size_
    D = model.input_size_
    g = Graph("rnnkit_forecast")
    history = g.input("history", FLOAT, ["B", L], f"the last {L} observed values of the target")
    series = g.input("series", INT64, ["B"], "index of each row's series in the JSON's 'series' list")
    means = [model.scalers_[n].mean_ for n in names]
    scales = [model.scalers_[n].scale_ for n in names]
    mean_b = g.op("Unsqueeze", g.op("Gather", g.const(means, "series.mean", np.float64), series), g.ints(1))
    scale_b = g.op("Unsqueeze", g.op("Gather", g.const(scales, "series.scale", np.float64), series), g.ints(1))
    t = g.op("Cast", history, to=_F64)
    if model.log_:
        t = g.op("Log", t)
    z = g.op("Div", g.op("Sub", t, mean_b), scale_b)  # (B, L)
    last = _cols(g, z, L - 1, L, 1)  # (B, 1): forecasts are relative to the last observed value
    parts = [g.op("Unsqueeze", g.op("Sub", z, last), g.ints(2))]
    if P:
        parts.append(_scaled(g, g.input("past_covariates", FLOAT, ["B", L, P]), model.past_scaler_))
    fut = None
    if F:
        fz = _scaled(g, g.input("future_covariates", FLOAT, ["B", L + K, F],
                                f"known-ahead covariates over the {L} lookback steps and the {K} ahead"),
                     model.future_scaler_)
        parts.append(_cols(g, fz, 0, L, 1))
        fut = g.op("Cast", g.op("Reshape", _cols(g, fz, L, L + K, 1), g.ints(0, K * F)), to=_F32)
    xs = g.op("Cast", g.op("Concat", *parts, axis=2) if len(parts) > 1 else parts[0], to=_F32, hint="xs")
    # the ensemble's Gaussian mixture: mean of the means, variance = E[sigma^2 + mu^2] - mu^2
    mus, seconds = [], []
    for k, net in enumerate(model.nets_):
        mu, log_sigma = (g.op("Cast", v, to=_F64) for v in _net(g, net, xs, fut, L, D, k))
        mus.append(mu)
        seconds.append(g.op("Add", g.op("Exp", g.op("Mul", log_sigma, g.const(2.0, "two", np.float64))),
                            g.op("Mul", mu, mu)))
    n = float(len(mus))
    mu = g.op("Div", mus[0] if len(mus) == 1 else g.op("Sum", *mus), g.const(n, "n", np.float64))
    second = g.op("Div", seconds[0] if len(seconds) == 1 else g.op("Sum", *seconds), g.const(n, "n", np.float64))
    var = g.op("Max", g.op("Sub", second, g.op("Mul", mu, mu)), g.const(1e-30, "tiny", np.float64))
    sd = g.op("Mul", g.op("Sqrt", var), g.const(model.sigma_scale_, "sigma_scale", np.float64))
    mu, sd = _cols(g, mu, 0, H, 1), _cols(g, sd, 0, H, 1)
    q = NormalDist().inv_cdf(0.5 + cfg.interval / 2)
    center = g.op("Add", last, mu)
    half = g.op("Mul", sd, g.const(q, "q", np.float64))
    for name, c in (("mean", center), ("lower", g.op("Sub", center, half)), ("upper", g.op("Add", center, half))):
        y = g.op("Add", g.op("Mul", c, scale_b), mean_b)
        if model.log_:
            y = g.op("Exp", g.op("Min", y, g.const(700.0, "cap", np.float64)))
        g.output(g.op("Cast", y, to=_F32), name, FLOAT, ["B", H])
    info = {"model": "forecast", "series": names, "lookback": L, "horizon": H, "interval": cfg.interval,
            "log": model.log_, "cell": cfg.cell, "ensemble": len(model.nets_),
            "past_covariates": list(first.past_names), "future_covariates": list(first.future_names),
            "scalers": {n: model.scalers_[n].to_json() for n in names},
            "note": "the graph applies the scalers itself: feed raw values, read forecasts on the original "
                    "scale; with log set, history must be positive"}
    doc = f"rnnkit forecaster ({cfg.cell}, lookback {L}, horizon {H}, {cfg.interval:.0%} interval)"
    return Export({"": g.model(doc)}, info)
