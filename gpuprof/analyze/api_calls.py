"""CUDA API calls by total host time, like ``nsys stats --report cuda_api_sum``.

One row per API name (as the export names it, e.g. ``cudaMalloc_v3020``): calls, total, mean,
median, min and max duration and share of all API time. Calls on several threads each count in
full, as in nsys. Vectorised on the name codes: one sort, no per-row Python, so millions of
runtime calls cost well under a second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import UNNAMED, duration_ns, labelled

COLUMNS = ["name", "calls", "total_ns", "share", "mean_ns", "median_ns", "min_ns", "max_ns"]


def api_summary(api_calls: pd.DataFrame) -> pd.DataFrame:
    """Per API name, heaviest first (ties by name). ``share`` is 0..1 of all API time;
    ``median_ns`` is numpy's "linear" median (the mean of the two middle calls when even),
    as nsys computes it."""
    if api_calls.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    names = labelled(api_calls["name"], UNNAMED).array
    codes, durations = _sorted_by_name_then_duration(names.codes.astype(np.int64),
                                                      duration_ns(api_calls))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    totals = np.add.reduceat(durations, starts)
    lower = durations[starts + (counts - 1) // 2]
    upper = durations[starts + counts // 2]
    out = pd.DataFrame({
        "name": np.asarray(names.categories, dtype=object)[codes[starts]],
        "calls": counts, "total_ns": totals,
        "share": totals / totals.sum() if totals.sum() > 0 else np.nan,
        "mean_ns": totals / counts, "median_ns": (lower + upper) / 2.0,
        "min_ns": durations[starts], "max_ns": durations[starts + counts - 1],
    })
    out = out.sort_values(["total_ns", "name"], ascending=[False, True], kind="stable")
    return out[COLUMNS].reset_index(drop=True)


def _sorted_by_name_then_duration(codes: np.ndarray, durations: np.ndarray):
    """Both arrays ordered by (name code, duration). Packed into one int64 key where they fit
    (a plain sort of one array: several times faster than a two-key lexsort on millions of
    calls), else a lexsort."""
    shift = max(int(durations.max()).bit_length(), 1)
    if int(codes.max()).bit_length() + shift < 63:
        key = np.sort((codes << shift) | durations)
        return key >> shift, key & ((1 << shift) - 1)
    order = np.lexsort((durations, codes))
    return codes[order], durations[order]
