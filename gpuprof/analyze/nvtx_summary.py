"""NVTX ranges per (domain, text): how often each range ran and how long it took.

Named ``nvtx_summary`` to keep it apart from ``align.nvtx``, which projects kernels onto ranges.
Marks (instants) have no duration and are left out; push/pop and start/end ranges are kept
apart because a start/end range can cross threads and overlap its siblings.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .common import DEFAULT_DOMAIN, UNNAMED, duration_ns, labelled
from .stats import rank_percentile, sorted_by_code_then_value

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
    labels = [labelled(ranges["domain"], DEFAULT_DOMAIN).array,
              _texts(labelled(ranges["text"], UNNAMED), group_ids).astype("category").array,
              labelled(ranges["range_kind"], UNNAMED).array]
    # one int64 code per (domain, text, kind): mixed radix over the three categoricals' codes;
    # millions of ranges are then sorted as one int64 key and read off by group
    code = np.zeros(len(ranges), dtype=np.int64)
    for cat in labels:
        code = code * len(cat.categories) + cat.codes.astype(np.int64)
    codes, durations = sorted_by_code_then_value(code, duration_ns(ranges))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    totals = np.add.reduceat(durations, starts)
    out = pd.DataFrame(dict(zip(KEYS, _decode(codes[starts], labels), strict=True)))
    out["count"], out["total_ns"], out["mean_ns"] = counts, totals, totals / counts
    out["min_ns"], out["max_ns"] = durations[starts], durations[starts + counts - 1]
    values = durations.astype(np.float64)
    for q in NVTX_PERCENTILES:
        out[f"p{q:g}_ns"] = rank_percentile(values, starts, counts, q)
    out = out.sort_values(["total_ns"] + KEYS, ascending=[False, True, True, True], kind="stable")
    return out[COLUMNS].reset_index(drop=True)


def _decode(codes: np.ndarray, labels: list[pd.Categorical]) -> list[np.ndarray]:
    """The (domain, text, kind) strings of mixed-radix ``codes`` (see ``nvtx_summary``)."""
    out = []
    for cat in reversed(labels):
        size = len(cat.categories)
        out.append(np.asarray(cat.categories, dtype=object)[codes % size].astype(str))
        codes = codes // size
    return out[::-1]


def _texts(texts: pd.Series, group_ids: bool) -> pd.Series:
    if not group_ids:
        return texts
    # once per distinct text (PyTorch writes tens of thousands, each once)
    distinct = pd.Series(pd.unique(texts.astype(str)))
    patterns = dict(zip(distinct, distinct.map(range_pattern), strict=True))
    return texts.astype(str).map(patterns)
