"""The report over many exports: a row per export, then kernels, TensorRT layers, copies and
memory peaks across all exports and per export. Display units and names only; the numbers
come merged from ``analyze.fleet``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.fleet import (
    METHOD_NOTE,
    ExportPartial,
    memory_per_export,
    merge_copies,
    merge_kernels,
    merge_layers,
    merge_memory,
)
from .memory_labels import memory_labels
from .nsys_report import (
    COPY_COLUMNS,
    DEFAULT_MAX_ROWS,
    KERNEL_COLUMNS,
    MS,
    PERCENT,
    TO_MIB,
    US,
    US_UNIT,
    Columns,
    _display,
)
from .report import Report, Section, write_report

EXPORT_COLUMN: Columns = [("export", "Export", None)]
EXPORTS_COLUMN: Columns = [("exports", "Exports", None)]
LAYER_COLUMNS: Columns = [
    ("layer", "layer", None), ("calls", "calls", None), ("total_ns", "total ms", MS),
    ("mean_ns", f"mean {US_UNIT}", US), ("share", "% GPU", PERCENT),
    ("cumulative_share", "cum %", PERCENT), ("kernels_per_call", "kernels/call", None),
]
MEMORY_EXPORT_COLUMNS: Columns = [
    ("export", "Export", None), ("memory", "Memory", None), ("source", "Source", None),
    ("peak_bytes", "Peak (MiB)", TO_MIB), ("peak_ms", "Peak at (ms)", None),
    ("final_bytes", "Final (MiB)", TO_MIB), ("allocations", "Allocations", None),
    ("frees", "Frees", None),
]
MEMORY_ALL_COLUMNS: Columns = [
    ("memory", "Memory", None), ("source", "Source", None), ("exports", "Exports", None),
    ("peak_bytes", "Largest peak (MiB)", TO_MIB), ("peak_export", "In export", None),
    ("allocations", "Allocations", None), ("frees", "Frees", None),
]
OK = "ok"


def fleet_report(partials: list[ExportPartial], engine: str,
                 top: int | None = None) -> Report:
    """``engine`` says where the partials were computed (e.g. "Dask LocalCluster, 2 workers")."""
    read = [p for p in partials if p.error is None]
    failed = len(partials) - len(read)
    report = Report(title=f"gpuprof: {len(partials)} exports", facts={
        "Exports": f"{len(partials):,} ({len(read):,} read, {failed:,} failed)",
        "Kernels": f"{sum(p.kernels for p in read):,}",
        "Computed on": engine})
    report.add(exports_section(partials))
    for section in (_kernel_sections(read) + _layer_sections(read) + _copy_sections(read)
                    + _memory_sections(read)):
        report.add(section)
    for section in report.sections:
        section.max_rows = top if top is not None else section.max_rows
    return report


def exports_section(partials: list[ExportPartial]) -> Section:
    table = pd.DataFrame({
        "Export": [p.export for p in partials],
        # second: the column a narrow terminal must not drop
        "Status": [OK if p.error is None else f"failed: {p.error}" for p in partials],
        "Release": [p.release for p in partials],
        "GPUs": [p.gpus for p in partials],
        "Kernels": [p.kernels for p in partials],
        "GPU time (ms)": [p.gpu_time_ns * MS for p in partials],
        "Copies": [p.copies for p in partials],
        "Memory peak (MiB)": [_peaks_text(p) for p in partials],
    })
    notes = ["GPU time sums every kernel's duration (kernels overlapping on different streams "
             "each count in full). Memory peak is the largest use per GPU and kind of memory "
             "(nsys --cuda-memory-usage); an export that failed says why in Status and is left "
             "out of the tables below."]
    return Section("exports", "Exports", table, notes, max_rows=None)


def _peaks_text(partial: ExportPartial) -> str:
    peaks = partial.memory_peaks
    if partial.error is not None or peaks.empty:
        return ""
    labels = memory_labels(peaks)
    return "; ".join(f"{label} {peak * TO_MIB:,.1f}"
                     for label, peak in zip(labels, peaks["peak_bytes"]))


def _pair(key: str, title: str, per_export: pd.DataFrame, across: pd.DataFrame,
          columns: Columns, notes: list[str]) -> list[Section]:
    """The table across all exports and the one per export, or nothing without data."""
    if across.empty:
        return []
    own = [column for column in columns if column[0] != "exports"]
    return [Section(key, f"{title} across all exports", _display(across, columns), notes,
                    DEFAULT_MAX_ROWS),
            Section(f"{key}_by_export", f"{title} per export",
                    _display(per_export, EXPORT_COLUMN + own), notes, DEFAULT_MAX_ROWS)]


def _with_exports(columns: Columns, after: str) -> Columns:
    """``columns`` with the Exports column after the column ``after``."""
    at = next(i for i, (source, _, _) in enumerate(columns) if source == after) + 1
    return columns[:at] + EXPORTS_COLUMN + columns[at:]


def _kernel_sections(read: list[ExportPartial]) -> list[Section]:
    across, per_export = merge_kernels(read, []), merge_kernels(read, ["export"])
    notes = ["Calls, totals, minima and maxima add up or combine over the exports; shares are "
             "of all kernel time (per export: of that export's).", METHOD_NOTE]
    return _pair("kernels", "GPU kernels by total time", per_export, across,
                     _with_exports(KERNEL_COLUMNS, "variants"), notes)


def _layer_sections(read: list[ExportPartial]) -> list[Section]:
    across, per_export = merge_layers(read, []), merge_layers(read, ["export"])
    notes = ["TensorRT layers of the exports that have them: calls, GPU time and kernels add "
             "up; mean per call and shares are recomputed from the sums. A median per call "
             "does not merge from partial sums and is shown in each export's own report."]
    return _pair("layers", "TensorRT layers by GPU time", per_export, across,
                     _with_exports(LAYER_COLUMNS, "layer"), notes)


def _copy_sections(read: list[ExportPartial]) -> list[Section]:
    across, per_export = merge_copies(read, []), merge_copies(read, ["export"])
    notes = ["Counts, bytes and time add up; bandwidth is the summed bytes over the summed "
             "time (MB = 10^6 bytes, GB/s = 10^9 bytes/s)."]
    return _pair("copies", "Memory copies and sets", per_export, across,
                     _with_exports(COPY_COLUMNS, "direction"), notes)


def _memory_sections(read: list[ExportPartial]) -> list[Section]:
    per_export = memory_per_export(read)
    if per_export.empty:
        return []
    across = merge_memory(read)
    per_export["memory"] = _labels_per_export(per_export)
    across["memory"] = memory_labels(across)
    notes = ["Peaks of different exports never add (different processes, often different "
             "machines): across all exports the largest one is shown, with its export. 'Peak at' "
             "is ms since the first event of that export."]
    return [Section("memory", "Memory peaks across all exports",
                    _display(across, MEMORY_ALL_COLUMNS), notes, DEFAULT_MAX_ROWS),
            Section("memory_by_export", "Memory peaks per export",
                    _display(per_export, MEMORY_EXPORT_COLUMNS), notes, DEFAULT_MAX_ROWS)]


def _labels_per_export(rows: pd.DataFrame) -> list[str]:
    labels = pd.Series("", index=rows.index, dtype=object)
    for _, group in rows.groupby("export", sort=False):
        labels[group.index] = memory_labels(group)
    return labels.tolist()


def write_fleet_artifacts(report: Report, out_dir: str | Path) -> list[Path]:
    """report.md/.json/.txt and one CSV per table (no trace, plot or saved run: those are per
    export)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # report.txt is a file: every name whole, as in every other --out-dir
    written = [write_report(report, out / "report.md"), write_report(report, out / "report.json"),
               write_report(report, out / "report.txt")]
    for section in report.sections:
        if section.table is not None and len(section.table):
            written.append(write_report(report, out / f"{section.key}.csv", table=section.key))
    return written
