"""What reading an export will cost, known before reading it: the big tables' row bounds
(rowid spans) against plain SQL counts on every shared export, and the host's memory."""

from __future__ import annotations

import pytest

from gpuprof.capture.host import available_memory_bytes
from gpuprof.ingest.nsys import schema
from gpuprof.ingest.nsys.size import MODEL_BYTES_PER_ROW, event_rows, report_peak_bytes

from .conftest import fixture_path, nsys_fixtures, nsys_sql

EXPORTS = [p.name for p in nsys_fixtures()]


@pytest.mark.parametrize("name", EXPORTS)
def test_row_bounds_hold_every_row(name):
    """A bound may exceed the count (deleted rows leave rowid gaps) but never fall short:
    it sizes memory, and an undercount is the dangerous side."""
    path = fixture_path("nsys", name)
    if path.stat().st_size == 0:
        pytest.skip("empty file")
    rows = event_rows(path)
    tables = {t for (t,) in nsys_sql(name, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(rows) == set(MODEL_BYTES_PER_ROW) & tables
    for table, bound in rows.items():
        (count,) = nsys_sql(name, f"SELECT COUNT(*) FROM {table}")[0]
        assert bound >= count, table
        if count:  # nsys writes rowids 1..N: the bound is exact on an untouched export
            (low, high) = nsys_sql(name, f"SELECT MIN(rowid), MAX(rowid) FROM {table}")[0]
            assert bound == high - low + 1


def test_peak_estimate_covers_the_measured_5m_report():
    """At 5,000,038 kernels (7,257,822 API calls, 4,767,801 NVTX events) the default report
    peaked at 1,379 MiB (docs/BENCHMARKS.md, session 9): the estimate must not be below it."""
    rows = {schema.KERNEL: 5_000_038, schema.RUNTIME: 7_257_822, schema.NVTX: 4_767_801}
    assert 1_379 * 2**20 <= report_peak_bytes(rows) <= 2 * 1_379 * 2**20
    assert report_peak_bytes({}) > 0


def test_available_memory_is_read_here():
    available = available_memory_bytes()
    assert available is not None and available > 0
