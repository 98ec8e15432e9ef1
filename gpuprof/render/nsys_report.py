"""Report sections for an nsys profile: kernels, NVTX ranges, copies, GPU use, CUDA API calls,
memory.

Each builder runs one analysis (raw ns and bytes) and picks display units and column names:
totals in ms, per-call times in µs, copy volumes in MB (10^6 bytes, matching GB/s = 10^9
bytes/s), memory in MiB (2^20 bytes, as GPU memory is usually quoted). The layer section is
built elsewhere (``analyze.layers``); the caller composes the ``Report``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial

import pandas as pd

from .. import units
from ..analyze.api_calls import api_summary
from ..analyze.common import first_event_ns
from ..analyze.copies import copy_summary
from ..analyze.kernels import kernel_summary
from ..analyze.memory import HOST_KINDS, memory_summary
from ..analyze.nvtx_summary import nvtx_summary
from ..analyze.stats import min_samples_for
from ..analyze.streams import GPU_KEYS, STREAM_KEYS, GpuActivity
from ..model import Profile
from .memory_labels import memory_labels
from .report import Section
from .section_times import timed

DEFAULT_MAX_ROWS = 20
MS, US = 1e-6, 1e-3          # ns -> ms, ns -> µs
US_UNIT = f"({units.MICROSECONDS})"  # as every report spells it
MB, GB = 1e-6, 1e-9          # bytes -> MB, bytes -> GB (decimal)
TO_MIB = 1.0 / units.MIB     # bytes -> MiB
PERCENT = 100.0
GAPS_PER_GPU = 5
MEMORY_CAPTURE_HINT = "nsys profile --cuda-memory-usage=true ..."
MEMORY_TITLE = "GPU memory and host memory, by kind"

IDENTIFIER = "id"  # a scale that shows a number as a label: no thousands separator

# (analysis column, display column, scale or IDENTIFIER); columns not listed are dropped
Columns = list[tuple[str, str, float | str | None]]

KERNEL_COLUMNS: Columns = [
    ("kernel", "Kernel", None), ("variants", "Variants", None), ("count", "Calls", None),
    ("total_ns", "Total (ms)", MS),
    ("share", "Share (%)", PERCENT), ("mean_ns", f"Mean {US_UNIT}", US),
    ("p50_ns", f"Median {US_UNIT}", US), ("p90_ns", f"p90 {US_UNIT}", US),
    ("p99_ns", f"p99 {US_UNIT}", US),
    ("min_ns", f"Min {US_UNIT}", US), ("max_ns", f"Max {US_UNIT}", US),
]
NVTX_COLUMNS: Columns = [
    ("domain", "Domain", None), ("text", "Range", None), ("range_kind", "Kind", None),
    ("count", "Count", None), ("total_ns", "Total (ms)", MS), ("mean_ns", f"Mean {US_UNIT}", US),
    ("p50_ns", f"Median {US_UNIT}", US), ("p90_ns", f"p90 {US_UNIT}", US),
    ("p99_ns", f"p99 {US_UNIT}", US),
    ("min_ns", f"Min {US_UNIT}", US), ("max_ns", f"Max {US_UNIT}", US),
]
COPY_COLUMNS: Columns = [
    ("kind", "Kind", None), ("direction", "Direction", None), ("count", "Count", None),
    ("total_bytes", "Total (MB)", MB), ("total_ns", "Time (ms)", MS),
    ("bandwidth_bytes_per_s", "Bandwidth (GB/s)", GB), ("min_bytes", "Min size (B)", None),
    ("mean_bytes", "Mean size (B)", None), ("max_bytes", "Max size (B)", None),
]
BUSY_COLUMNS: Columns = [
    ("device_id", "GPU", IDENTIFIER), ("pid", "Process", IDENTIFIER),
    ("stream_id", "Stream", IDENTIFIER),
    ("count", "Ops", None), ("busy_ns", "Busy (ms)", MS), ("span_ns", "Span (ms)", MS),
    ("utilisation", "Busy (%)", PERCENT), ("work_ns", "Work (ms)", MS),
    ("gap_count", "Idle gaps", None), ("gap_total_ns", "Idle (ms)", MS),
    ("gap_max_ns", "Largest gap (ms)", MS),
]
GAP_COLUMNS: Columns = [
    ("device_id", "GPU", IDENTIFIER), ("start_ms", "Starts at (ms)", None),
    ("gap_ns", "Length (ms)", MS),
]
API_COLUMNS: Columns = [
    ("name", "API call", None), ("calls", "Calls", None), ("total_ns", "Total (ms)", MS),
    ("share", "Time (%)", PERCENT), ("mean_ns", f"Mean {US_UNIT}", US),
    ("median_ns", f"Median {US_UNIT}", US), ("min_ns", f"Min {US_UNIT}", US),
    ("max_ns", f"Max {US_UNIT}", US),
]
MEMORY_COLUMNS: Columns = [
    ("memory", "Memory", None), ("source", "Source", None), ("peak_bytes", "Peak (MiB)", TO_MIB),
    ("peak_ms", "Peak at (ms)", None), ("peak_phase", "Phase at peak", None),
    ("final_bytes", "Final (MiB)", TO_MIB), ("allocations", "Allocations", None),
    ("frees", "Frees", None),
]

# in JSON and CSV only: what a memory row is, for programs that select by kind and GPU
MEMORY_MACHINE_ONLY: Columns = [("memory_kind", "", None), ("device_id", "", None),
                                ("peak_time_ns", "", None)]


# An analysis table by section name: (name, how to compute it) -> the table. A saved run
# hands in its stored tables this way (``Run.section_table``); by default each is computed.
TableSource = Callable[[str, Callable[[], pd.DataFrame]], pd.DataFrame]


def _computed(name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    return compute()


# Sections in reading order, and the order they are computed in: the NVTX and API summaries
# first, so that a report allowed to ``release`` its tables drops the two biggest event
# tables (at 5M kernels: 7.3M API calls, 4.8M NVTX ranges) before the GPU timeline is built.
READING_ORDER = ("kernels", "gpus", "gaps", "streams", "copies", "nvtx", "api", "memory")
COMPUTE_ORDER = ("nvtx", "api", "kernels", "gpus", "gaps", "streams", "copies", "memory")
# the tables no section computed later reads (the GPU sections read kernels and copies
# through one GpuActivity, which holds its own copy of their intervals once built)
LAST_READER = {"nvtx": ("nvtx_ranges",), "api": ("api_calls",), "streams": ("kernels",),
               "copies": ("copies",), "memory": ("memory_events",)}


def build_sections(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                   origin_ns: int | None = None, tables: TableSource = _computed,
                   release: Callable[[str], None] | None = None) -> list[Section]:
    """Every nsys section except layers, in reading order; sections without data are skipped,
    except memory, which says how to capture it when it is missing. Times of day are ms from
    ``origin_ns``, the run's time zero (``Run.time_zero``; None: found here). ``tables`` gives
    each section's analysis table (``Run.section_table`` reuses a saved run's). ``release``
    (a table name -> None), when given, is told each table as soon as no later section
    reads it: a caller that needs the tables no more frees them then."""
    # the GPU, gap and stream sections read the same intervals, and the first two the same
    # per-GPU timeline: built once, when the first of them is computed
    activity = functools.cache(lambda: GpuActivity.of(profile.kernels, profile.copies))
    origin = first_event_ns(profile.tables) if origin_ns is None else origin_ns
    summaries: dict[str, Callable[[], pd.DataFrame]] = {
        "kernels": lambda: kernel_summary(profile.kernels),
        "gpus": lambda: activity().busy(GPU_KEYS),
        "gaps": lambda: activity().largest_gaps(GAPS_PER_GPU),
        "streams": lambda: activity().busy(STREAM_KEYS),
        "copies": lambda: copy_summary(profile.copies),
        "nvtx": lambda: nvtx_summary(profile.nvtx_ranges),
        "api": lambda: api_summary(profile.api_calls),
        "memory": lambda: memory_summary(profile.memory_events),
    }
    builders: dict[str, Callable[..., Section | None]] = {
        "kernels": kernel_section, "gpus": gpu_section,
        "gaps": partial(gap_section, origin_ns=origin), "streams": stream_section,
        "copies": copy_section, "nvtx": nvtx_section, "api": api_section,
        "memory": partial(memory_section, origin_ns=origin)}
    sections: dict[str, Section | None] = {}
    for name in COMPUTE_ORDER:
        with timed(name):
            summary = tables(name, summaries[name])
            sections[name] = builders[name](profile, max_rows, summary=summary)
        if name == "gaps" and activity.cache_info().currsize:
            activity().forget(GPU_KEYS)  # the per-GPU timeline is done with
        for table in LAST_READER.get(name, ()) if release else ():
            release(table)
    return [s for s in (sections[name] for name in READING_ORDER) if s is not None]


def kernel_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                   by: str = "name", summary: pd.DataFrame | None = None) -> Section | None:
    """Kernels by base name (``by="name"``) or one row per instantiation
    (``by="demangled_name"``); ``summary``: ``kernel_summary``'s table, computed already."""
    summary = kernel_summary(profile.kernels, by=by) if summary is None else summary
    if summary.empty:
        return None
    table = _display(summary.rename(columns={by: "kernel"}), KERNEL_COLUMNS)
    merged = int((summary["variants"] > 1).sum())
    if not merged:
        table = table.drop(columns="Variants")
    total_ms = summary["total_ns"].sum() * MS
    launches, names = int(summary["count"].sum()), len(summary)
    notes = [f"{launches:,} kernel launch{'es' if launches != 1 else ''} of {names:,} distinct "
             f"kernel{'s' if names != 1 else ''}, {total_ms:,.3f} ms of kernel time in all "
             "(kernels overlapping on different streams each count in full).",
             _variants_note(merged), _percentile_note(summary["count"])]
    return Section("kernels", "GPU kernels by total time", table, [n for n in notes if n],
                   max_rows, data=machine_rows(summary.rename(columns={by: "kernel"}),
                                               KERNEL_COLUMNS))


