"""Per-kernel time: where the GPU spent its kernel time, heaviest first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import UNNAMED, duration_ns, labelled
from .stats import rank_percentile, sorted_by_code_then_value

KERNEL_PERCENTILES: tuple[float, ...] = (50, 90, 99)
STAT_COLUMNS = ["count", "total_ns", "share", "mean_ns", "min_ns", "max_ns", "p50_ns", "p90_ns",
                "p99_ns"]


def kernel_summary(kernels: pd.DataFrame, by: str = "name") -> pd.DataFrame:
    """One row per kernel: count, total/mean/min/max/p50/p90/p99 duration and share of time.

    ``by="name"`` groups by base name (nsys ``shortName``), so every template instantiation
    of a kernel lands in one row, and ``variants`` counts the distinct demangled names in it;
    ``by="demangled_name"`` gives one row per instantiation. ``share`` is the fraction (0..1)
    of all kernel time summed over kernels (overlapping kernels each count in full).
    Sorted by total time, descending.

    Millions of kernels: the names' category codes and the durations are sorted together as
    one int64 key, and every figure is read off the sorted array by group (no per-kernel
    Python object, no DataFrame group-by); percentiles are numpy's "linear" by rank.
    """
    columns = [by, "variants"] + STAT_COLUMNS
    if kernels.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    names = labelled(kernels[by], UNNAMED).array
    codes, durations = sorted_by_code_then_value(names.codes.astype(np.int64),
                                                 duration_ns(kernels))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    totals = np.add.reduceat(durations, starts)
    grand_total = totals.sum()
    out = pd.DataFrame({
        by: np.asarray(names.categories, dtype=object)[codes[starts]].astype(str),
        "count": counts, "total_ns": totals,
        "share": totals / grand_total if grand_total > 0 else np.nan,
        "mean_ns": totals / counts, "min_ns": durations[starts],
        "max_ns": durations[starts + counts - 1],
    })
    values = durations.astype(np.float64)
    for q in KERNEL_PERCENTILES:
        out[f"p{q:g}_ns"] = rank_percentile(values, starts, counts, q)
    out["variants"] = _variants(kernels, by, names, codes[starts])
    ordered = out.sort_values(["total_ns", by], ascending=[False, True], kind="stable")
    return ordered[columns].reset_index(drop=True)


def _variants(kernels: pd.DataFrame, by: str, names: pd.Categorical,
              group_codes: np.ndarray) -> np.ndarray:
    """Distinct demangled names per group (at least 1; 1 when grouping by demangled name),
    counted on category codes: distinct (name, demangled name) code pairs per name."""
    if by == "demangled_name":
        return np.ones(len(group_codes), dtype=np.int64)
    demangled = kernels["demangled_name"].astype("category").array.codes.astype(np.int64)
    name_codes = names.codes.astype(np.int64)
    known = demangled >= 0  # a missing demangled name is no variant (as nunique skips NA)
    pairs = np.unique(name_codes[known] * (int(demangled.max()) + 1) + demangled[known])
    per_name = np.bincount(pairs // (int(demangled.max()) + 1),
                           minlength=len(names.categories))
    return np.maximum(per_name[group_codes], 1)
