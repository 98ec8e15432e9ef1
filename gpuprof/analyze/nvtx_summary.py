"""NVTX ranges per (domain, text): how often each range ran and how long it took.

Named ``nvtx_summary`` to keep it apart from ``align.nvtx``, which projects kernels onto ranges.
Marks (instants) have no duration and are left out; push/pop and start/end ranges are kept
apart because a start/end range can cross threads and overlap its siblings.
"""

from __future__ import annotations

import pandas as pd

from .common import DEFAULT_DOMAIN, UNNAMED, duration_ns, labelled
from .stats import describe_by

RANGE_KINDS = ("push_pop", "start_end")
NVTX_PERCENTILES: tuple[float, ...] = (50, 90, 99)
KEYS = ["domain", "text", "range_kind"]
COLUMNS = KEYS + ["count", "total_ns", "mean_ns", "min_ns", "max_ns", "p50_ns", "p90_ns",
                  "p99_ns"]


def nvtx_summary(nvtx_ranges: pd.DataFrame) -> pd.DataFrame:
    """One row per (domain, text, range_kind) with duration statistics, by total descending.

    Ranges that never ended (end before start, e.g. still open when capture stopped) are
    dropped rather than counted as zero-length.
    """
    ranges = nvtx_ranges[nvtx_ranges["range_kind"].isin(RANGE_KINDS)]
    ranges = ranges[ranges["end_ns"] >= ranges["start_ns"]]
    if ranges.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    frame = pd.DataFrame({
        "domain": labelled(ranges["domain"], DEFAULT_DOMAIN),
        "text": labelled(ranges["text"], UNNAMED),
        "range_kind": labelled(ranges["range_kind"], UNNAMED),
        "duration_ns": duration_ns(ranges),
    })
    out = describe_by(frame, KEYS, "duration_ns", NVTX_PERCENTILES)
    out = out.rename(columns={"total": "total_ns", "mean": "mean_ns", "min": "min_ns",
                              "max": "max_ns", "p50": "p50_ns", "p90": "p90_ns", "p99": "p99_ns"})
    for key in KEYS:
        out[key] = out[key].astype(str)
    out = out.sort_values(["total_ns"] + KEYS, ascending=[False, True, True, True], kind="stable")
    return out[COLUMNS].reset_index(drop=True)
