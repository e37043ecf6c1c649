"""Ctrl-C and SIGTERM for long commands: the first signal asks the running task to stop after its current
step (the task polls the ``stop`` callable it was given, then saves); a second one aborts at once. Commands
whose tasks cannot stop midway use ``AbortOnSignal``: SIGTERM then aborts exactly like Ctrl-C."""
from __future__ import annotations

import functools
import signal
import sys
import threading

INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells use)


class GracefulStop:
    """A context manager and a ``stop`` callable: ``with GracefulStop() as stop: task.train(..., stop=stop)``.

    Inside the block the first SIGINT or SIGTERM only makes ``stop()`` return True (and prints ``notice``
    once, to stderr); the next one raises KeyboardInterrupt (which the CLI turns into "interrupted", exit
    status 130). Checkpoints are written atomically, so an abort during a save leaves the previous one
    whole. The previous handlers are restored on exit. Outside the main thread it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, signals=SIGNALS, notice: str | None = None):
        self.signals = tuple(signals)
        self.notice = notice
        self.requested = False
        self.signal_name: str | None = None  # "SIGINT" or "SIGTERM" once requested
        self._old: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self.notice:
            print(f"\n{self.signal_name}: {self.notice}", file=sys.stderr, flush=True)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)  # None: a handler not set from Python
        self._old.clear()

    def report(self, command: str, what: str) -> int:
        """After a stop was requested: print one line (``what`` says where the work was saved) and return
        the exit status 130."""
        print(f"rnnkit {command}: interrupted ({self.signal_name or 'SIGINT'}); {what}", file=sys.stderr)
        return INTERRUPTED


class AbortOnSignal:
    """``with AbortOnSignal():`` -- SIGTERM raises KeyboardInterrupt like Ctrl-C does, so ``finally`` blocks
    run (temporary files removed, locks released) and the CLI exits with status 130 instead of dying."""

    def __init__(self):
        self._old, self._set = None, False

    def _handle(self, signum, frame):
        raise KeyboardInterrupt

    def __enter__(self) -> "AbortOnSignal":
        if threading.current_thread() is threading.main_thread():
            self._old, self._set = signal.signal(signal.SIGTERM, self._handle), True
        return self

    def __exit__(self, *exc) -> None:
        if self._set:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._old is None else self._old)
        self._old, self._set = None, False


def guarded(command):
    """Decorator for a command ``f(args, locks)`` whose task cannot stop midway: SIGTERM aborts like Ctrl-C
    (exit 130, temporary files removed) and every run folder it locks with ``locks.hold(folder)``
    (:class:`rnnkit.io.LockScope`) is released when it ends, however it ends."""
    @functools.wraps(command)
    def run(args):
        from rnnkit.io import LockScope

        with AbortOnSignal(), LockScope() as locks:
            return command(args, locks)
    return run


def stop_callback(stop: GracefulStop):
    """A :func:`rnnkit.train.fit` callback that ends training after the current step once ``stop()`` is true
    (for tasks that take callbacks rather than a ``stop`` callable)."""
    from rnnkit.train import Callback, StopTraining

    class _Stop(Callback):
        def on_step(self, record):
            if stop():
                raise StopTraining
            return None
    return _Stop()