def nvtx_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                 group_ids: bool = False,
                 summary: pd.DataFrame | None = None) -> Section | None:
    summary = nvtx_summary(profile.nvtx_ranges, group_ids) if summary is None else summary
    if summary.empty:
        return None
    notes = ["Push/pop ranges nest on one thread; start/end ranges may cross threads. "
             "Nested ranges each count their full duration.", _percentile_note(summary["count"])]
    if group_ids:
        notes.append("Grouped (--group-nvtx): names that differ only by trailing ids "
                     "('op_id = *') share a row; CSV and JSON keep one row per name.")
    return Section("nvtx", "NVTX ranges by total time", _display(summary, NVTX_COLUMNS),
                   [n for n in notes if n], max_rows, data=machine_rows(summary, NVTX_COLUMNS))


def copy_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                 summary: pd.DataFrame | None = None) -> Section | None:
    summary = copy_summary(profile.copies) if summary is None else summary
    if summary.empty:
        return None
    notes = ["Bandwidth is bytes over the time the operations were running (MB = 10^6 bytes, "
             "GB/s = 10^9 bytes/s)."]
    return Section("copies", "Memory copies and sets", _display(summary, COPY_COLUMNS), notes,
                   max_rows, data=machine_rows(summary, COPY_COLUMNS))


