"""Small helpers the analyses share: labels for missing keys, durations, time zero.

pandas drops rows whose group key is missing, so a kernel or NVTX range with no name or
domain would silently vanish from a summary; they get an explicit label instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.saved import table_columns

UNNAMED = "(unnamed)"
DEFAULT_DOMAIN = "(default)"
NOT_APPLICABLE = "n/a"


def labelled(series: pd.Series, missing: str) -> pd.Series:
    """``series`` as a categorical with NA replaced by ``missing``."""
    cat = series.astype("category")
    if not cat.isna().any():
        return cat
    if missing not in cat.cat.categories:
        cat = cat.cat.add_categories([missing])
    return cat.fillna(missing)


def duration_ns(frame: pd.DataFrame) -> np.ndarray:
    """end_ns - start_ns as int64, negative durations (clock glitches) clipped to zero."""
    start = frame["start_ns"].to_numpy(dtype=np.int64)
    end = frame["end_ns"].to_numpy(dtype=np.int64)
    return np.maximum(end - start, 0)


# (table, time column) pairs whose earliest value starts a profile's timeline. An engine run
# (ONNX Runtime, TensorRT) has only iterations, layer timings and memory events, so those count
# too: every trace and report time is then >= 0 whichever tables a run has.
TIMED_TABLES = (("kernels", "start_ns"), ("copies", "start_ns"), ("api_calls", "start_ns"),
                ("nvtx_ranges", "start_ns"), ("memory_events", "time_ns"),
                ("layer_timings", "start_ns"), ("iterations", "start_ns"))


def first_event_ns(tables: dict[str, pd.DataFrame]) -> int:
    """The earliest timestamp of any event: time zero for reports and traces (0 if none).

    Negative times are "not recorded" (-1, e.g. TensorRT IProfiler layers, which carry
    durations only) and never start the timeline. Of a saved run (lazy tables) only the time
    columns are decoded. A report computes it once (``Run.time_zero``) and passes it down.
    """
    found = (_first_recorded(table_columns(tables, name, [col])[col])
             for name, col in TIMED_TABLES if name in tables)
    firsts = [first for first in found if first is not None]
    return min(firsts) if firsts else 0


def _first_recorded(times: pd.Series) -> int | None:
    """The smallest non-negative value of ``times``, None if there is none."""
    first = times.min()  # fast path: one pass over (possibly millions of) kernel times
    if pd.notna(first) and first < 0:
        first = times[times >= 0].min()
    return None if pd.isna(first) else int(first)
