"""Ingest an Nsight Systems SQLite export (any release, 2021 to 2026) into a ``Profile``.

    profile = read_nsys("report.sqlite")

What an export lacks is recorded in ``profile.meta.absent``, never guessed. A ``.nsys-rep`` is
exported to SQLite first when ``nsys`` is installed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="gpuprof-read")
    try:
        strings = StringTable(export)
        # The three big tables are read side by side, each scan on one core (see ExportFile).
        big = [pool.submit(read_nvtx, export, strings, details),
               pool.submit(read_kernels, export, strings, details),
               pool.submit(read_api_calls, export, strings, details)]
        (nvtx, open_ranges), (kernels, launches), api_calls = (f.result() for f in big)
        tables = {
            "kernels": kernels,
            "api_calls": api_calls,
            "copies": read_copies(export),
            "nvtx_ranges": nvtx,
            "memory_events": read_memory_events(export),
        }
        meta = read_meta(export)
    except BaseException:
        export.interrupt()  # a failed read or Ctrl-C stops the other reads now
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # no read outlives the connections
        export.close()
    meta.extra["details"] = details
    meta.absent = {name: ABSENT_REASONS[name] for name, frame in tables.items() if frame is None}
    if launches is not None:
        tables["kernel_launches"] = launches
    if open_ranges:
        meta.extra["nvtx_ranges_without_end"] = open_ranges
    return Profile(tables={k: v for k, v in tables.items() if v is not None}, meta=meta)


__all__ = ["read_nsys"]
