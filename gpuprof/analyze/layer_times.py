"""Per-layer and per-layer-type times from the ``layer_timings`` table (raw ns).

``layer_table`` ranks layers by total time with share and cumulative share (a Pareto view);
``layer_type_table`` totals by layer type; ``coverage`` compares the layers' sum with the
profiled pass's own run time per iteration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats

LAYER_COLUMNS = ["rank", "layer", "layer_type", "calls", "calls_per_iteration", "total_ns",
                 "mean_ns", "median_ns", "min_ns", "max_ns", "pct", "cum_pct"]


def layer_table(layer_timings: pd.DataFrame) -> pd.DataFrame:
    """One row per (layer, layer_type), slowest total first; pct and cum_pct of all layer time."""
    if layer_timings.empty:
        return pd.DataFrame(columns=LAYER_COLUMNS)
    frame = layer_timings.assign(layer=layer_timings["layer"].astype(str),
                                 layer_type=layer_timings["layer_type"].astype(str))
    grouped = stats.describe_by(frame, ["layer", "layer_type"], "duration_ns", percentiles=(50,))
    grouped = grouped.rename(columns={"count": "calls", "total": "total_ns", "mean": "mean_ns",
                                      "p50": "median_ns", "min": "min_ns", "max": "max_ns"})
    grouped = grouped.sort_values(["total_ns", "layer"], ascending=[False, True], kind="stable")
    grouped["calls_per_iteration"] = grouped["calls"] / max(frame["iteration"].nunique(), 1)
    share, cumulative = stats.shares(grouped["total_ns"])
    grouped["pct"], grouped["cum_pct"] = 100.0 * share, 100.0 * cumulative
    grouped["rank"] = np.arange(1, len(grouped) + 1)
    return grouped[LAYER_COLUMNS].reset_index(drop=True)


def layer_type_table(layer_timings: pd.DataFrame) -> pd.DataFrame:
    """Totals per layer type: distinct layers, calls, total, mean per call, share, slowest first."""
    cols = ["layer_type", "layers", "calls", "total_ns", "mean_ns", "pct"]
    if layer_timings.empty:
        return pd.DataFrame(columns=cols)
    frame = layer_timings.assign(layer_type=layer_timings["layer_type"].astype(str),
                                 layer=layer_timings["layer"].astype(str))
    out = frame.groupby("layer_type").agg(layers=("layer", "nunique"), calls=("duration_ns", "size"),
                                          total_ns=("duration_ns", "sum")).reset_index()
    out["mean_ns"] = out["total_ns"] / out["calls"]
    out["pct"] = 100.0 * stats.shares(out["total_ns"])[0]
    return out.sort_values(["total_ns", "layer_type"], ascending=[False, True])[cols].reset_index(drop=True)


def pareto(layers: pd.DataFrame, top: int) -> tuple[int, float]:
    """(n, % of layer time the n slowest layers take), n = min(top, number of layers)."""
    n = min(top, len(layers))
    return n, float(layers["cum_pct"].iloc[n - 1]) if n else 0.0


def layers_for_share(layers: pd.DataFrame, pct: float) -> int:
    """How many of the slowest layers it takes to reach ``pct`` % of layer time."""
    if layers.empty:
        return 0
    return stats.count_to_reach(layers["cum_pct"] / 100.0, pct / 100.0)


def coverage(layer_timings: pd.DataFrame, run_ns: pd.Series) -> pd.DataFrame:
    """Per iteration: summed layer time vs the run's own time (``run_ns`` indexed by iteration).

    The difference is the runtime's work between layers (scheduling, allocation, copies).
    """
    sums = layer_timings.groupby("iteration")["duration_ns"].sum()
    frame = pd.DataFrame({"layers_ns": sums}).join(run_ns.rename("run_ns"), how="inner")
    frame["coverage_pct"] = 100.0 * frame["layers_ns"] / frame["run_ns"]
    return frame.reset_index(names="iteration")
