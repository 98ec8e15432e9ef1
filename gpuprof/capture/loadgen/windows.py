"""Measure one load level: warm up, then windows until the last three agree (or the trials end).

The load keeps running across windows; each window is cut out of the record stream by
completion time and framed by two statistics samples. Stops early on the run's deadline and
turns a dead server into ``ServerGone`` so the runner can keep what it already measured. A
window's numbers and the stability decision come from the ``SweepAnalysis`` the composer hands
in (``analysis.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ...errors import CaptureError
from .analysis import SweepAnalysis
from .drivers import Budget
from .options import LoadSpec
from .server_api import ServerAPI, ServerGone, stats_delta
from .transport import TIMED_OUT

POLL_S = 0.005


class TimeCapReached(Exception):
    """The run's overall time cap (or request cap) ended this level early."""


@dataclass(eq=False)
class Window:
    level: float
    trial: int
    start_ns: int
    end_ns: int
    records: pd.DataFrame
    delta: dict
    metrics: dict


@dataclass
class LevelResult:
    level: float
    windows: list[Window] = field(default_factory=list)
    stable: bool = False
    complete: bool = False                        # False: the run stopped during this level
    metrics: dict = field(default_factory=dict)   # merged over the counted windows
    trace_rate: int | None = None                 # --trace: the server traced 1 in this many
    counted: list[Window] = field(default_factory=list)  # the last windows, merged into metrics


class RecordCursor:
    """Hands out completed records by end time; trims the shared list as it goes."""

    def __init__(self, records: list):
        self.records = records
        self.carry: list = []

    def discard(self) -> None:
        del self.records[:len(self.records)]  # one slice deletion: atomic under the GIL
        self.carry = []

    def pending(self) -> int:
        return len(self.records) + len(self.carry)

    def take(self, start_ns: int, end_ns: int) -> list:
        n = len(self.records)
        batch, self.carry = self.carry + self.records[:n], []
        del self.records[:n]
        inside = [r for r in batch if start_ns < r.end_ns <= end_ns]
        self.carry = [r for r in batch if r.end_ns > end_ns]
        return inside


@dataclass
class LevelMeter:
    spec: LoadSpec
    api: ServerAPI
    analysis: SweepAnalysis
    cursor: RecordCursor
    prefix: str
    deadline_ns: int
    budget: Budget
    progress: Callable[[str, dict], None] | None = None
    tracer: object | None = None   # tracing.TraceSession with --trace

    def measure(self, result: LevelResult) -> None:
        """Fill ``result`` window by window; whatever happens, merge what was measured."""
        try:
            self._warm_up(result)
            self.cursor.discard()
            for trial in range(self.spec.max_trials):
                self._measure_window(result, trial)
                if self.analysis.stable([w.metrics for w in result.windows]):
                    result.stable = True
                    break
            result.complete = True
        finally:
            result.counted = result.windows[-self.analysis.counted_windows:]
            result.metrics = self._merge(result.counted)

    def _warm_up(self, result: LevelResult) -> None:
        """Run the level unmeasured; when tracing, trace (almost) nothing meanwhile and then
        pick the sampling rate that keeps the server under its safe traced rate."""
        if self.tracer is None or self.spec.trace_rate is not None:
            self._sleep(self.spec.warmup_ms / 1000)
            result.trace_rate = self.spec.trace_rate
            return
        from .tracing import MIN_TRACE_WARMUP_S, sample_rate

        self.tracer.set_rate(None)
        self.cursor.discard()
        started = time.perf_counter_ns()
        self._sleep(max(self.spec.warmup_ms / 1000, MIN_TRACE_WARMUP_S))
        per_s = self.cursor.pending() / ((time.perf_counter_ns() - started) / 1e9)
        result.trace_rate = sample_rate(per_s)   # Triton traces requests, not samples
        self.tracer.set_rate(result.trace_rate)

    def _measure_window(self, result: LevelResult, trial: int) -> None:
        window = self._window(result.level, trial)
        result.windows.append(window)
        self._emit("window", level=result.level, trial=trial, metrics=window.metrics)
        self._check_failures(window)

    def _window(self, level: float, trial: int) -> Window:
        before = self.api.stats(self.spec.model, self.spec.model_version)
        start = time.perf_counter_ns()
        self.cursor.take(0, start)  # drop what ended before the window, so counts are exact
        self._wait_window(start)
        end = time.perf_counter_ns()
        after = self.api.stats(self.spec.model, self.spec.model_version)
        delta = stats_delta(before, after)
        frame, metrics = self.analysis.window(self.cursor.take(start, end), self.prefix,
                                              end - start, delta)
        return Window(level, trial, start, end, frame, delta, metrics)

    def _merge(self, windows: list[Window]) -> dict:
        """One result from several windows: their requests pooled, durations and deltas summed."""
        if not windows:
            return {}
        return self.analysis.merged([w.records for w in windows],
                                    sum(w.end_ns - w.start_ns for w in windows),
                                    [w.delta for w in windows])

    def _wait_window(self, start: int) -> None:
        if self.spec.measurement_mode == "time_windows":
            self._sleep(self.spec.measurement_interval_ms / 1000)
            return
        cap = start + int(self.spec.count_window_cap_s * 1e9)
        while self.cursor.pending() < self.spec.measurement_request_count:
            if time.perf_counter_ns() >= cap:
                return
            self._sleep(POLL_S)

    def _sleep(self, seconds: float) -> None:
        """Sleep, but end the level when the run's deadline or request budget runs out."""
        until = time.perf_counter_ns() + int(seconds * 1e9)
        while (now := time.perf_counter_ns()) < until:
            if now >= self.deadline_ns or self.budget.exhausted:
                raise TimeCapReached()
            time.sleep(min(0.05, (until - now) / 1e9))

    def _check_failures(self, window: Window) -> None:
        metrics = window.metrics
        if metrics["errors"] == 0:
            return
        if not self.api.is_live():
            raise ServerGone(f"Triton at {self.spec.url} stopped answering during the run",
                             "Check the server's log; the results so far are kept")
        if metrics["samples"] == 0:
            errors = window.records.loc[~window.records["ok"], "error"]
            if errors.str.startswith(TIMED_OUT).all():  # live but silent: stuck, not refusing
                raise ServerGone(f"Triton at {self.spec.url} is live but answered no request "
                                 f"in a window ({errors.iloc[0]})",
                                 "Check the server's log; the results so far are kept")
            raise CaptureError(f"every request failed in a window: {errors.iloc[0]}",
                               "Check the server's log")

    def _emit(self, kind: str, **data) -> None:
        if self.progress:
            self.progress(kind, data)

