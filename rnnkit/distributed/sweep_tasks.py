"""What a sweep trial does for each task: the config class, the validation metric ASHA watches, the default
search space, how the data are read once on the driver, and the trial itself (train into the trial's run
folder, report the validation metric to Tune at every evaluation). Trials run single-process, BLAS at 1
thread, one CPU each."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from rnnkit.errors import UserError

DEFAULT_SPACES = {
    # char-rnn: width, learning rate and truncated-BPTT length matter most (benchmarks/charlm.py)
    "text": {"cell": {"choice": ["gru", "lstm"]}, "hidden_size": {"choice": [128, 256, 384]},
             "lr": {"loguniform": [5e-4, 5e-3]}, "seq_len": {"choice": [32, 64, 128]}},
    "classify": {"model": {"choice": ["combined", "rnn"]}, "hidden_size": {"choice": [32, 64, 128]},
                 "lr": {"loguniform": [3e-4, 3e-3]}, "dropout": {"uniform": [0.0, 0.5]}},
    "forecast": {"cell": {"choice": ["gru", "lstm", "mlp"]}, "hidden_size": {"choice": [16, 32, 64]},
                 "lr": {"loguniform": [1e-3, 1e-2]}, "weight_decay": {"choice": [0.0, 1e-4]}},
}
METRICS = {"text": "val_loss", "classify": "val_loss", "forecast": "val_mse"}  # all minimised


def config_class(task: str):
    if task == "text":
        from rnnkit.tasks.text import TextConfig
        return TextConfig
    if task == "classify":
        from rnnkit.tasks.classify_config import ClassifyConfig
        return ClassifyConfig
    from rnnkit.tasks.forecast_config import ForecastConfig
    return ForecastConfig


def config_fields(task: str) -> dict:
    return {f.name: f for f in dataclasses.fields(config_class(task))}


def make_config(task: str, values: dict):
    cls = config_class(task)
    cfg = cls(**{k: tuple(v) if isinstance(v, list) and k in ("channels", "kernels") else v
                 for k, v in values.items()})
    cfg.check()
    return cfg


def read_data(task: str, spec: dict):
    """The data of a sweep, read once on the driver (they travel to the trials through Ray's object store)."""
    if task == "text":
        from rnnkit.data.text import read_texts
        corpus, _ = read_texts(spec.get("files") or None, errors="replace" if spec.get("replace_bad_bytes") else
                               "strict")
        return corpus
    if task == "classify":
        from rnnkit.data.tsfile import read_cases
        path = spec["files"][0] if spec.get("files") else None
        if path is None or len(spec["files"]) != 1:
            raise UserError("rnnkit sweep classify needs one labelled training file (.ts or .csv)")
        kw = {"label_col": spec.get("label_col") or "label"} if Path(path).suffix.lower() == ".csv" else {}
        X, y = read_cases(path, **kw)
        if y is None:
            raise UserError(f"{path}: the file has no class labels; a sweep needs labelled cases")
        return X, y
    from rnnkit.data.series import load_csv
    if not spec.get("files") or len(spec["files"]) != 1 or not spec.get("target"):
        raise UserError("rnnkit sweep forecast needs one CSV file and --target COLUMN")
    return load_csv(spec["files"][0], target=spec["target"], time=spec.get("time"))


def _report(tune, metrics: dict) -> None:
    tune.report({k: float(v) for k, v in metrics.items()})


def run_trial(params: dict, task: str, base: dict, data, sweep_dir: str) -> None:
    """The Tune trainable: one trial trains ``base`` updated with ``params`` and reports as it goes."""
    from ray import tune
    from threadpoolctl import threadpool_limits

    out = Path(sweep_dir) / "trials" / tune.get_context().get_trial_id()
    out.mkdir(parents=True, exist_ok=True)
    values = {**base, **params}
    with threadpool_limits(limits=1):
        if task == "text":
            _text_trial(tune, values, data, out)
        elif task == "classify":
            _classify_trial(tune, values, data, out)
        else:
            _forecast_trial(tune, values, data, out)


def _text_trial(tune, values, corpus, out: Path) -> None:
    from rnnkit import io
    from rnnkit.tasks import text

    import tempfile

    cfg = make_config("text", {**values, "workers": 1, "ray_address": None, "threads": 1})  # one CPU per trial
    # a Tune checkpoint is a small JSON file with the last reported step: a trial restored after an interrupt
    # keeps its report count (ASHA's clock) and does not report the evaluations Tune already has
    last = tune.get_checkpoint()
    done = 0
    if last is not None:
        with last.as_directory() as d:
            done = int(json.loads((Path(d) / "reported.json").read_text())["step"])

    def report(rows, _cfg):
        nonlocal done
        for r in rows:
            if r["kind"] == "val" and int(r["step"]) > done:
                done = int(r["step"])
                with tempfile.TemporaryDirectory(prefix="rnnkit_sweep_") as d:
                    (Path(d) / "reported.json").write_text(json.dumps({"step": done}))
                    tune.report({"val_loss": float(r["loss"]), "step": done},
                                checkpoint=tune.Checkpoint.from_directory(d))

    resume = out if io.step_checkpoints(out) else None  # a trial restarted after an interrupt continues its run
    text.train(text=corpus, config=None if resume else cfg, out=out, resume=resume, progress=False,
               on_metrics=report)


def _classify_trial(tune, values, data, out: Path) -> None:
    import numpy as np

    from rnnkit.tasks.classify import SequenceClassifier

    make_config("classify", values)
    X, y = data
    clf = SequenceClassifier(**values).fit(X, y)
    clf.save(out / "model.safetensors")
    # the members' best validation loss (their own held-out split of the training file), averaged
    best = [min(r["val_loss"] for r in h.evals) for h in clf.histories_ if h.evals]
    acc = [max(r["val_acc"] for r in h.evals) for h in clf.histories_ if h.evals and "val_acc" in h.evals[0]]
    metrics = {"val_loss": float(np.mean(best)) if best else float("nan")}
    if acc:
        metrics["val_acc"] = float(np.mean(acc))
    _report(tune, metrics)


def _forecast_trial(tune, values, series, out: Path) -> None:
    from rnnkit.tasks.forecast import Forecaster

    cfg = make_config("forecast", values)

    class Report:  # fit's callback: every epoch's validation error reaches ASHA
        def on_eval(self, record):
            if "val_mse" in record:
                _report(tune, {"val_mse": record["val_mse"]})

    model = Forecaster(config=cfg).fit(series, callback=Report())
    model.save(out / "model.safetensors")


def write_json(path: Path, obj) -> None:
    from rnnkit import io
    io.atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def abspaths(files) -> list[str]:
    return [os.path.abspath(f) for f in files or []]
