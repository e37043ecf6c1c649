"""Saving and loading a :class:`rnnkit.tasks.forecast.Forecaster`: every network's weights, the scalers, the
tail of each series (values and time labels) and its time frequency, in one safetensors file with JSON."""
from __future__ import annotations

import dataclasses

import numpy as np

from rnnkit.data.series import ColumnScaler, Series, SeriesScaler
from rnnkit.errors import UserError
from rnnkit.tasks.forecast_config import ForecastConfig
from rnnkit.tasks.forecast_time import Frequency

_LEARNED = ("season_", "lookback_", "log_", "input_size_", "future_size_", "sigma_scale_", "highway_")


def state(model) -> tuple[dict, dict]:
    """(tensors, meta) for a checkpoint: every net's weights plus config, scalers and the series' tails."""
    tensors = {f"net{k}.{name}": v for k, net in enumerate(model.nets_) for name, v in net.params.items()}
    L = model.lookback_
    for s in model.series_:
        tensors[f"tail.{s.name}.y"] = s.y[-L:].astype(np.float64)
        tensors[f"tail.{s.name}.past"] = s.past[-L:].astype(np.float64)
        tensors[f"tail.{s.name}.future"] = s.future[-L:].astype(np.float64)
    freqs = getattr(model, "freqs_", {})
    meta = {
        "task": "forecast", "config": dataclasses.asdict(model.config),
        **{k: getattr(model, k) for k in _LEARNED},
        "scalers_": {k: v.to_json() for k, v in model.scalers_.items()},
        "past_scaler_": model.past_scaler_.to_json(), "future_scaler_": model.future_scaler_.to_json(),
        "series": [{"name": s.name, "target": s.target, "past_names": list(s.past_names),
                    "future_names": list(s.future_names), "length": model.length_of(s),
                    "time_tail": None if s.time is None else [str(t) for t in s.time[-L:]],
                    "freq": None if freqs.get(s.name) is None else freqs[s.name].to_json()}
                   for s in model.series_],
        "time_name_": getattr(model, "time_name_", None), "pandas_": bool(getattr(model, "pandas_", False)),
        "time_notes_": list(getattr(model, "time_notes_", [])),
        "refit_": getattr(model, "refit_", None), "best_epochs_": list(getattr(model, "best_epochs_", [])),
    }
    return tensors, meta


def load(cls, path):
    """A forecaster of class ``cls`` from a checkpoint written by :func:`state` (through ``save``); every field
    and tensor is checked first (:mod:`rnnkit.tasks.forecast_checks`) and whatever a damaged file still
    provokes becomes a UserError naming it."""
    from rnnkit import io

    with io.guard_load(path):
        return _load(cls, path)


def _load(cls, path):
    from rnnkit import io
    from rnnkit.tasks.forecast_checks import check

    tensors, meta = io.load_checkpoint(path)
    check(path, meta, tensors)
    # threads is a setting of the machine that trained it, not of the model: automatic here
    self = cls(config=ForecastConfig(**{**meta["config"], "threads": None}))
    for k in _LEARNED:
        setattr(self, k, meta[k])
    self.scalers_ = {k: SeriesScaler.from_json(v) for k, v in meta["scalers_"].items()}
    self.past_scaler_ = ColumnScaler.from_json(meta["past_scaler_"])
    self.future_scaler_ = ColumnScaler.from_json(meta["future_scaler_"])
    self.nets_, self.history_ = [], []
    for k in range(self.config.ensemble):
        net = self._new_net(0)
        io.check_tensors(path, tensors, net.params, prefix=f"net{k}.")  # names, shapes and dtypes: no silent cast
        net.load_state_dict({n[len(f"net{k}."):]: v for n, v in tensors.items() if n.startswith(f"net{k}.")})
        self.nets_.append(net)
    self.series_, self.lengths_, self.freqs_ = [], {}, {}
    for d in meta["series"]:
        name = d["name"]
        tail = d.get("time_tail")
        if tail is not None and (not isinstance(tail, list) or len(tail) != len(tensors[f"tail.{name}.y"])
                                 or not all(isinstance(t, str) for t in tail)):
            raise UserError(f"{path}: the time labels stored for series {name!r} are damaged; retrain the model")
        self.series_.append(Series(tensors[f"tail.{name}.y"], tensors[f"tail.{name}.past"],
                                   tensors[f"tail.{name}.future"], tail, name, d["target"],
                                   tuple(d["past_names"]), tuple(d["future_names"])))
        self.lengths_[name] = int(d["length"])
        self.freqs_[name] = _frequency(d.get("freq"), path)
    self.time_name_ = meta.get("time_name_")
    self.pandas_ = bool(meta.get("pandas_", False))
    self.time_notes_ = list(meta.get("time_notes_", []))
    self.refit_ = meta.get("refit_")
    self.best_epochs_ = list(meta.get("best_epochs_") or [self.config.epochs] * self.config.ensemble)
    self.has_full_series_ = False  # only the last lookback points are stored with the model
    return self


def _frequency(d, path):
    """The stored Frequency of a series (None if it had none); damaged metadata is one UserError."""
    if not d:
        return None
    try:
        freq = Frequency.from_json(d)
        if freq.kind not in ("fixed", "month", "bday", "int") or int(freq.step) < 1:
            raise ValueError(freq.kind)
        freq.future(0 if freq.kind == "int" else np.datetime64("2000-01-01", freq.unit), 1)
    except (TypeError, ValueError, KeyError, AttributeError):
        raise UserError(f"{path}: the time frequency stored with the model is damaged; retrain the model") from None
    return freq
