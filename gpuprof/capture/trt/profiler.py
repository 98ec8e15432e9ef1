"""Per-layer times from TensorRT's ``IProfiler``.

Per-layer reporting adds overhead (the sum of layer times can exceed the whole-engine GPU time),
so the runner uses it only in a separate pass after the timed iterations, with
``context.enqueue_emits_profile = False`` and one ``context.report_to_profiler()`` per iteration;
that keeps enqueue asynchronous and works with CUDA graphs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .interfaces import interface_subclass

SOURCE = "iprofiler"


@dataclass(frozen=True)
class LayerTime:
    iteration: int
    layer: str
    duration_ns: int
    order: int      # position of the report within its iteration (TensorRT reports in order)


class LayerTimeLog:
    """Collects ``report_layer_time`` calls, grouped by the iteration the runner is in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.iteration = 0
        self._order = 0
        self.records: list[LayerTime] = []

    def next_iteration(self, iteration: int) -> None:
        with self._lock:
            self.iteration, self._order = iteration, 0

    def report(self, layer_name: str, ms: float) -> None:
        with self._lock:
            self.records.append(LayerTime(self.iteration, layer_name, round(ms * 1e6), self._order))
            self._order += 1

    def rows(self) -> list[dict[str, Any]]:
        """Rows for the ``layer_timings`` table."""
        with self._lock:
            records = list(self.records)
        return [{"iteration": r.iteration, "layer": r.layer, "duration_ns": r.duration_ns,
                 "order": r.order, "source": SOURCE} for r in records]


def profiler_class(trt: ModuleType) -> type:
    """A subclass of ``trt.IProfiler`` for this TensorRT flavour (cached)."""
    return interface_subclass(trt, "IProfiler", _make_profiler_class)


def recording_profiler(trt: ModuleType, log: LayerTimeLog) -> Any:
    """An ``IProfiler`` to attach with ``context.profiler = ...``."""
    return profiler_class(trt)(log)


def _make_profiler_class(base: Any) -> type:
    class RecordingProfiler(base):
        def __init__(self, log: LayerTimeLog):
            base.__init__(self)
            self.log = log

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.log.report(layer_name, ms)

    return RecordingProfiler
