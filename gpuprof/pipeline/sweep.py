"""A load test, composed: the sweep (capture/loadgen) measured with analysis's window numbers
and stability rule, and its server trace read by ingest as soon as the sweep ends.

The measuring loop needs analysis while it runs (is a level stable yet? what did this window
measure?), so the composer hands it ``SweepMeasures``; capture calls it without importing
analyze or ingest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze import perf
from ..errors import GpuprofError
from ..ingest import triton_trace


class SweepMeasures:
    """``capture.loadgen.analysis.SweepAnalysis`` for one spec: perf_analyzer's rules
    (``analyze.perf``) and Triton's trace parts (``ingest.triton_trace``)."""

    counted_windows = perf.STABILITY_WINDOWS

    def __init__(self, spec):
        self.batch_size = spec.batch_size
        self.stability_pct = spec.stability_pct
        self.latency_key = perf.stable_latency_key(spec.percentile)

    def window(self, records: list, prefix: str, duration_ns: int,
               delta: dict) -> tuple[pd.DataFrame, dict]:
        frame = perf.records_frame(records, prefix)
        return frame, perf.window_metrics(frame, duration_ns, delta, self.batch_size)

    def merged(self, frames: list[pd.DataFrame], duration_ns: int, deltas: list[dict]) -> dict:
        return perf.window_metrics(pd.concat(frames, ignore_index=True), duration_ns,
                                   perf.sum_deltas(deltas), self.batch_size)

    def stable(self, metrics: list[dict]) -> bool:
        return perf.is_stable(metrics, self.stability_pct, self.latency_key)

    def check_trace_part(self, path: Path):
        return triton_trace.check_part(path)


def run_sweep(spec, progress=None):
    """Run the load test described by ``spec`` (``progress(kind, data)`` gets live events) and
    read its trace; returns the ``capture.loadgen.SweepResult``."""
    from ..capture.loadgen.runner import measure_sweep

    result = measure_sweep(spec, SweepMeasures(spec), progress)
    read_trace(result)
    return result


def read_trace(result) -> None:
    """Read a finished sweep's trace parts at once, with the records parsed while waiting for
    them, so no raw trace record outlives this call; a trace ingest cannot read becomes
    ``trace_error``. A list the live server keeps open is how Triton writes without a log
    frequency, not damage."""
    parsed, result.trace_parsed = result.trace_parsed, {}
    if not result.spec.trace or result.trace_error is not None:
        return
    try:
        trace = triton_trace.read_trace_parts(result.trace_files, parsed, open_lists=True)
    except GpuprofError as exc:
        result.trace_error = exc.message
        return
    result.trace_requests = trace.profile.tables["requests"]
    result.trace_issues = trace.issues


def level_table(result) -> pd.DataFrame:
    """One row per finished level of a sweep (merged windows), raw units (ns)."""
    return perf.level_table(result.level_rows())


def read_trace_requests(files: list[Path]) -> pd.DataFrame:
    """The ``requests`` table of exactly these trace files (``ingest.triton_trace``)."""
    return triton_trace.read_trace_parts(files, {}).profile.tables["requests"]
