"""The whole `gpuprof nsys` report: facts, layers (TensorRT) or NVTX ranges, then the
kernel, copy, stream and memory sections."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ..units import MICROSECONDS
from .layer_section import layer_section
from .report import Report, Section
from .section_times import timed


def nsys_report(run, top: int | None = None, release: bool = False) -> Report:
    """``release``: the caller needs the run's event tables no more once reported (see
    ``Run.release``), so each is dropped after the last section that reads it."""
    with timed("facts"):
        report = Report(title=f"gpuprof: {_source_name(run)}", facts=facts(run), kind="nsys")
    with timed("layers or ranges"):
        first = _layers_or_ranges(run)
    if first is not None:
        report.add(first)
    for section in _other_sections(run, release):
        report.add(section)
    if set(run.meta.absent) - {"memory_events"}:
        report.add(Section("absent", "Not in this export",
                           notes=[f"{name}: {why}" for name, why in run.meta.absent.items()
                                  if name != "memory_events"]))  # the memory section says it
    if top is not None:
        for section in report.sections:
            section.max_rows = top
    return report


def _layers_or_ranges(run) -> Section | None:
    if run.is_tensorrt() and not run.num_rows("kernels"):
        return host_layer_section(run)
    if run.is_tensorrt():
        return layer_section(run.layers(), run.nvtx_coverage("TensorRT"))
    if run.num_rows("nvtx_ranges") and run.num_rows("kernels"):
        return range_section(run)
    return None


def _source_name(run) -> str:
    return run.meta.sources[0].name if run.meta.sources else "run"


def facts(run) -> dict[str, str]:
    meta = run.meta
    out = {"Tool": f"Nsight Systems {meta.tool_version}" if meta.tool_version
           else f"{meta.tool or 'unknown'} (version not recorded in the export)"}
    if meta.gpus:
        out["GPUs"] = "; ".join(f"{g.device_id}: {g.name}" for g in meta.gpus)
    elif run.num_rows("kernels"):
        ids = run.kernel_devices()
        out["GPUs"] = ", ".join(f"device {i} (name not recorded)" for i in ids)
    if meta.session_start_utc_ns:
        start = dt.datetime.fromtimestamp(meta.session_start_utc_ns / 1e9, tz=dt.timezone.utc)
        out["Session start"] = start.strftime("%Y-%m-%d %H:%M:%S UTC")
    # row counts, not len(table): a saved run's counts come from its file, nothing decoded
    rows = run.num_rows
    out["Events"] = (f"{rows('kernels'):,} kernels, {rows('copies'):,} copies/sets, "
                     f"{rows('api_calls'):,} CUDA API calls, {rows('nvtx_ranges'):,} NVTX ranges")
    return out


def range_section(run, rows: int = 20, table: pd.DataFrame | None = None) -> Section:
    """GPU time per NVTX range name (``table``: another grouping of the same, e.g. ids grouped)."""
    table = run.gpu_time_by_range() if table is None else table
    shown = pd.DataFrame({
        "domain": table["domain"].astype(str), "range": table["name"].astype(str),
        "calls": table["calls"].astype("int64"), "GPU ms": table["total_ns"] / 1e6,
        f"mean {MICROSECONDS}/call": table["mean_ns"] / 1e3, "% GPU": table["share"] * 100,
        "kernels/call": table["kernels_per_call"],
    })
    notes = [f"NVTX coverage: {run.nvtx_coverage():.2%} of kernel time falls inside a push/pop range "
             "(each kernel counted once, in its innermost range)."]
    data = table[["domain", "name", "calls", "total_ns", "mean_ns", "share",
                  "kernels_per_call"]].astype({"domain": str, "name": str})
    return Section("ranges", "GPU time by NVTX range", shown, notes, max_rows=rows,
                   data=data.rename(columns={"name": "range"}).reset_index(drop=True))


HOST_TIME = "CPU-side (host) time, not GPU time"


def host_layer_section(run, rows: int = 20) -> Section:
    """TensorRT layers of an export without kernels: by the host-side length of their NVTX
    ranges, labelled as such in the title, the columns and a note."""
    layers = run.host_layers()
    shown = pd.DataFrame({
        "layer": layers["layer"].astype(str),
        "R": layers["reformat"].map({True: "R", False: ""}),
        "calls": layers["calls"].astype("int64"),
        "host ms": layers["total_ns"] / 1e6,
        f"mean host {MICROSECONDS}": layers["mean_ns"] / 1e3,
        f"median host {MICROSECONDS}": layers["median_ns"] / 1e3,
        "% host": layers["share"] * 100, "cum %": layers["cumulative_share"] * 100,
    })
    notes = [f"{HOST_TIME}: this export has TensorRT's NVTX layer ranges but no CUDA kernels "
             "(captured without -t cuda), so a layer's time here is how long the host spent in "
             "its range while enqueuing it. GPU work is asynchronous: heavy GPU layers can show "
             "short host ranges, and a range that waits on the GPU shows the wait. Capture with "
             "'nsys profile -t cuda,nvtx' for GPU time per layer.",
             "Engine wrapper ranges (ExecutionContext::...) hold whole inferences and are left "
             "out; the NVTX section lists them."]
    # for programs the unit says it: host_total_ns, never a GPU time
    data = layers[["layer", "reformat", "calls", "total_ns", "mean_ns", "median_ns", "share",
                   "cumulative_share"]].astype({"layer": str}).rename(columns={
                       "total_ns": "host_total_ns", "mean_ns": "host_mean_ns",
                       "median_ns": "host_median_ns", "share": "host_share",
                       "cumulative_share": "host_cumulative_share"})
    return Section("layers", f"TensorRT layers by {HOST_TIME}", shown, notes, max_rows=rows,
                   data=data.reset_index(drop=True))


def _other_sections(run, release: bool = False) -> list[Section]:
    try:
        from .nsys_report import build_sections
    except ImportError:
        return []
    return list(build_sections(run, origin_ns=run.time_zero, tables=run.section_table,
                               release=run.release if release else None))
