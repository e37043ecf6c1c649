"""Shared fixtures: one small valid run of each task, built once per test session, copied per test."""
from __future__ import annotations

import contextlib
import signal

import pytest

from tests.io import runs


@pytest.fixture(scope="session")
def valid_files(tmp_path_factory):
    """{kind: bytes of a valid checkpoint} for text, forecast, memory and classify, plus the text run folder."""
    base = tmp_path_factory.mktemp("hardio_valid")
    text_dir = runs.text_run(base / "text")
    out = {"text": (text_dir / "best.safetensors").read_bytes()}
    for kind, make in (("forecast", runs.forecast_file), ("memory", runs.memory_file),
                       ("classify", runs.classify_file)):
        folder = base / kind
        folder.mkdir()
        out[kind] = make(folder).read_bytes()
    out["text_dir"] = text_dir
    return out


class TimeLimit(Exception):
    """A loader ran past its time limit (it would hang a user's shell)."""


@contextlib.contextmanager
def time_limit(seconds: int):
    """SIGALRM after ``seconds``: a blocking open or a runaway loop becomes TimeLimit instead of a hang."""
    def fire(signum, frame):
        raise TimeLimit(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
