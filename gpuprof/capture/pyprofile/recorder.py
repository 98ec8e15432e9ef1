"""The raw rows one ``gpuprof.profile()`` collects, appended from any thread.

Times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC on Linux): the clock Triton traces,
bpftrace and gpuprof's nsys clock marks use, so these rows join them without an offset.
A list append is atomic under the GIL, so the hot path (one inference call) takes no lock.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple


class Call(NamedTuple):
    """One captured inference call (stored as a plain tuple in this order: see add_call)."""

    runtime: str       # "onnxruntime", "tensorrt.execute_async_v3", "tritonclient.http", ...
    start_ns: int
    end_ns: int
    tid: int


class Span(NamedTuple):
    """One ``prof.record(label)`` (or the whole program under the environment variable)."""

    label: str
    start_ns: int
    end_ns: int
    tid: int


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    # call index -> GPU time (CUDA events), filled when profiling stops
    compute_ns: dict[int, int] = field(default_factory=dict)
    paused: bool = False
    left_out: int = 0          # calls made while paused (counted, not timed)
    raised: int = 0            # calls that raised: not inferences, counted only
    warnings: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    _reported: bool = False

    def add_call(self, runtime: str, start_ns: int, end_ns: int) -> int:
        # a plain tuple in Call's field order: a NamedTuple costs ~0.5 µs more per call
        self.calls.append((runtime, start_ns, end_ns, threading.get_native_id()))  # type: ignore[arg-type]
        return len(self.calls) - 1

    def add_span(self, label: str, start_ns: int, end_ns: int, tid: int) -> None:
        self.spans.append(Span(label, start_ns, end_ns, tid))

    def warn(self, message: str) -> None:
        """A capture limitation worth telling the user (printed once, kept in the run)."""
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"gpuprof: warning: {message}", file=sys.stderr)

    def failed(self, where: str, exc: BaseException) -> None:
        """An error inside the profiler: reported once per process, never raised into the
        user's program (what it concerned is left out of the run)."""
        if not self._reported:
            self._reported = True
            print(f"gpuprof: error in the profiler ({where}: {exc.__class__.__name__}: {exc}); "
                  "the program continues, that data is left out", file=sys.stderr)


def now_ns() -> int:
    return time.monotonic_ns()