def api_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                summary: pd.DataFrame | None = None) -> Section | None:
    """CUDA API calls by total host time (``nsys stats --report cuda_api_sum``)."""
    summary = api_summary(profile.api_calls) if summary is None else summary
    if summary.empty:
        return None
    calls, total_ms = int(summary["calls"].sum()), summary["total_ns"].sum() * MS
    notes = [f"{calls:,} CUDA API calls, {total_ms:,.3f} ms on the host in all (calls on "
             "several threads each count in full). Time is host (CPU) time inside the call; "
             "the median of an even count is the mean of the two middle calls."]
    return Section("api", "CUDA API calls by total time", _display(summary, API_COLUMNS), notes,
                   max_rows, data=machine_rows(summary, API_COLUMNS))


def gpu_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                activity: GpuActivity | None = None,
                summary: pd.DataFrame | None = None) -> Section | None:
    busy = _activity(profile, activity).busy(GPU_KEYS) if summary is None else summary
    if busy.empty:
        return None
    notes = ["Busy time is the union of kernel and copy intervals: concurrent work on several "
             "streams counts once (Work sums every operation's duration). Span runs from the "
             "first GPU operation to the last; an idle gap is time with nothing running."]
    return Section("gpus", "GPU utilisation", _display(busy, BUSY_COLUMNS), notes, max_rows,
                   data=machine_rows(busy, BUSY_COLUMNS))


def gap_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                top: int = GAPS_PER_GPU, activity: GpuActivity | None = None,
                origin_ns: int | None = None, summary: pd.DataFrame | None = None) -> Section | None:
    gaps = _activity(profile, activity).largest_gaps(top) if summary is None else summary.copy()
    if gaps.empty:
        return None
    gaps["start_ms"] = (gaps["gap_start_ns"] - _origin(profile, origin_ns)) * MS
    notes = [f"The {top} longest stretches per GPU with no kernel or copy running, with when "
             "they began (ms since the first event of the profile): look at the host threads "
             "then (e.g. in the Chrome trace) for the stall."]
    return Section("gaps", "Longest GPU idle gaps", _display(gaps, GAP_COLUMNS), notes, max_rows,
                   data=machine_rows(gaps, GAP_COLUMNS))


