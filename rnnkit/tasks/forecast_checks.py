"""What a forecast checkpoint must hold, checked before a Forecaster is rebuilt from it: typed config and
learned fields, scalers, one entry per series with its tail tensors, and nothing else."""
from __future__ import annotations

import math

from rnnkit import io
from rnnkit.errors import UserError

_KNOWN = ("task", "config", "season_", "lookback_", "log_", "input_size_", "future_size_", "sigma_scale_",
          "highway_", "scalers_", "past_scaler_", "future_scaler_", "series", "time_name_", "pandas_",
          "time_notes_", "refit_", "best_epochs_")
_SERIES = ("name", "target", "past_names", "future_names", "length", "time_tail", "freq")


def _strings(v, source: str, what: str) -> list:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{source}: {what} must be a list of strings")
    return v


def _numbers(v, source: str, what: str) -> list:
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise UserError(f"{source}: {what} must be a list of numbers")
    return v


def check(path, meta: dict, tensors: dict) -> None:
    """UserError naming the field when the metadata or the tail tensors of a forecast checkpoint are not
    what :func:`rnnkit.tasks.forecast_io.load` needs (the networks' tensors are checked against the nets)."""
    from rnnkit.tasks.forecast_config import ForecastConfig

    src = f"checkpoint {path} metadata"
    if meta.get("task") != "forecast":
        raise UserError(f"{path} is not a forecast checkpoint (task {str(meta.get('task'))[:40]!r})")
    io.check_keys(meta, _KNOWN, src, required=_KNOWN[:13])
    conf = io.dataclass_dict(ForecastConfig, io.field(meta, "config", dict, src), f"{src} field 'config'")
    ForecastConfig(**conf).check()
    L = io.field(meta, "lookback_", int, src, low=1)
    io.field(meta, "season_", int, src, low=1)
    io.field(meta, "log_", bool, src)
    io.field(meta, "input_size_", int, src, low=1, high=L * 1000 + 1000)
    io.field(meta, "future_size_", int, src, low=0, high=1000)
    if not io.field(meta, "sigma_scale_", float, src, low=0.0) > 0:
        raise UserError(f"{src}: field 'sigma_scale_' is 0, expected a positive number")
    io.field(meta, "highway_", int, src, low=0, high=L)
    for key in ("time_name_", "refit_"):
        io.field(meta, key, (str, dict, list), src, optional=True)
    io.field(meta, "pandas_", bool, src, optional=True)
    _strings(meta.get("time_notes_", []), src, "time_notes_")
    _numbers(meta.get("best_epochs_", []), src, "best_epochs_")
    sizes = {}
    for key in ("past_scaler_", "future_scaler_"):
        sc = io.field(meta, key, dict, src)
        io.check_keys(sc, ("mean_", "scale_"), f"{src} field {key!r}", required=("mean_", "scale_"))
        mean = _numbers(sc["mean_"], src, f"{key}.mean_")
        scale = _numbers(sc["scale_"], src, f"{key}.scale_")
        if not all(math.isfinite(v) and v > 0 for v in scale) or not all(math.isfinite(v) for v in mean):
            raise UserError(f"{src}: {key} needs finite means and positive finite scales")
        if len(scale) != len(mean):
            raise UserError(f"{src}: {key} has {len(mean)} means but {len(sc['scale_'])} scales")
        sizes[key] = len(mean)
    scalers = io.field(meta, "scalers_", dict, src)
    series = io.field(meta, "series", list, src)
    if not series:
        raise UserError(f"{src}: field 'series' is empty, expected one entry per series")
    names = set()
    for i, d in enumerate(series):
        ssrc = f"{src} series[{i}]"
        if not isinstance(d, dict):
            raise UserError(f"{ssrc} is a {type(d).__name__}, expected an object")
        io.check_keys(d, _SERIES, ssrc, required=_SERIES[:5])
        name = io.field(d, "name", str, ssrc)
        if name in names:
            raise UserError(f"{ssrc}: the series name {name[:40]!r} appears twice")
        names.add(name)
        io.field(d, "target", str, ssrc)
        past = _strings(d["past_names"], ssrc, "past_names")
        future = _strings(d["future_names"], ssrc, "future_names")
        if len(past) != sizes["past_scaler_"] or len(future) != sizes["future_scaler_"]:
            raise UserError(f"{ssrc}: {len(past)} past and {len(future)} future covariates, the scalers have "
                            f"{sizes['past_scaler_']} and {sizes['future_scaler_']}")
        n = io.field(d, "length", int, ssrc, low=1)
        tail = d.get("time_tail")
        if tail is not None:
            _strings(tail, ssrc, "time_tail")
        freq = io.field(d, "freq", dict, ssrc, optional=True)
        if tail:
            _time_labels(tail, freq, ssrc)
        sc = io.field(scalers, name, dict, f"{src} field 'scalers_'")
        io.check_keys(sc, ("log", "mean_", "scale_"), f"{src} scalers_[{name[:40]!r}]", required=("log", "mean_", "scale_"))
        io.field(sc, "log", bool, f"{src} scalers_[{name[:40]!r}]")
        io.field(sc, "mean_", float, f"{src} scalers_[{name[:40]!r}]")
        if not io.field(sc, "scale_", float, f"{src} scalers_[{name[:40]!r}]", low=0.0) > 0:
            raise UserError(f"{src} scalers_[{name[:40]!r}]: scale_ is 0, expected a positive number")
        m = min(L, n)
        want = {f"tail.{name}.y": (m,), f"tail.{name}.past": (m, len(past)), f"tail.{name}.future": (m, len(future))}
        for tname, shape in want.items():
            t = tensors.get(tname)
            if t is None:
                raise UserError(f"checkpoint {path} lacks the tensor {tname!r}; it is damaged")
            if t.shape != shape or t.dtype.name != "float64":
                raise UserError(f"checkpoint {path}: tensor {tname!r} is {t.dtype}{t.shape}, expected float64{shape}")
            if tail is not None and len(tail) != m:
                raise UserError(f"{ssrc}: time_tail has {len(tail)} labels, expected {m}")
    extra = sorted(set(scalers) - names)
    if extra:
        raise UserError(f"{src}: scalers_ names series {extra[:3]} that the model does not have")
    stray = sorted(k for k in tensors if not k.startswith("net") and not any(k == f"tail.{n}.{p}" for n in names
                                                                                 for p in ("y", "past", "future")))
    if stray:
        raise UserError(f"checkpoint {path} holds unexpected tensors {stray[:5]}")
    nets = {f"net{k}." for k in range(conf.get("ensemble", 1))}
    foreign = sorted(k for k in tensors if k.startswith("net") and not any(k.startswith(p) for p in nets))
    if foreign:
        raise UserError(f"checkpoint {path} holds tensors {foreign[:3]} of networks beyond the ensemble of "
                        f"{len(nets)}; it is damaged")


