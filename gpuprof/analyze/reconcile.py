"""Three measurements of each TensorRT layer, side by side, with their discrepancies.

- **IProfiler**: TensorRT's own per-layer time (``layer_timings``, source "iprofiler"), from a
  separate pass with the profiler attached, so it includes the profiler's own overhead;
- **NVTX-projected GPU time**: per call, the GPU span from the first to the last kernel launched
  inside the layer's NVTX range (includes idle gaps between the layer's kernels);
- **summed kernel time**: per call, the sum of those kernels' durations.

All per call, in ns. ``span - kernels`` is GPU idle time inside the layer; ``iprofiler - span``
is what TensorRT's measurement adds (event overhead, launch latency) or misses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..align.nvtx import NO_RANGE
from ..model import Profile
from .layers import ENGINE_WRAPPER, TENSORRT_DOMAIN, kernel_ranges, layer_name

IPROFILER = "iprofiler"


def layer_gpu_per_call(profile: Profile) -> pd.DataFrame:
    """Per layer: calls, mean GPU span and mean summed kernel time per call (ns)."""
    kernels, ranges = profile.kernels, profile.nvtx_ranges
    rows = _tensorrt_attribution(profile)["range_row"].to_numpy()
    inside = rows != NO_RANGE
    per_instance = pd.DataFrame({
        "row": rows[inside],
        "start": kernels["start_ns"].to_numpy()[inside],
        "end": kernels["end_ns"].to_numpy()[inside],
    }).assign(duration=lambda f: f["end"] - f["start"])
    grouped = per_instance.groupby("row").agg(first=("start", "min"), last=("end", "max"),
                                              kernel_ns=("duration", "sum"))
    grouped["span_ns"] = grouped["last"] - grouped["first"]
    names = ranges["text"].astype(object).iloc[grouped.index].map(layer_name).to_numpy()
    table = grouped.assign(layer=names).groupby("layer").agg(
        calls_with_kernels=("span_ns", "size"), span_ns=("span_ns", "mean"),
        kernel_ns=("kernel_ns", "mean"))
    return table[~table.index.str.match(ENGINE_WRAPPER)]


def _tensorrt_attribution(profile: Profile) -> pd.DataFrame:
    """Each kernel's TensorRT range row (``kernel_ranges``, same order as ``profile.kernels``).

    The projection is the costly step: a loaded ``Run`` keeps each domain's result
    (``Run.attributed``), which its layer table has usually computed already, so use that.
    """
    cached = getattr(profile, "attributed", None)  # a plain Profile has none
    return cached(TENSORRT_DOMAIN) if callable(cached) else kernel_ranges(profile, TENSORRT_DOMAIN)


def iprofiler_per_call(profile: Profile) -> pd.DataFrame:
    timings = profile.layer_timings
    timings = timings[timings["source"] == IPROFILER]
    return timings.groupby(timings["layer"].astype(object)).agg(
        calls=("duration_ns", "size"), iprofiler_ns=("duration_ns", "mean"))


def reconcile_layers(profile: Profile) -> pd.DataFrame:
    """One row per layer seen by either side, heaviest IProfiler time first.

    Missing measurements are NaN (a layer with no kernels, e.g. a no-op reshape, has no GPU
    span; a layer the IProfiler pass did not report has no IProfiler time).
    """
    table = iprofiler_per_call(profile).join(layer_gpu_per_call(profile), how="outer")
    table["iprofiler_minus_span_ns"] = table["iprofiler_ns"] - table["span_ns"]
    table["iprofiler_vs_span"] = table["iprofiler_ns"] / table["span_ns"] - 1
    table["gaps_ns"] = table["span_ns"] - table["kernel_ns"]
    order = table["iprofiler_ns"].fillna(table["span_ns"]).sort_values(ascending=False).index
    return table.loc[order].rename_axis("layer").reset_index()


def profiler_overhead(profile: Profile) -> dict[str, float]:
    """Summed IProfiler layer time per iteration against the timed pass's median compute time.

    ratio > 1 means the per-layer pass ran slower than the unprofiled engine: per-layer
    events cost time (NVIDIA's own samples show 6-24%).
    """
    timings = profile.layer_timings
    timings = timings[timings["source"] == IPROFILER]
    iterations = profile.iterations
    compute = iterations.loc[iterations["compute_ns"] >= 0, "compute_ns"]
    if timings.empty or compute.empty:
        return {}
    per_iteration = timings.groupby("iteration")["duration_ns"].sum()
    layered, plain = float(per_iteration.median()), float(np.median(compute))
    return {"iprofiler_sum_ns": layered, "timed_compute_ns": plain,
            "ratio": layered / plain if plain > 0 else float("nan")}