def stream_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                   activity: GpuActivity | None = None,
                   summary: pd.DataFrame | None = None) -> Section | None:
    busy = _activity(profile, activity).busy(STREAM_KEYS) if summary is None else summary
    if busy.empty:
        return None
    busy = busy.sort_values(["busy_ns", "device_id", "stream_id"], ascending=[False, True, True])
    notes = ["Per stream: an idle gap is time between consecutive operations on that stream."]
    return Section("streams", "Streams by busy time", _display(busy, BUSY_COLUMNS), notes,
                   max_rows, data=machine_rows(busy, BUSY_COLUMNS))


def _origin(profile: Profile, origin_ns: int | None) -> int:
    """The caller's time zero, else the run's first event (a section built on its own)."""
    return first_event_ns(profile.tables) if origin_ns is None else origin_ns


def _activity(profile: Profile, activity: GpuActivity | None) -> GpuActivity:
    """The caller's shared ``GpuActivity``, else one for this section alone."""
    return GpuActivity.of(profile.kernels, profile.copies) if activity is None else activity


def memory_section(profile: Profile, max_rows: int | None = DEFAULT_MAX_ROWS,
                   origin_ns: int | None = None, summary: pd.DataFrame | None = None) -> Section:
    """Peak and final use per source, GPU and kind of memory: one row per kind, so pinned host
    memory is never added into a GPU's device memory."""
    if profile.num_rows("memory_events") == 0:
        notes = ["Memory over time was not captured: this profile holds no memory "
                 f"allocation or free events. Capture them with: {MEMORY_CAPTURE_HINT}"]
        return Section("memory", MEMORY_TITLE, None, notes, max_rows)
    summary = (memory_summary(profile.memory_events) if summary is None else summary).copy()
    summary["memory"] = memory_labels(summary)
    summary["peak_ms"] = (summary["peak_time_ns"] - _origin(profile, origin_ns)) * MS
    notes = ["Memory in use is the running sum of allocations minus frees per source, GPU and "
             "kind of memory; 'Peak at' is ms since the first event of the profile. A final "
             "value above zero is memory still held when the capture stopped."]
    kinds = set(summary["memory_kind"])
    if kinds & HOST_KINDS:
        notes.append("'host pinned' and 'host pageable' are host RAM that CUDA allocated "
                     "(through a GPU's context), not GPU memory: they are never added to a GPU's "
                     "rows. 'GPU n device' is cudaMalloc memory on that GPU, 'device static' its "
                     "__device__ variables.")
    if any(str(k).startswith("managed") for k in kinds):
        notes.append("Managed (unified) memory migrates between host and GPU; its row counts "
                     "what was allocated, wherever it resided.")
    return Section("memory", MEMORY_TITLE, _display(summary, MEMORY_COLUMNS), notes, max_rows,
                   data=machine_rows(summary, MEMORY_COLUMNS + MEMORY_MACHINE_ONLY))


def profile_facts(profile: Profile) -> dict[str, str]:
    """Header facts: tool version, GPUs and capture size (no host, user or path data)."""
    meta = profile.meta
    facts = {"Tool": " ".join(x for x in (meta.tool or "nsys", meta.tool_version) if x)}
    if meta.gpus:
        facts["GPUs"] = ", ".join(f"{g.device_id}: {g.name}" for g in meta.gpus)
    facts["Kernels"] = f"{len(profile.kernels):,}"
    facts["Copies and sets"] = f"{len(profile.copies):,}"
    facts["NVTX ranges"] = f"{len(profile.nvtx_ranges):,}"
    return facts


def _display(summary: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Rename and rescale the analysis columns present in ``summary``; raw names go."""
    out = {}
    for source, shown, scale in columns:
        if source in summary.columns:
            values = summary[source]
            if scale == IDENTIFIER:
                values = values.astype(str)
            elif isinstance(scale, float):
                values = values.astype("float64") * scale
            out[shown] = values
    return pd.DataFrame(out).reset_index(drop=True)


def machine_rows(summary: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The rows for JSON and CSV: the listed analysis columns as they are (raw ns and bytes,
    shares as fractions, full precision); their names are the machine keys."""
    keep = [source for source, _, _ in columns if source in summary.columns]
    return summary[keep].reset_index(drop=True)


def _variants_note(merged: int) -> str | None:
    if not merged:
        return None
    return (f"{merged:,} kernel name{'s' if merged != 1 else ''} group several template "
            "instantiations (Variants); group by demangled name to see each one.")


def _percentile_note(counts: pd.Series) -> str | None:
    few = int((counts < min_samples_for(99)).sum())
    if few == 0:
        return None
    return (f"p99 is reliable from {min_samples_for(99):,} samples up; {few:,} of "
            f"{len(counts):,} rows have fewer, so read their p99 as indicative.")
