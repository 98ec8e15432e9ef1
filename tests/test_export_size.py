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


def test_exports_read_side_by_side_are_sized_together(capsys, monkeypatch):
    """A local cluster reads as many exports at once as it has workers: the warning adds the
    biggest of them, names them, and says to run fewer at once; a saved run is not sized."""
    import gpuprof.capture.host as host
    from gpuprof.cli.memory_check import warn_if_too_big

    big, small = (fixture_path("nsys", n) for n in (
        "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",
        "MosesChuka__EasyCUDA__nsys_easy.sqlite"))
    one = report_peak_bytes(event_rows(big))
    two = one + report_peak_bytes(event_rows(small))
    monkeypatch.setattr(host, "available_memory_bytes", lambda: (one + two) // 2)
    warn_if_too_big([small, big], at_once=1)  # the biggest alone fits
    assert capsys.readouterr().err == ""
    warn_if_too_big([small, big], at_once=2)
    err = capsys.readouterr().err
    assert err.startswith("Warning: reading 2 of these exports at once (the biggest: "
                          f"{big.name}, {small.name})") and "--workers" in err
    warn_if_too_big([big.with_suffix(".gpuprof")], at_once=1)  # not an export: nothing said
    assert capsys.readouterr().err == ""
