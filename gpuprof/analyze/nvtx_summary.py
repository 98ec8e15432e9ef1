"""NVTX ranges per (domain, text): how often each range ran and how long it took.

Named ``nvtx_summary`` to keep it apart from ``align.nvtx``, which projects kernels onto ranges.
Marks (instants) have no duration and are left out; push/pop and start/end ranges are kept
apart because a start/end range can cross threads and overlap its siblings.
"""

from __future__ import annotations

import re

import pandas as pd

from .common import DEFAULT_DOMAIN, UNNAMED, duration_ns, labelled
from .stats import describe_by

RANGE_KINDS = ("push_pop", "start_end")
NVTX_PERCENTILES: tuple[float, ...] = (50, 90, 99)
KEYS = ["domain", "text", "range_kind"]
# a trailing "key = 123" (PyTorch: "aten::to, seq = 7, op_id = 990347"): an id, not a name
TRAILING_ID = re.compile(r"([,;]?\s*\w+\s*=\s*)\d+\s*$")
ID_WILDCARD = "*"
COLUMNS = KEYS + ["count", "total_ns", "mean_ns", "min_ns", "max_ns", "p50_ns", "p90_ns",
                  "p99_ns"]


def range_pattern(text: str) -> str:
    """``text`` with the numbers of its trailing ``key = N`` ids replaced by ``*``:
    "aten::to, seq = 7, op_id = 990347" -> "aten::to, seq = *, op_id = *". A name is kept."""
    suffix = ""
    while (match := TRAILING_ID.search(text)) and match.start() > 0:
        suffix = match.group(1) + ID_WILDCARD + suffix
        text = text[:match.start()]
    return text + suffix


def nvtx_summary(nvtx_ranges: pd.DataFrame, group_ids: bool = False) -> pd.DataFrame:
    """One row per (domain, text, range_kind) with duration statistics, by total descending;
    with ``group_ids``, texts that differ only by trailing ids share one row (``range_pattern``).

    Ranges that never ended (end before start, e.g. still open when capture stopped) are
    dropped rather than counted as zero-length.
    """
    ranges = nvtx_ranges[nvtx_ranges["range_kind"].isin(RANGE_KINDS)]
    ranges = ranges[ranges["end_ns"] >= ranges["start_ns"]]
    if ranges.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    frame = pd.DataFrame({
        "domain": labelled(ranges["domain"], DEFAULT_DOMAIN),
        "text": _texts(labelled(ranges["text"], UNNAMED), group_ids),
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


def _texts(texts: pd.Series, group_ids: bool) -> pd.Series:
    if not group_ids:
        return texts
    # once per distinct text (PyTorch writes tens of thousands, each once)
    distinct = pd.Series(pd.unique(texts.astype(str)))
    patterns = dict(zip(distinct, distinct.map(range_pattern), strict=True))
    return texts.astype(str).map(patterns)
