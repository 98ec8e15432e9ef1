"""How much memory reading an export will take, known before reading it: the rows of its
three big tables from their rowid spans (two b-tree lookups each, no scan), times what the
model and the report hold per row."""

from __future__ import annotations

from pathlib import Path

from . import schema
from .export_file import ExportFile

# Bytes per row the model holds after the read, measured at 5M kernels (the scaled ResNet-50
# export, docs/BENCHMARKS.md session 9): kernels 200 MiB / 5.0M, API calls 395 MiB / 7.26M,
# NVTX ranges 232 MiB / 4.77M.
MODEL_BYTES_PER_ROW = {schema.KERNEL: 42, schema.RUNTIME: 57, schema.NVTX: 51}
# the default report's peak over the model's columns (1,379 MiB against 836 + 150 MiB of
# imports at 5M), rounded up; and the interpreter with its libraries
PEAK_OVER_MODEL = 1.7
BASE_BYTES = 150 * 2**20


def event_rows(path: Path) -> dict[str, int]:
    """Upper bounds of the rows of the export's kernel, CUDA API and NVTX tables (a table it
    lacks is left out). Damage or an unknown layout reads as 0 rows: this only sizes."""
    export = ExportFile(path)
    try:
        return {table: export.row_bound(table) for table in MODEL_BYTES_PER_ROW
                if export.has(table)}
    finally:
        export.close()


def report_peak_bytes(rows: dict[str, int]) -> int:
    """About the most memory ``gpuprof nsys`` will hold for an export of ``rows``."""
    model = sum(MODEL_BYTES_PER_ROW[table] * n for table, n in rows.items())
    return int(BASE_BYTES + PEAK_OVER_MODEL * model)
