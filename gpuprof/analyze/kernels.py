"""Per-kernel time: where the GPU spent its kernel time, heaviest first."""

from __future__ import annotations

import pandas as pd

from .common import UNNAMED, duration_ns, labelled
from .stats import describe_by

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
    """
    columns = [by, "variants"] + STAT_COLUMNS
    if kernels.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    frame = pd.DataFrame({by: labelled(kernels[by], UNNAMED),
                          "duration_ns": duration_ns(kernels)})
    out = describe_by(frame, by, "duration_ns", KERNEL_PERCENTILES)
    out = out.rename(columns={"total": "total_ns", "mean": "mean_ns", "min": "min_ns",
                              "max": "max_ns", "p50": "p50_ns", "p90": "p90_ns", "p99": "p99_ns"})
    grand_total = out["total_ns"].sum()
    out["share"] = out["total_ns"] / grand_total if grand_total > 0 else float("nan")
    out[by] = out[by].astype(str)
    out["variants"] = out[by].map(_variants(kernels, by)).fillna(1).astype("int64")
    ordered = out.sort_values(["total_ns", by], ascending=[False, True], kind="stable")
    return ordered[columns].reset_index(drop=True)


def _variants(kernels: pd.DataFrame, by: str) -> pd.Series:
    """Distinct demangled names per ``by`` value (1 when grouping by demangled name)."""
    if by == "demangled_name":
        return pd.Series(dtype="int64")
    keys = labelled(kernels[by], UNNAMED).astype(str)
    return kernels["demangled_name"].groupby(keys, observed=True).nunique().clip(lower=1)
