"""Which function exports which model: one registry per format, keyed by class name ("module:Class").

Keying by name lets a task's exporter be registered without importing the task, and a subclass uses its
nearest registered base class's exporter.
"""
from __future__ import annotations

import importlib
from typing import Callable

from rnnkit.errors import UserError

# modules holding exporters of task models: each registers itself when imported
TASK_EXPORTERS = ("rnnkit.export.forecast", "rnnkit.export.classify")


class Registry:
    """``@registry.register("pkg.module:Class")`` on ``fn(model)``; ``registry.find(model)`` returns it."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self._fns: dict[str, Callable] = {}

    def register(self, class_path: str):
        def decorate(fn):
            self._fns[class_path] = fn
            return fn
        return decorate

    def find(self, model) -> Callable:
        for name in TASK_EXPORTERS:
            importlib.import_module(name)
        for cls in type(model).__mro__:  # the most specific class first
            fn = self._fns.get(f"{cls.__module__}:{cls.__qualname__}")
            if fn is not None:
                return fn
        known = ", ".join(sorted(p.split(":")[1] for p in self._fns))
        raise UserError(f"no {self.fmt} exporter for a {type(model).__name__}; exportable models: {known}")
