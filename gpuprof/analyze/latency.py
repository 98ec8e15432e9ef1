"""Latency of a driven run from the ``iterations`` table: summary and per-iteration rows.

Pure functions on raw nanoseconds; percentiles and their reliability come from ``stats`` so
every report states the same method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import stats


def latency_summary(iterations: pd.DataFrame) -> dict[str, Any]:
    """count, total, mean, min, max, std, p50..p99.9 (ns) plus throughput and the method used.

    ``unreliable`` lists the percentiles with fewer than ``stats.TAIL_SAMPLES_FOR_RELIABLE``
    samples beyond them; ``throughput_per_s`` is sequential (one inference at a time);
    ``host_throughput_per_s`` is the same on the host clock around each iteration (end - start),
    which adds what a device timer (CUDA events) leaves out: enqueue and synchronisation.
    """
    lat = iterations["latency_ns"].to_numpy(dtype="float64") if len(iterations) else np.array([])
    out: dict[str, Any] = dict(stats.describe(lat))
    out["throughput_per_s"] = 1e9 / out["mean"] if out["count"] and out["mean"] > 0 else float("nan")
    host_ns = float((iterations["end_ns"] - iterations["start_ns"]).sum()) if len(iterations) else 0
    out["host_throughput_per_s"] = len(iterations) * 1e9 / host_ns if host_ns > 0 else np.nan
    out["cv"] = out["std"] / out["mean"] if out["count"] > 1 and out["mean"] > 0 else float("nan")
    out["method"] = stats.PERCENTILE_METHOD
    out["unreliable"] = stats.unreliable_percentiles(int(out["count"]))
    return out


def iteration_table(iterations: pd.DataFrame) -> pd.DataFrame:
    """One row per timed iteration: offset from the first start, latency, and gap before it.

    ``gap_ns`` is the host time between the previous iteration's end and this start (the
    harness's own cost per iteration); ``vs_median`` is latency / median latency.
    """
    frame = iterations.sort_values("iteration")
    if frame.empty:
        return pd.DataFrame(columns=["iteration", "offset_ns", "latency_ns", "gap_ns", "vs_median"])
    start = frame["start_ns"].to_numpy()
    median = float(np.median(frame["latency_ns"]))
    return pd.DataFrame({
        "iteration": frame["iteration"].to_numpy(),
        "offset_ns": start - start[0],
        "latency_ns": frame["latency_ns"].to_numpy(),
        "gap_ns": np.r_[0, start[1:] - frame["end_ns"].to_numpy()[:-1]],
        "vs_median": frame["latency_ns"].to_numpy() / median if median > 0 else np.nan,
    })


STAGES = ("h2d_ns", "compute_ns", "d2h_ns")


def stage_medians(iterations: pd.DataFrame) -> dict[str, float]:
    """Median per iteration of each timed stage a backend recorded (``h2d_ns``, ``compute_ns``,
    ``d2h_ns``; -1 means not recorded) and of the host clock around it (``host_ns``: end - start).

    A stage no row recorded is left out; empty when there are no iterations.
    """
    if iterations.empty:
        return {}
    out = {}
    for column in STAGES:
        values = iterations[column].to_numpy(dtype="float64") if column in iterations else np.array([])
        values = values[values >= 0]
        if len(values):
            out[column] = float(np.median(values))
    out["host_ns"] = float(np.median((iterations["end_ns"] - iterations["start_ns"]).to_numpy(dtype="float64")))
    return out