def run_config(path) -> dict:
    """A forecast run's config.json, read strictly, with its "load" options (the CSV reading settings
    predict reuses) typed."""
    conf = io.read_json_file(path)
    src = f"config.json {path}"
    load = io.field(conf, "load", dict, src)
    lsrc = f"{src} field 'load'"
    io.check_keys(load, ("target", "time", "covariates", "future_covariates", "series_col", "fill"), lsrc,
                  required=("covariates", "future_covariates"))
    for key in ("target", "time", "series_col", "fill"):
        io.field(load, key, str, lsrc, optional=True)
    for key in ("covariates", "future_covariates"):
        _strings(load[key], lsrc, key)
    return conf


def _time_labels(tail: list, freq, source: str) -> None:
    """The stored time labels must parse and extend at the stored frequency (predict dates its forecast)."""
    from rnnkit.tasks.forecast_time import Frequency, future_labels, parse_labels

    try:
        parse_labels(tail)
        future_labels(tail, 1, None if freq is None else Frequency.from_json(freq))
    except UserError as exc:
        raise UserError(f"{source}: the stored time labels are damaged ({exc})") from None
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError, IndexError) as exc:
        raise UserError(f"{source}: the stored time labels or frequency are damaged ({type(exc).__name__}: "
                        f"{str(exc)[:80]})") from None
