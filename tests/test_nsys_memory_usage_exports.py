"""Memory over time from real exports that carry CUDA_GPU_MEMORY_USAGE_EVENTS (captured with
``nsys profile --cuda-memory-usage=true``), cross-checked against plain SQL on the same file.

None of the shared exports has the table yet, so this test skips with that reason until one is
added to shared/fixtures/nsys; it then runs on every such export unchanged."""

from __future__ import annotations

import sqlite3

import pytest

import gpuprof

from .conftest import nsys_fixtures

TABLE = "CUDA_GPU_MEMORY_USAGE_EVENTS"


def _with_memory_usage() -> list:
    found = []
    for path in nsys_fixtures():
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone():
                found.append(path)
        finally:
            con.close()
    return found or [pytest.param(None, marks=pytest.mark.skip(
        reason=f"no shared nsys export has {TABLE}: add one captured with --cuda-memory-usage=true"))]


@pytest.mark.parametrize("export", _with_memory_usage(), ids=lambda p: getattr(p, "name", "none"))
def test_memory_events_equal_sql_on_the_export(export):
    run = gpuprof.load(export)
    events = run.memory_events
    con = sqlite3.connect(f"file:{export}?mode=ro", uri=True)
    try:
        rows, allocated, freed = con.execute(
            f"SELECT COUNT(*), TOTAL(CASE WHEN memoryOperationType = 0 THEN bytes END), "
            f"TOTAL(CASE WHEN memoryOperationType = 1 THEN bytes END) FROM {TABLE}").fetchone()
    finally:
        con.close()
    assert len(events) == rows
    assert events.loc[events["kind"] == "alloc", "bytes"].sum() == allocated
    assert -events.loc[events["kind"] == "free", "bytes"].sum() == freed
    assert "memory_events" not in run.meta.absent
    report = run.report()
    assert report is not None
