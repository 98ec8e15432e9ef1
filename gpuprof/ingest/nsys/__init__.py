"""Ingest an Nsight Systems SQLite export (any release, 2021 to 2026) into a ``Profile``.

    profile = read_nsys("report.sqlite")

What an export lacks is recorded in ``profile.meta.absent``, never guessed. A ``.nsys-rep`` is
exported to SQLite first when ``nsys`` is installed.
"""

from __future__ import annotations

from pathlib import Path

from ...model import Profile
from . import schema
from .export_file import ExportFile
from .metadata import read_meta
from .readers import read_api_calls, read_copies, read_kernels, read_memory_events, read_nvtx
from .rep import ensure_sqlite
from .strings import StringTable

ABSENT_REASONS = {
    "kernels": f"the export has no {schema.KERNEL} table: no CUDA kernels were traced "
               "(capture with 'nsys profile -t cuda')",
    "api_calls": f"the export has no {schema.RUNTIME} table: CUDA API calls were not traced",
    "copies": f"the export has no {schema.MEMCPY} or {schema.MEMSET} table: no memory copies "
              "or sets were traced",
    "nvtx_ranges": f"the export has no {schema.NVTX} table: the program emitted no NVTX ranges "
                   "or NVTX was not traced (-t nvtx)",
    "memory_events": f"the export has no {schema.GPU_MEMORY} table: GPU memory usage was not "
                     "captured (capture it with 'nsys profile --cuda-memory-usage=true')",
}


def read_nsys(path: str | Path, details: bool = False) -> Profile:
    """Read an export. ``details`` adds each kernel's launch configuration (grid, block,
    registers, shared memory, graph node), API return values (unread: -1) and NVTX payloads
    (unread: NaN). ``meta.extra["details"]`` says whether they were read."""
    sqlite_path = ensure_sqlite(Path(path))
    export = ExportFile(sqlite_path)
    try:
        strings = StringTable(export)
        nvtx, open_ranges = read_nvtx(export, strings, details)
        kernels, launches = read_kernels(export, strings, details)
        tables = {
            "kernels": kernels,
            "api_calls": read_api_calls(export, strings, details),
            "copies": read_copies(export),
            "nvtx_ranges": nvtx,
            "memory_events": read_memory_events(export),
        }
        meta = read_meta(export)
    finally:
        export.close()
    meta.extra["details"] = details
    meta.absent = {name: ABSENT_REASONS[name] for name, frame in tables.items() if frame is None}
    if launches is not None:
        tables["kernel_launches"] = launches
    if open_ranges:
        meta.extra["nvtx_ranges_without_end"] = open_ranges
    return Profile(tables={k: v for k, v in tables.items() if v is not None}, meta=meta)


__all__ = ["read_nsys"]
