"""Ctrl-C and SIGTERM for long commands: the first signal asks the running task to stop after its current
step (the task polls the ``stop`` callable it was given, then saves); a second one aborts at once."""
from __future__ import annotations

import signal
import threading


class GracefulStop:
    """A context manager and a ``stop`` callable: ``with GracefulStop() as stop: task.train(..., stop=stop)``.

    Inside the block the first SIGINT or SIGTERM only makes ``stop()`` return True; the next one raises
    KeyboardInterrupt (which the CLI turns into "interrupted", exit status 130). The previous handlers are
    restored on exit. Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, signals=SIGNALS):
        self.signals = tuple(signals)
        self.requested = False
        self._old: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)  # None: a handler not set from Python
        self._old.clear()
