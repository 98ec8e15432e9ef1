"""Many exports at once: each export's small partial aggregates, and their exact merge.

A worker reads one export and returns an ``ExportPartial``: never the raw rows, only what the
combined tables need, in a form that merges exactly:

- counts and sums add, minima and maxima combine;
- kernel percentiles are taken on the merged samples, never averaged: each export ships its
  kernel durations as a value-count map (kernel, duration, how many), which is small because
  durations repeat a lot, and the merge takes numpy's "linear" percentile over all n samples
  by rank arithmetic on the merged counts (the same formula as ``stats.describe_by``, so one
  export's numbers are bit for bit its own report's);
- memory peaks of different exports never add (different processes, often different
  machines): the combined peak is the largest one, with the export it came from.

Every merge takes ``by``: ``[]`` gives the table across all exports, ``["export"]`` the
per-export one, from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..model import Profile
from .common import NOT_APPLICABLE, UNNAMED, duration_ns, labelled
from .kernels import KERNEL_PERCENTILES
from .memory import memory_summary
from .stats import PERCENTILE_METHOD, percentile_label, shares

EXPORT = "export"
KERNEL_VALUE_COLUMNS = [EXPORT, "kernel", "duration_ns", "n"]
COPY_KEYS = ["kind", "direction"]
COPY_PARTIAL_COLUMNS = [EXPORT, *COPY_KEYS, "count", "total_bytes", "total_ns", "min_bytes",
                        "max_bytes"]
LAYER_PARTIAL_COLUMNS = [EXPORT, "layer", "calls", "total_ns", "kernels"]
MEMORY_KEYS = ["source", "device_id", "memory_kind"]
MEMORY_PARTIAL_COLUMNS = [EXPORT, *MEMORY_KEYS, "peak_bytes", "peak_ms", "final_bytes",
                          "allocations", "frees"]
METHOD_NOTE = (f"Percentiles are numpy '{PERCENTILE_METHOD}' over all n kernel durations of the "
               "exports combined (each export ships exact duration counts; no percentile is "
               "averaged).")


@dataclass
class ExportPartial:
    """What one export contributes to a combined report; ``error`` says why it could not."""

    export: str
    release: str = ""
    gpus: str = ""
    kernels: int = 0
    gpu_time_ns: int = 0
    copies: int = 0
    error: str | None = None
    kernel_values: pd.DataFrame = field(default_factory=lambda: _empty(KERNEL_VALUE_COLUMNS))
    kernel_variants: pd.DataFrame = field(
        default_factory=lambda: _empty([EXPORT, "kernel", "demangled_name"]))
    copy_totals: pd.DataFrame = field(default_factory=lambda: _empty(COPY_PARTIAL_COLUMNS))
    layer_totals: pd.DataFrame = field(default_factory=lambda: _empty(LAYER_PARTIAL_COLUMNS))
    memory_peaks: pd.DataFrame = field(default_factory=lambda: _empty(MEMORY_PARTIAL_COLUMNS))


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def export_partial(export: str, profile: Profile, release: str, gpus: str,
                   layers: pd.DataFrame | None, time_zero_ns: int) -> ExportPartial:
    """The partial aggregates of one loaded export. ``layers`` is its TensorRT layer table
    (``Run.layers()``), None when it is not a TensorRT export."""
    kernels = profile.kernels
    durations = duration_ns(kernels)
    return ExportPartial(
        export=export, release=release, gpus=gpus, kernels=len(kernels),
        gpu_time_ns=int(durations.sum()), copies=len(profile.copies),
        kernel_values=_kernel_values(export, kernels, durations),
        kernel_variants=_kernel_variants(export, kernels),
        copy_totals=_copy_totals(export, profile.copies),
        layer_totals=_layer_totals(export, layers),
        memory_peaks=_memory_peaks(export, profile.memory_events, time_zero_ns))


def _kernel_values(export: str, kernels: pd.DataFrame, durations: np.ndarray) -> pd.DataFrame:
    """How many kernels of each name ran for each exact duration."""
    if kernels.empty:
        return _empty(KERNEL_VALUE_COLUMNS)
    frame = pd.DataFrame({"kernel": labelled(kernels["name"], UNNAMED), "duration_ns": durations})
    counts = frame.groupby(["kernel", "duration_ns"], observed=True, sort=False).size()
    out = counts.rename("n").reset_index()
    out["kernel"] = out["kernel"].astype(str)
    out.insert(0, EXPORT, export)
    return out[KERNEL_VALUE_COLUMNS]


def _kernel_variants(export: str, kernels: pd.DataFrame) -> pd.DataFrame:
    """The distinct (name, demangled name) pairs: variants merge as a union, not a sum."""
    if kernels.empty:
        return _empty([EXPORT, "kernel", "demangled_name"])
    pairs = pd.DataFrame({"kernel": labelled(kernels["name"], UNNAMED).astype(str),
                          "demangled_name": kernels["demangled_name"].astype(object)})
    pairs = pairs.dropna().drop_duplicates().reset_index(drop=True)
    pairs.insert(0, EXPORT, export)
    return pairs


def _copy_totals(export: str, copies: pd.DataFrame) -> pd.DataFrame:
    if copies.empty:
        return _empty(COPY_PARTIAL_COLUMNS)
    frame = pd.DataFrame({
        "kind": labelled(copies["kind"], UNNAMED), "direction": labelled(copies["direction"],
                                                                          NOT_APPLICABLE),
        "bytes": copies["bytes"].to_numpy(dtype=np.int64), "duration_ns": duration_ns(copies)})
    out = frame.groupby(COPY_KEYS, observed=True, sort=False).agg(
        count=("bytes", "size"), total_bytes=("bytes", "sum"), total_ns=("duration_ns", "sum"),
        min_bytes=("bytes", "min"), max_bytes=("bytes", "max")).reset_index()
    for key in COPY_KEYS:
        out[key] = out[key].astype(str)
    out.insert(0, EXPORT, export)
    return out[COPY_PARTIAL_COLUMNS]


def _layer_totals(export: str, layers: pd.DataFrame | None) -> pd.DataFrame:
    if layers is None or layers.empty:
        return _empty(LAYER_PARTIAL_COLUMNS)
    out = layers[["layer", "calls", "total_ns", "kernels"]].copy()
    out["layer"] = out["layer"].astype(str)
    out.insert(0, EXPORT, export)
    return out[LAYER_PARTIAL_COLUMNS].reset_index(drop=True)


def _memory_peaks(export: str, events: pd.DataFrame, time_zero_ns: int) -> pd.DataFrame:
    summary = memory_summary(events)
    if summary.empty:
        return _empty(MEMORY_PARTIAL_COLUMNS)
    summary["peak_ms"] = (summary["peak_time_ns"] - time_zero_ns) / 1e6
    summary.insert(0, EXPORT, export)
    return summary[MEMORY_PARTIAL_COLUMNS].reset_index(drop=True)


# -- merges --------------------------------------------------------------------------------

def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _empty(columns)


def merge_kernels(partials: list[ExportPartial], by: list[str]) -> pd.DataFrame:
    """One row per kernel name (``by=[]``) or per export and kernel name (``by=["export"]``)
    with the columns of ``kernels.kernel_summary`` plus ``exports``; heaviest first."""
    keys = by + ["kernel"]
    values = _concat([p.kernel_values for p in partials], KERNEL_VALUE_COLUMNS)
    if values.empty:
        return _empty(keys + ["variants", "exports", "count", "total_ns", "share", "mean_ns",
                              "min_ns", "max_ns"] + [f"{percentile_label(q)}_ns"
                                                     for q in KERNEL_PERCENTILES])
    values["n"] = values["n"].astype(np.int64)
    values["duration_ns"] = values["duration_ns"].astype(np.int64)
    # one row per (group, duration), ascending within each group: the merged sorted sample
    merged = values.groupby(keys + ["duration_ns"], sort=True)["n"].sum().reset_index()
    out = _sample_stats(merged, keys)
    out["exports"] = values.groupby(keys, sort=True)[EXPORT].nunique().to_numpy()
    out["variants"] = _variant_counts(partials, keys, out)
    return _ranked(out, by, "total_ns", tie=["kernel"])


def _sample_stats(merged: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """count, total, mean, min, max and percentiles of each group's counted sample."""
    n = merged["n"].to_numpy()
    durations = merged["duration_ns"].to_numpy()
    new_group = np.ones(len(merged), dtype=bool)
    new_group[1:] = (merged[by].to_numpy()[1:] != merged[by].to_numpy()[:-1]).any(axis=1)
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(merged)]
    count = np.add.reduceat(n, starts)
    total = np.add.reduceat(n * durations, starts)
    out = merged.loc[starts, by].reset_index(drop=True)
    out["count"], out["total_ns"] = count, total
    out["mean_ns"] = total / count
    out["min_ns"], out["max_ns"] = durations[starts], durations[ends - 1]
    seen = np.cumsum(n)  # samples up to and including each row, over all groups
    before = seen[starts] - n[starts]
    values = durations.astype(np.float64)
    for q in KERNEL_PERCENTILES:
        pos = (count - 1) * (q / 100.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count - 1)
        frac = pos - lo
        at_lo = values[np.searchsorted(seen, before + lo, side="right")]
        at_hi = values[np.searchsorted(seen, before + hi, side="right")]
        out[f"{percentile_label(q)}_ns"] = at_lo * (1 - frac) + at_hi * frac
    return out


