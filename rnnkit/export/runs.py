"""The trained model of a run folder (or checkpoint file), whatever task wrote it, for export.

Each task contributes one entry to :data:`RUN_KINDS`: a test on the checkpoint's metadata and a loader.
"""
from __future__ import annotations

from pathlib import Path


from rnnkit.errors import UserError


def _text(path: Path):
    from rnnkit.tasks.text import load

    return load(path)


def _forecast(path: Path):
    from rnnkit.tasks.forecast import Forecaster

    return Forecaster.load(path)


def _classify(path: Path):
    from rnnkit.tasks.classify import SequenceClassifier

    return SequenceClassifier.load(path)


def _memory(path: Path):
    from rnnkit.tasks.memory import load

    return load(path)[0]


def _is_memory(meta: dict) -> bool:
    from rnnkit.tasks.memory import TASKS

    cfg = meta.get("config")
    return isinstance(cfg, dict) and cfg.get("task") in TASKS and "cell" in cfg


# (what wrote it, test on the checkpoint metadata, loader of the checkpoint file)
RUN_KINDS = [
    ("rnnkit text train", lambda meta: meta.get("kind") == "rnnkit-text", _text),
    ("rnnkit forecast train", lambda meta: meta.get("task") == "forecast", _forecast),
    ("rnnkit classify train", lambda meta: meta.get("task") == "classify", _classify),
    ("rnnkit memory run", _is_memory, _memory),
]


def checkpoint_of(path, refit: bool = True) -> Path:
    """The checkpoint file of a run folder: a forecast's model refitted on all the data (the one ``forecast
    predict`` uses; ``refit=False``: the evaluated one), model.safetensors, else the best step checkpoint."""
    from rnnkit import io

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; give a run folder or a checkpoint file")
    if path.is_dir():
        for name in ("model_refit.safetensors",) * refit + ("model.safetensors",):
            if (path / name).is_file():
                return path / name
    return io.resolve_checkpoint(path, prefer="best")


def load_run(path, refit: bool = True):
    """The model of a run folder or checkpoint file written by ``rnnkit text train``, ``forecast train``,
    ``classify train`` or ``memory run`` (a LanguageModel, Forecaster, SequenceClassifier or SequenceModel)."""
    from rnnkit import io

    ckpt = checkpoint_of(path, refit)
    meta = io.read_meta(ckpt)
    for _, test, load in RUN_KINDS:
        if test(meta):
            return load(ckpt)
    raise UserError(f"{ckpt} is an rnnkit checkpoint of a kind the exporter does not know; it exports runs of "
                    f"{', '.join(name for name, _, _ in RUN_KINDS)}")
