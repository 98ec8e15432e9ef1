"""A TensorRT ``ILogger`` that keeps messages instead of printing them.

TensorRT's stock ``trt.Logger`` writes to stderr; a library must not. This one stores messages
(so a failed build can quote TensorRT's own errors) and forwards them to an optional callback.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .interfaces import interface_subclass

# (severity name, message)
LogCallback = Callable[[str, str], None]
MAX_KEPT = 500


class LogRecords:
    def __init__(self, callback: LogCallback | None = None):
        self.callback = callback
        self.messages: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, severity: str, message: str) -> None:
        with self._lock:
            self.messages.append((severity, message))
            del self.messages[:-MAX_KEPT]
        if self.callback is not None:
            with contextlib.suppress(Exception):
                self.callback(severity, message)

    def errors(self, last: int = 5) -> list[str]:
        with self._lock:
            found = [m for s, m in self.messages if s in ("ERROR", "INTERNAL_ERROR")]
        return found[-last:]


def logger_class(trt: ModuleType) -> type:
    return interface_subclass(trt, "ILogger", _make_logger_class)


def collecting_logger(trt: ModuleType, records: LogRecords, min_severity: str = "WARNING") -> Any:
    """An ``ILogger`` passing messages at ``min_severity`` or worse to ``records``."""
    return logger_class(trt)(records, int(getattr(trt.ILogger.Severity, min_severity)))


def _make_logger_class(base: Any) -> type:
    class CollectingLogger(base):
        def __init__(self, records: LogRecords, level: int):
            base.__init__(self)
            self.records = records
            self.level = level

        def log(self, severity: Any, msg: str) -> None:
            # Severities run from INTERNAL_ERROR (0) to VERBOSE (4); not every flavour's
            # ILogger has min_severity, so the threshold is kept here.
            if int(severity) <= self.level:
                self.records.add(getattr(severity, "name", str(severity)), msg)

    return CollectingLogger