def _variant_counts(partials: list[ExportPartial], by: list[str], out: pd.DataFrame) -> np.ndarray:
    pairs = _concat([p.kernel_variants for p in partials], [EXPORT, "kernel", "demangled_name"])
    counts = pairs.groupby(by, sort=True)["demangled_name"].nunique()
    found = pd.MultiIndex.from_frame(out[by]) if len(by) > 1 else pd.Index(out[by[0]])
    return counts.reindex(found).fillna(1).clip(lower=1).astype(np.int64).to_numpy()


def merge_copies(partials: list[ExportPartial], by: list[str]) -> pd.DataFrame:
    """``copies.copy_summary``'s columns per (kind, direction), across all exports
    (``by=[]``) or per export (``by=["export"]``), plus ``exports``."""
    totals = _concat([p.copy_totals for p in partials], COPY_PARTIAL_COLUMNS)
    keys = by + COPY_KEYS
    if totals.empty:
        return _empty(keys + ["exports", "count", "total_bytes", "total_ns",
                              "bandwidth_bytes_per_s", "min_bytes", "mean_bytes", "max_bytes"])
    out = totals.groupby(keys, sort=True).agg(
        exports=(EXPORT, "nunique"), count=("count", "sum"), total_bytes=("total_bytes", "sum"),
        total_ns=("total_ns", "sum"), min_bytes=("min_bytes", "min"),
        max_bytes=("max_bytes", "max")).reset_index()
    out["mean_bytes"] = out["total_bytes"] / out["count"]
    seconds = out["total_ns"].to_numpy(dtype=np.float64) / 1e9
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bandwidth_bytes_per_s"] = np.where(seconds > 0, out["total_bytes"] / seconds, np.nan)
    return _ranked(out, by, "total_ns", tie=COPY_KEYS)


