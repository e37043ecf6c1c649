"""Sequence classification: an estimator with scikit-learn / aeon conventions over rnnkit's time-delay and
recurrent networks. The default, model="rocket", is a random time-delay layer with a closed-form readout
(rnnkit.tasks.classify_rocket); "auto", "combined", "tdnn" and "rnn" are networks trained by backpropagation.

    clf = SequenceClassifier().fit(X_train, y_train)   # X in aeon's layouts (rnnkit.data.layout)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

X is a 3-D array (n_cases, n_channels, n_timepoints), a 2-D array (n_cases, n_timepoints) for one
channel, or a list of (n_channels, length_i) arrays of unequal lengths; labels may be of any JSON type
(strings too). Cases of unequal length are padded and masked, never truncated. Normalisation statistics,
the validation split and early stopping all use the training data only.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from rnnkit.data.layout import as_cases
from rnnkit.errors import UserError
from rnnkit.nn.base import as_rng
from rnnkit.tasks.classify_config import AUTO_MODEL, AUTO_NORMALIZE, NORMALIZE, ClassifyConfig
from rnnkit.tasks.classify_model import MODELS, ClassifierNet
from rnnkit.tasks.classify_rocket import RocketMember, fit_members
from rnnkit.tasks.classify_train import Padded, predict_logits, stratified_split, train_net

FORMAT = "rnnkit-classify"
STATISTICS = ("mean_", "scale_", "ref_", "feature_mean_", "feature_scale_")  # saved as JSON lists
__all__ = ["SequenceClassifier", "ClassifyConfig", "fit", "AUTO_MODEL", "AUTO_NORMALIZE", "NORMALIZE"]


def _choice_key(history, monitor: str) -> tuple:
    """How a candidate's kept epoch ranks (smaller is better): its validation loss, or with
    monitor="val_acc" its accuracy first; the loss is always the last element."""
    evals = history.evals
    if not evals:
        return (float("inf"),)
    if monitor == "val_acc":
        best = min(evals, key=lambda r: (-r["val_acc"], r["val_loss"]))
        return (-best["val_acc"], best["val_loss"])
    return (min(r["val_loss"] for r in evals),)


def _finite32(data: Padded, which: str) -> Padded:
    """``data`` if every value fits float32 after normalisation (the random TDNN adds nine of them per channel);
    else UserError naming the fix."""
    limit = 1e36 / (9 * data.xs.shape[2])  # nine taps per channel summed, with room to spare below 3.4e38
    if not np.isfinite(data.xs).all() or np.abs(data.xs).max(initial=0.0) > limit:
        raise UserError(f"the {which} data hold values too large for the float32 time-delay layer after "
                        f"normalisation (beyond {limit:.1e}); rescale them, or use normalize='global' or 'series'")
    return data


def _label_kind(v) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return "number"
    return type(v).__name__


def _json_label(v):
    v = v.item() if isinstance(v, np.generic) else v
    if not isinstance(v, (str, int, float, bool)):
        raise UserError(f"label {v!r} of type {type(v).__name__} cannot be saved; use strings or numbers")
    return v


class SequenceClassifier:
    """Classify whole sequences. Parameters are the fields of :class:`ClassifyConfig`.

    Learned attributes: ``classes_`` (sorted labels), ``n_classes_``, ``n_channels_``, ``stride_``,
    ``mean_``/``scale_`` (per-channel statistics of the training data), ``ref_``, ``feature_mean_`` and
    ``feature_scale_`` (the level and scale features of normalize="series+scale"), ``normalize_`` (the
    normalisation used) and ``model_``: "rocket" by default (``nets_`` then holds RocketMember objects); with
    "auto", the pair of ``AUTO_MODEL`` x ``AUTO_NORMALIZE`` whose first
    network reached the lowest validation loss, the losses in ``choice_scores_``; ``nets_`` (one network per
    ensemble member), ``histories_``, ``best_epochs_``, ``fit_seconds_``.
    """

    def __init__(self, **params):
        unknown = sorted(set(params) - {f.name for f in dataclasses.fields(ClassifyConfig)})
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(ClassifyConfig))
            raise UserError(f"SequenceClassifier: unknown parameter(s) {unknown}; known: {names}")
        self.config = ClassifyConfig(**params)

    # scikit-learn's parameter protocol
    def get_params(self, deep: bool = True) -> dict:
        return dataclasses.asdict(self.config)

    def set_params(self, **params) -> "SequenceClassifier":
        self.config = dataclasses.replace(self.config, **params)
        return self

    # -- data at the boundary -----------------------------------------------------------------------------
    def _prepare(self, X) -> list[np.ndarray]:
        cases = as_cases(X, fill=self.config.fill)
        if hasattr(self, "n_channels_") and cases[0].shape[0] != self.n_channels_:
            raise UserError(f"the classifier was trained on {self.n_channels_} channel(s), this data has "
                            f"{cases[0].shape[0]}; give data with the same channels as the training data")
        return [self._normalize(c) for c in cases]

    def _normalize(self, c: np.ndarray) -> np.ndarray:
        """One case (C, L) as the network sees it.

        global: (x - mean_) / scale_ per channel. series: each channel of each case z-normalised.
        series+scale: the z-normalised channels plus, per channel, two constant channels that give back
        what z-normalisation removed: log of the case's standard deviation and asinh of its mean, both
        relative to ``ref_`` (the median standard deviation of the training cases) and standardised with
        training statistics. Cases whose amplitudes differ by orders of magnitude (PLAID) keep their
        shapes visible and their scale known.
        """
        mode = self.normalize_
        if mode == "global":
            return (c - self.mean_[:, None]) / self.scale_[:, None]
        if mode == "none":
            return c
        mu, sd = c.mean(axis=1, keepdims=True), c.std(axis=1, keepdims=True)
        z = (c - mu) / np.where(sd > 1e-8, sd, 1.0)
        if mode == "series":
            return z
        f = (self._scale_features(mu[:, 0], sd[:, 0]) - self.feature_mean_) / self.feature_scale_
        return np.concatenate([z, np.repeat(f[:, None], c.shape[1], axis=1)])

    def _scale_features(self, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """(..., 2C): log standard deviation and asinh mean of cases (..., C), relative to ``ref_``."""
        return np.concatenate([np.log(sd / self.ref_ + 1e-6), np.arcsinh(mu / self.ref_)], axis=-1)

    def _fit_statistics(self, raw: list[np.ndarray]) -> None:
        """Every statistic the normalisations use, from the training cases only (see :meth:`_normalize`)."""
        values = np.concatenate(raw, axis=1)  # (C, sum of lengths)
        self.mean_ = values.mean(axis=1)
        sd = values.std(axis=1)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        case_mu = np.stack([c.mean(axis=1) for c in raw])  # (N, C)
        case_sd = np.stack([c.std(axis=1) for c in raw])
        ref = np.median(case_sd, axis=0)
        self.ref_ = np.where(ref > 1e-12, ref, self.scale_)
        feats = self._scale_features(case_mu, case_sd)  # (N, 2C)
        self.feature_mean_ = feats.mean(axis=0)
        fsd = feats.std(axis=0)
        self.feature_scale_ = np.where(fsd > 1e-6, fsd, 1.0)  # a constant feature stays at 0

    @property
    def n_inputs_(self) -> int:
        """Channels the network reads: 3 per data channel with series+scale, else 1."""
        return self.n_channels_ * (3 if self.normalize_ == "series+scale" else 1)

    def _labels(self, y, n: int) -> np.ndarray:
        if np.ndim(y) != 1 or len(y) != n:
            raise UserError(f"y must be a 1-D array of {n} labels (one per case), got shape {np.shape(y)}")
        kinds = {_label_kind(v) for v in (y.tolist() if isinstance(y, np.ndarray) else y)}
        if len(kinds) > 1 or not kinds <= {"string", "number"}:
            raise UserError(f"labels must be all strings or all numbers, got {' and '.join(sorted(kinds))}; convert "
                            "them first (for example np.asarray(y).astype(str))")
        return np.asarray(y)

    def _arch(self) -> dict:
        c = self.config
        return {"model": self.model_, "stride": self.stride_, "channels": [int(v) for v in c.channels],
                "kernels": [int(v) for v in c.kernels], "cell": c.cell, "hidden_size": c.hidden_size,
                "num_layers": c.num_layers, "bidirectional": c.bidirectional, "pool": c.pool,
                "front_size": c.front_size, "dropout": c.dropout}

    def _new_net(self, seed) -> ClassifierNet:
        return ClassifierNet(self.n_inputs_, self.n_classes_, self._arch(), dtype=np.dtype(self.config.dtype),
                             rng=as_rng(seed), threads=self.config.threads)

    # -- fit ------------------------------------------------------------------------------------------------
    def fit(self, X, y, log=None, progress: bool = False, stop=None) -> "SequenceClassifier":
        """Train on (X, y). ``log``: a callable taking one line of text, or None for silence; ``progress``:
        show a progress bar (the command layer decides). ``stop``: polled after every step; once true the
        network in training keeps its best state and no further one is trained (the command layer maps
        Ctrl-C/SIGTERM to it)."""
        cfg = self.config
        cfg.check()
        raw = as_cases(X, fill=cfg.fill)
        y = self._labels(y, len(raw))
        self.classes_, ys = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise UserError(f"the training labels hold a single class ({self.classes_[0]!r}); a classifier "
                            "needs at least two classes")
        self.n_classes_ = len(self.classes_)
        self.n_channels_ = raw[0].shape[0]
        lengths = np.array([c.shape[1] for c in raw])
        self.max_length_ = int(lengths.max())
        self.stride_ = int(cfg.stride) if cfg.stride else max(1, math.ceil(self.max_length_ / cfg.target_steps))
        self._fit_statistics(raw)
        rng = as_rng(cfg.random_state)
        seeds = rng.integers(0, 2**31, size=cfg.n_estimators)
        t0 = time.perf_counter()
        self.nets_, self.histories_, self.best_epochs_, self.choice_scores_ = [], [], [], {}
        self.model_ = self.normalize_ = None
        if cfg.model == "rocket":
            self._fit_rocket(raw, ys, seeds, t0, log, stop)
            self.fit_seconds_ = time.perf_counter() - t0
            return self
        models = AUTO_MODEL if cfg.model == "auto" else (cfg.model,)
        norms = AUTO_NORMALIZE if cfg.normalize == "auto" else (cfg.normalize,)
        candidates = [(m, n) for n in norms for m in models]  # by normalisation: one copy of the data each
        from rnnkit.distributed.fit_parallel import RaySession, data_parallel  # Ray itself only if workers > 1

        with RaySession(cfg.workers, cfg.ray_address):  # one Ray for every network of the ensemble
            data = None
            for k, seed in enumerate(seeds):
                if k and stop is not None and stop():
                    break
                if k and cfg.max_minutes is not None and time.perf_counter() - t0 > 60.0 * cfg.max_minutes:
                    if log is not None:
                        log(f"time budget spent: {k} of {cfg.n_estimators} ensemble members trained")
                    break
                train_idx, val_idx = stratified_split(ys, cfg.val_size, as_rng(int(seed)))
                if log is not None:
                    log(f"member {k + 1}/{cfg.n_estimators}: {len(train_idx)} training cases, {len(val_idx)} "
                        f"validation cases, stride {self.stride_}")
                if k == 0 and len(candidates) > 1 and not len(val_idx):
                    # nothing to choose on: the first model, and the data as given unless a normalisation was named
                    candidates = [(models[0], norms[0] if cfg.normalize != "auto" else "global")]
                trials = []
                runs = candidates if k == 0 else [(self.model_, self.normalize_)]
                for j, (model, mode) in enumerate(runs):
                    if j and stop is not None and stop():
                        break
                    minutes = None
                    if cfg.max_minutes is not None:  # an equal share of what is left for each network still to train
                        left = cfg.max_minutes - (time.perf_counter() - t0) / 60.0
                        minutes = max(left / (len(runs) - j + cfg.n_estimators - k - 1), 0.0)
                    if data is None or mode != self.normalize_:
                        self.normalize_ = mode
                        data = Padded([self._normalize(c) for c in raw], np.dtype(cfg.dtype))
                    self.model_ = model
                    net = self._new_net(int(seed))
                    history, best = train_net(net, data, ys, train_idx, val_idx, epochs=cfg.epochs,
                                              patience=cfg.patience, batch_size=min(cfg.batch_size, len(train_idx)),
                                              lr=cfg.lr, weight_decay=cfg.weight_decay, minutes=minutes,
                                              rng=as_rng(int(seed) + 1), log=log, progress=progress,
                                              monitor=cfg.monitor, stop=stop,
                                              parallel=data_parallel(cfg.workers, cfg.ray_address, log))
                    trials.append((_choice_key(history, cfg.monitor), model, mode, net, history, best, data))
                if len(trials) > 1:
                    self.choice_scores_ = {f"{t[1]}/{t[2]}": t[0][-1] for t in trials}
                    val, model, mode, net, history, best, data = min(trials, key=lambda t: t[0])
                    self.model_, self.normalize_ = model, mode
                    if log is not None:
                        log(f"chose model {model} with normalize {mode} (validation loss at the kept epoch: "
                            + ", ".join(f"{c} {v:.4f}" for c, v in self.choice_scores_.items()) + ")")
                else:
                    val, model, mode, net, history, best, data = trials[0]
                self.nets_.append(net)
                self.histories_.append(history)
                self.best_epochs_.append(float(best))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _fit_rocket(self, raw, ys, seeds, t0: float, log, stop) -> None:
        """The random-TDNN members (rnnkit.tasks.classify_rocket) on the data as given, standardised per channel
        (normalize "auto" means "global"), zero-padded with lengths."""
        self.model_ = "rocket"
        self.normalize_ = "global" if self.config.normalize == "auto" else self.config.normalize
        data = _finite32(Padded([self._normalize(c) for c in raw], np.float32), "training")
        self.nets_ = fit_members(data, ys, self.n_classes_, seeds, t0, self.config.max_minutes, log, stop)

    # -- predict --------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not getattr(self, "nets_", None):
            raise UserError("this SequenceClassifier is not fitted yet; call fit(X, y) or load a saved model")

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_cases, n_classes_), columns in the order of ``classes_``; the ensemble
        members' probabilities are averaged."""
        self._check_fitted()
        if self.model_ == "rocket":
            data = _finite32(Padded(self._prepare(X), np.float32), "given")
            return sum(m.predict_proba(data) for m in self.nets_) / len(self.nets_)
        data = Padded(self._prepare(X), np.dtype(self.config.dtype))
        probs = np.zeros((len(data), self.n_classes_))
        for net in self.nets_:
            z = predict_logits(net, data)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            probs += z / z.sum(axis=1, keepdims=True)
        return probs / len(self.nets_)

    def predict(self, X) -> np.ndarray:
        """The most probable label of each case (labels as given to fit)."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        pred = self.predict(X)
        y = self._labels(y, len(pred))
        return float(np.mean(pred.astype(object) == y.astype(object)))

    # -- save / load ----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        self._check_fitted()
        tensors, members = {}, []
        for k, net in enumerate(self.nets_):
            if self.model_ == "rocket":
                tensors.update(net.tensors(f"member{k}"))
                members.append(net.describe())
                continue
            for name, arr in {**net.params, **net.buffers()}.items():
                tensors[f"net{k}.{name}"] = arr
        meta = {"task": "classify", "format": FORMAT, "config": dataclasses.asdict(self.config),
                "classes_": [_json_label(v) for v in self.classes_], "n_channels_": int(self.n_channels_),
                "stride_": int(self.stride_), "max_length_": int(self.max_length_), "normalize_": self.normalize_,
                "model_": self.model_, "n_members_": len(self.nets_), "best_epochs_": self.best_epochs_,
                "fit_seconds_": float(self.fit_seconds_), "members_": members,
                **{name: [float(v) for v in getattr(self, name)] for name in STATISTICS}}
        return tensors, meta

    def save(self, path) -> str:
        from rnnkit.io import save_checkpoint

        tensors, meta = self.state()
        return os.fspath(save_checkpoint(path, tensors, meta))

    @classmethod
    def load(cls, path) -> "SequenceClassifier":
        """A classifier saved by :meth:`save`; every field and tensor checked, and whatever a damaged file
        still provokes becomes a UserError naming it."""
        from rnnkit.io import guard_load

        with guard_load(path):
            return cls._load(path)

    @classmethod
    def _load(cls, path) -> "SequenceClassifier":
        from rnnkit.io import dataclass_dict, load_checkpoint, read_meta

        meta = read_meta(path)
        if not isinstance(meta, dict) or meta.get("task") != "classify":
            task = meta.get("task") if isinstance(meta, dict) else None
            raise UserError(f"{path} is not a classifier checkpoint (task {task!r})")
        try:
            conf = dict(dataclass_dict(ClassifyConfig, meta["config"], f"checkpoint {path} metadata field 'config'"))
            conf["channels"], conf["kernels"] = tuple(conf["channels"]), tuple(conf["kernels"])
            conf["threads"] = None  # a setting of the machine that trained it, not of the model: automatic here
            self = cls(**conf)
            self.config.check()
            classes = meta["classes_"]
            if not isinstance(classes, list) or len(classes) < 2 or any(
                    isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in classes):
                raise ValueError("classes_ must be a flat list of two or more strings or numbers")
            self.classes_ = np.array(classes)
            self.n_classes_ = len(self.classes_)
            self.n_channels_ = int(meta["n_channels_"])
            self.stride_, self.max_length_ = int(meta["stride_"]), int(meta["max_length_"])
            self.normalize_, self.model_ = str(meta["normalize_"]), str(meta["model_"])
            if self.model_ not in MODELS + ("rocket",):
                raise ValueError(f"unknown model_ {self.model_!r}")
            if self.normalize_ not in NORMALIZE[1:]:
                raise ValueError(f"unknown normalize_ {self.normalize_!r}")
            self.best_epochs_ = list(meta["best_epochs_"])
            self.fit_seconds_ = float(meta["fit_seconds_"])
            C = self.n_channels_
            for name in STATISTICS:
                value = np.array(meta[name], dtype=np.float64)
                if value.shape != ((2 * C,) if name.startswith("feature") else (C,)) or not np.isfinite(value).all():
                    raise ValueError(f"{name} is not {C if not name.startswith('feature') else 2 * C} finite numbers")
                setattr(self, name, value)
            members = int(meta["n_members_"])
            if not 1 <= members <= self.config.n_estimators:
                raise ValueError(f"n_members_ {members} outside 1..{self.config.n_estimators}")
            if self.model_ == "rocket":
                infos = meta["members_"]
                if not isinstance(infos, list) or len(infos) != members or not all(isinstance(i, dict) for i in infos):
                    raise ValueError("members_ must list one description per member")
                expected = {}
                for k, info in enumerate(infos):
                    expected.update(RocketMember.expected(f"member{k}", info, self.n_inputs_, self.n_classes_))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"checkpoint {path}: metadata is damaged ({exc}); retrain the classifier") from None
        if self.model_ == "rocket":
            tensors, _ = load_checkpoint(path, expected=expected)
            try:
                self.nets_ = [RocketMember.from_tensors(tensors, f"member{k}", infos[k]) for k in range(members)]
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f"checkpoint {path}: a random-TDNN member is damaged ({exc}); retrain the "
                                "classifier") from None
            self.histories_ = []
            return self
        nets = [self._new_net(0) for _ in range(members)]
        expected = {f"net{k}.{n}": a for k, net in enumerate(nets)
                    for n, a in {**net.params, **net.buffers()}.items()}
        tensors, _ = load_checkpoint(path, expected=expected)
        for k, net in enumerate(nets):
            arrays = {**net.params, **net.buffers()}
            for n, a in arrays.items():
                a[...] = tensors[f"net{k}.{n}"]
        self.nets_, self.histories_ = nets, []
        return self


def fit(X, y, **params) -> SequenceClassifier:
    """Fit a :class:`SequenceClassifier` with ``params`` (fields of :class:`ClassifyConfig`)."""
    return SequenceClassifier(**params).fit(X, y)
