"""Three measurements of each TensorRT layer, side by side, with their discrepancies.

- **IProfiler**: TensorRT's own per-layer time (``layer_timings``, source "iprofiler"), from a
  separate pass with the profiler attached, so it includes the profiler's own overhead;
- **NVTX-projected GPU time**: per call, the GPU span from the first to the last kernel launched
  inside the layer's NVTX range (includes idle gaps between the layer's kernels);
- **summed kernel time**: per call, the sum of those kernels' durations.

All per call, in ns. ``span - kernels`` (``gaps_ns``) is GPU idle time inside the layer;
``iprofiler_vs_span`` is what TensorRT's measurement adds (event overhead, launch latency) or
misses, relative to the span.
"""

from __future__ import annotations

import pandas as pd

from ..align.nvtx import NO_RANGE
from ..model import Profile
from .latency import stage_medians
from .layers import ENGINE_WRAPPER, TENSORRT_DOMAIN, _instances, kernel_ranges

IPROFILER = "iprofiler"


def iprofiler_rows(layer_timings: pd.DataFrame) -> pd.DataFrame:
    """The layer timings TensorRT's IProfiler reported (source "iprofiler")."""
    return layer_timings[layer_timings["source"] == IPROFILER]


def layer_gpu_per_call(profile: Profile, attributed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per layer: mean GPU span and mean summed kernel time per call that launched kernels (ns).

    ``attributed`` is ``kernel_ranges(profile, TENSORRT_DOMAIN)`` (``Run.attributed``) when the
    caller has it: the projection is the costly step, done once per run.
    """
    if attributed is None:
        attributed = kernel_ranges(profile, TENSORRT_DOMAIN)
    rows = attributed["range_row"].to_numpy()
    inside = rows != NO_RANGE
    times = profile.frame("kernels", ["start_ns", "end_ns"])  # the span needs them
    per_kernel = pd.DataFrame({
        "row": rows[inside],
        "start": times["start_ns"].to_numpy()[inside],
        "end": times["end_ns"].to_numpy()[inside],
        "duration": attributed["duration_ns"].to_numpy()[inside],
    })
    per_call = per_kernel.groupby("row").agg(first=("start", "min"), last=("end", "max"),
                                             kernel_ns=("duration", "sum"))
    per_call["span_ns"] = per_call["last"] - per_call["first"]
    # layer names decoded once per distinct range text, as the layer table does
    instances = _instances(profile.frame("nvtx_ranges", ["range_kind", "domain", "text"]),
                           TENSORRT_DOMAIN)
    names = instances.set_index("row")["name"].astype(object)
    per_call["layer"] = names.reindex(per_call.index).to_numpy()
    table = per_call.groupby("layer").agg(span_ns=("span_ns", "mean"),
                                          kernel_ns=("kernel_ns", "mean"))
    return table[~table.index.str.match(ENGINE_WRAPPER)]


def iprofiler_per_call(profile: Profile) -> pd.DataFrame:
    """Per layer: the mean IProfiler time per call (ns)."""
    timings = iprofiler_rows(profile.layer_timings)
    return timings.groupby(timings["layer"].astype(object)).agg(
        iprofiler_ns=("duration_ns", "mean"))


def reconcile_layers(profile: Profile, attributed: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per layer seen by either side, heaviest IProfiler time first.

    Missing measurements are NaN (a layer with no kernels, e.g. a no-op reshape, has no GPU
    span; a layer the IProfiler pass did not report has no IProfiler time). ``attributed`` as
    for ``layer_gpu_per_call``; ``Run.reconcile`` passes the run's cached one.
    """
    table = iprofiler_per_call(profile).join(layer_gpu_per_call(profile, attributed), how="outer")
    table["iprofiler_vs_span"] = table["iprofiler_ns"] / table["span_ns"] - 1
    table["gaps_ns"] = table["span_ns"] - table["kernel_ns"]
    order = table["iprofiler_ns"].fillna(table["span_ns"]).sort_values(ascending=False).index
    return table.loc[order].rename_axis("layer").reset_index()


def profiler_overhead(profile: Profile) -> dict[str, float]:
    """Summed IProfiler layer time per iteration against the timed pass's median compute time.

    ratio > 1 means the per-layer pass ran slower than the unprofiled engine: per-layer
    events cost time (NVIDIA's own samples show 6-24%).
    """
    timings = iprofiler_rows(profile.layer_timings)
    plain = stage_medians(profile.iterations).get("compute_ns")
    if timings.empty or plain is None:
        return {}
    layered = float(timings.groupby("iteration")["duration_ns"].sum().median())
    return {"iprofiler_sum_ns": layered, "timed_compute_ns": plain,
            "ratio": layered / plain if plain > 0 else float("nan")}