def merge_layers(partials: list[ExportPartial], by: list[str]) -> pd.DataFrame:
    """TensorRT layers: calls, GPU time and kernels add; mean per call, kernels per call and
    shares are recomputed from the sums (a median of calls does not merge and is left out)."""
    totals = _concat([p.layer_totals for p in partials], LAYER_PARTIAL_COLUMNS)
    keys = by + ["layer"]
    if totals.empty:
        return _empty(keys + ["exports", "calls", "total_ns", "kernels", "mean_ns",
                              "kernels_per_call", "share", "cumulative_share"])
    out = totals.groupby(keys, sort=True).agg(
        exports=(EXPORT, "nunique"), calls=("calls", "sum"), total_ns=("total_ns", "sum"),
        kernels=("kernels", "sum")).reset_index()
    out["mean_ns"] = out["total_ns"] / out["calls"]
    out["kernels_per_call"] = out["kernels"] / out["calls"]
    out = _ranked(out, by, "total_ns", tie=["layer"])
    if by:
        out["cumulative_share"] = out["share"].groupby(out[EXPORT], sort=False).cumsum()
    else:
        out["share"], out["cumulative_share"] = shares(out["total_ns"])
    return out


def _ranked(out: pd.DataFrame, by: list[str], total: str, tie: list[str]) -> pd.DataFrame:
    """Heaviest first, ties by ``tie`` (per-export tables: exports in name order, heaviest
    first within each), with ``share`` of all exports' total or of the row's export's."""
    outer = [EXPORT] if EXPORT in by else []
    order = outer + [total] + tie
    ascending = [True] * len(outer) + [False] + [True] * len(tie)
    out = out.sort_values(order, ascending=ascending, kind="stable").reset_index(drop=True)
    grand = (out.groupby(outer, sort=False)[total].transform("sum").to_numpy() if outer
             else np.full(len(out), out[total].sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["share"] = np.where(grand > 0, out[total] / grand, np.nan)
    return out


def merge_memory(partials: list[ExportPartial]) -> pd.DataFrame:
    """Per (source, device, memory kind) across exports: the largest peak and its export (peaks
    of different exports never add), how many exports had it, allocations and frees summed."""
    peaks = _concat([p.memory_peaks for p in partials], MEMORY_PARTIAL_COLUMNS)
    if peaks.empty:
        return _empty(MEMORY_KEYS + ["exports", "peak_bytes", "peak_export", "allocations",
                                     "frees"])
    peaks["peak_bytes"] = peaks["peak_bytes"].astype(np.int64)
    grouped = peaks.groupby(MEMORY_KEYS, sort=True)
    out = grouped.agg(exports=(EXPORT, "nunique"), peak_bytes=("peak_bytes", "max"),
                      allocations=("allocations", "sum"), frees=("frees", "sum"))
    # idxmax: the first export (in the order given) reaching the largest peak
    out["peak_export"] = peaks.loc[grouped["peak_bytes"].idxmax(), EXPORT].to_numpy()
    return out.reset_index()


def memory_per_export(partials: list[ExportPartial]) -> pd.DataFrame:
    return _concat([p.memory_peaks for p in partials], MEMORY_PARTIAL_COLUMNS)
