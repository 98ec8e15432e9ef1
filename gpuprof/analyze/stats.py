"""Statistics shared by every report: one percentile method, stated in the output, and the
share / cumulative share that every "heaviest first" table ranks by.

Percentiles use linear interpolation between closest ranks (numpy's default, "linear"; the
same as Excel's PERCENTILE.INC). A percentile is flagged unreliable when fewer than
``100 / (100 - q) * 10`` samples back it (p99 needs 1000, p99.9 needs 10000) -- i.e. when
fewer than 10 samples lie beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PERCENTILE_METHOD = "linear"
DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 97, 99, 99.9)
TAIL_SAMPLES_FOR_RELIABLE = 10


def percentile_label(q: float) -> str:
    return f"p{q:g}"


def min_samples_for(q: float) -> int:
    """Samples needed so that at least TAIL_SAMPLES_FOR_RELIABLE lie beyond the q-th percentile."""
    # round first: 10 * 100 / (100 - 99.9) is 10000.000000000002 in floating point
    return int(np.ceil(round(TAIL_SAMPLES_FOR_RELIABLE * 100.0 / (100.0 - q), 6))) if q < 100 else 1 << 62


def unreliable_percentiles(count: int, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> list[str]:
    return [percentile_label(q) for q in percentiles if count < min_samples_for(q)]


def describe(values, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
    """count, total, mean, min, max, std and percentiles of one sample (units unchanged)."""
    arr = np.asarray(values, dtype="float64")
    arr = arr[~np.isnan(arr)]
    out: dict[str, float] = {"count": int(arr.size)}
    if arr.size == 0:
        return out | {k: float("nan") for k in ("total", "mean", "min", "max", "std")} | {
            percentile_label(q): float("nan") for q in percentiles}
    qs = np.percentile(arr, list(percentiles), method=PERCENTILE_METHOD)
    out |= {"total": float(arr.sum()), "mean": float(arr.mean()), "min": float(arr.min()),
            "max": float(arr.max()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}
    out |= {percentile_label(q): float(v) for q, v in zip(percentiles, qs)}
    return out


def describe_by(frame: pd.DataFrame, key: str | list[str], value: str,
                percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> pd.DataFrame:
    """``describe`` per group, vectorised: one sort, then percentiles by rank arithmetic.

    Returns one row per group with count, total, mean, min, max and the percentiles, in the
    value column's unit. Same interpolation as ``describe`` (numpy "linear").
    """
    keys = [key] if isinstance(key, str) else list(key)
    if frame.empty:
        cols = keys + ["count", "total", "mean", "min", "max"] + [percentile_label(q) for q in percentiles]
        return pd.DataFrame(columns=cols)
    data = frame[keys + [value]].dropna(subset=[value]).sort_values(keys + [value], kind="stable")
    # dropna=False everywhere: a missing key (e.g. no layer type) is a group of its own, and
    # the rank arithmetic below must see exactly the groups the aggregation sees.
    codes = data.groupby(keys, observed=True, sort=False, dropna=False).ngroup().to_numpy()
    vals = data[value].to_numpy(dtype="float64")
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(vals)])
    grouped = data.groupby(keys, observed=True, sort=False, dropna=False)[value]
    out = grouped.agg(count="count", total="sum", mean="mean", min="min", max="max").reset_index()
    for q in percentiles:
        pos = (counts - 1) * (q / 100.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, counts - 1)
        frac = pos - lo
        out[percentile_label(q)] = vals[starts + lo] * (1 - frac) + vals[starts + hi] * frac
    return out


def sorted_by_code_then_value(codes: np.ndarray, values: np.ndarray):
    """Both int64 arrays ordered by (code, value); values must be >= 0. Packed into one int64
    key where they fit (a plain sort of one array: several times faster than a two-key
    lexsort on millions of rows), else a lexsort."""
    shift = max(int(values.max()).bit_length(), 1) if len(values) else 1
    if len(codes) and int(codes.max()).bit_length() + shift < 63:
        key = np.sort((codes << shift) | values)
        return key >> shift, key & ((1 << shift) - 1)
    order = np.lexsort((values, codes))
    return codes[order], values[order]


def rank_percentile(values: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                    q: float) -> np.ndarray:
    """The q-th percentile of each group of sorted ``values`` (group i: ``counts[i]`` values
    from ``starts[i]``), numpy's "linear" method by rank arithmetic (as ``describe_by``)."""
    pos = (counts - 1) * (q / 100.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = pos - lo
    return values[starts + lo] * (1 - frac) + values[starts + hi] * frac


def shares(totals: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each total's fraction of their sum (0..1; NaN when the sum is not positive) and the
    running fraction in the given order: the Pareto view of a table sorted heaviest first."""
    grand = totals.sum()
    share = totals / grand if grand > 0 else pd.Series(np.nan, index=totals.index)
    return share, share.cumsum()


def count_to_reach(cumulative: Sequence[float], target: float) -> int:
    """How many leading rows it takes for ``cumulative`` (a running share) to reach
    ``target``; all of them when it never does."""
    values = np.asarray(cumulative, dtype=np.float64)
    return min(int(np.searchsorted(values, target - 1e-12) + 1), len(values))
