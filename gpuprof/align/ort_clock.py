"""ONNX Runtime's profiles on the run's clock.

``run_bracket_clock``: a profile ``gpuprof engine`` took itself, put on its perf_counter_ns
clock by the host's brackets around each profiled ``session.run``.

The rest: the profiles of the model ``gpuprof triton serve`` writes, on CLOCK_MONOTONIC,
verified by the model's own stamps.

The ingest puts each profile on the monotonic clock with the model's anchor (profiling start
in realtime ns, realtime minus monotonic measured in the stub). That arithmetic is checked,
not trusted: every ``model_run`` event must lie inside the python stamps taken around its
``session.run`` call, which bounds the offset still missing (``causality.offset_bounds``).
ORT writes ``ts``/``dur`` truncated to whole µs, so a recorded start can be up to 999 ns
before the true one: the "started after the stamp" pairs allow that much.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import ClockDomain
from .causality import clock_domain, offset_bounds

SOURCE = "onnxruntime"
TRUNCATION_NS = 999


def ort_clock(runs: pd.DataFrame) -> ClockDomain:
    """The anchor of the profiles' node times, from the runs ORT recorded (``runs`` as
    ``ingest.ort_server_profile`` reads them; runs without ORT times are skipped)."""
    timed = runs.dropna(subset=["ort_start_ns", "ort_end_ns"])
    start = timed["ort_start_ns"].to_numpy(dtype=np.float64)
    end = timed["ort_end_ns"].to_numpy(dtype=np.float64)
    after = timed["before_ns"].to_numpy(dtype=np.float64) - (start + TRUNCATION_NS)
    before = timed["after_ns"].to_numpy(dtype=np.float64) - end
    bounds = offset_bounds([after], [before])
    return clock_domain(SOURCE, bounds, "ONNX Runtime runs (put on it by the realtime "
                        "anchor) inside the model's stamps")


def shift(frame: pd.DataFrame, columns: list[str], offset_ns: int) -> pd.DataFrame:
    """``frame`` with ``offset_ns`` added to its instants (a copy; durations untouched)."""
    if not offset_ns:
        return frame
    return frame.assign(**{c: frame[c] + offset_ns for c in columns})


def run_bracket_clock(events: list[dict], brackets: list[tuple[int, int]]) -> ClockDomain:
    """Offset from ORT's profile clock (µs since profiling start) to ``perf_counter_ns``.

    Each ``model_run`` lies inside the host's bracket around its ``session.run`` call, so the
    offset lies in ``[max(h0 - ts), min(h1 - ts - dur)]`` over all runs: we take the middle and
    half the width as the error bound (at least ORT's 1 µs resolution).
    """
    runs = sorted((e["ts"] * 1000, e["dur"] * 1000) for e in events
                  if isinstance(e, dict) and e.get("name") == "model_run")
    pairs = list(zip(runs, brackets, strict=False))
    if not pairs:
        return ClockDomain("onnxruntime_profile", 0, "none", -1)
    lo = max(h0 - ts for (ts, _), (h0, _) in pairs)
    hi = min(h1 - ts - dur for (ts, dur), (_, h1) in pairs)
    return ClockDomain("onnxruntime_profile", (lo + hi) // 2, "run-bracket",
                       max(abs(hi - lo) // 2, 1000))
