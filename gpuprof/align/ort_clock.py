"""ONNX Runtime's profile on CLOCK_MONOTONIC, verified by the model's own stamps.

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
