"""Golden outputs of `gpuprof nsys` on every shared export: each section's analysis table
(what the report prints, before display units) recomputed independently -- plain SQL on the
export, plain Python and numpy on its rows -- and the report of the saved run (its stored
section tables) identical to the export's, section by section.

These guard the speed work of issue 10: any faster way to aggregate must keep every figure.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

import gpuprof
from tests.conftest import fixture_path, gpu_activity_rows, nsys_fixtures, nsys_sql

EXPORTS = [p.name for p in nsys_fixtures()]
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
PLACED = 'WHERE "end" >= start AND start >= 0'  # rows the ingest can place in time


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """name -> (run of the export after its report, the report, the saved run's report, the
    saved run after its report)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            run = gpuprof.load(fixture_path("nsys", name))
            report = run.report()
            saved = gpuprof.load(run.save(tmp_path_factory.mktemp("golden") / "run.gpuprof"))
            cache[name] = (run, report, saved.report(), saved)
        return cache[name]

    return get


def _table(run, name: str) -> pd.DataFrame:
    """The analysis table the report's section ``name`` was built from."""
    return run.section_table(name, lambda: pytest.fail(f"section {name} was not computed"))


@pytest.mark.parametrize("name", EXPORTS)
def test_saved_run_report_is_identical(name, reports):
    _, report, saved, _ = reports(name)
    assert report.facts == saved.facts
    assert [s.key for s in report.sections] == [s.key for s in saved.sections]
    for mine, theirs in zip(report.sections, saved.sections, strict=True):
        assert (mine.title, mine.notes) == (theirs.title, theirs.notes), mine.key
        if mine.table is None:
            assert theirs.table is None
        else:
            pd.testing.assert_frame_equal(mine.table, theirs.table, check_dtype=False,
                                          check_categorical=False, obj=mine.key)


@pytest.mark.parametrize("name", EXPORTS)
def test_saved_run_report_decodes_no_event(name, reports):
    """A saved run's whole report reads its stored section tables and figures only: no event
    table, not even one column of one (is_tensorrt once read the whole NVTX domain column)."""
    *_, saved_run = reports(name)
    assert saved_run.tables._loaded == {} and saved_run.tables._partial == {}


def _assert_same_sections(report, other) -> None:
    assert [s.key for s in report.sections] == [s.key for s in other.sections]
    for mine, theirs in zip(report.sections, other.sections, strict=True):
        assert (mine.title, mine.notes) == (theirs.title, theirs.notes), mine.key
        for a, b in ((mine.table, theirs.table), (mine.data, theirs.data)):
            if a is None:
                assert b is None, mine.key
            else:
                pd.testing.assert_frame_equal(a, b, obj=mine.key)


@pytest.mark.parametrize("name", EXPORTS)
def test_report_that_releases_its_tables_is_identical(name, reports):
    """What the CLI runs when nothing is saved: sections computed in another order, each
    event table dropped after its last reader. Same report, and the tables really freed."""
    _, report, _, _ = reports(name)
    run = gpuprof.load(fixture_path("nsys", name))
    released = run.report(release=True)
    assert released.facts == report.facts
    _assert_same_sections(report, released)
    for table in ("kernels", "api_calls", "nvtx_ranges", "copies", "memory_events"):
        # freed: no rows held (read past the guard), and reading it now raises, never empty
        assert len(dict.__getitem__(run.tables, table)) == 0, table
        with pytest.raises(RuntimeError, match=f"table '{table}' was released"):
            run.num_rows(table)
    assert not run._attributed_by_domain


@pytest.mark.parametrize("name", EXPORTS)
def test_kernel_section_matches_sql_and_numpy(name, reports):
    rows = nsys_sql(name, f"""SELECT COALESCE(s.value, '(unnamed)'), k."end" - k.start,
                                     k.demangledName
                              FROM {KERNEL} k LEFT JOIN StringIds s ON s.id = k.shortName
                              {PLACED.replace('"end"', 'k."end"').replace('start', 'k.start')}""")
    run, _, _, _ = reports(name)
    if not rows:
        assert run.num_rows("kernels") == 0
        return
    durations, variants = defaultdict(list), defaultdict(set)
    for kernel, duration, demangled in rows:
        durations[kernel].append(duration)
        variants[kernel].add(demangled)
    got = _table(run, "kernels").set_index("name")
    assert sorted(got.index) == sorted(durations)
    grand = sum(sum(d) for d in durations.values())
    for kernel, values in durations.items():
        row, arr = got.loc[kernel], np.array(values, dtype=np.int64)
        assert (row["count"], row["total_ns"], row["min_ns"], row["max_ns"], row["variants"]) \
            == (len(arr), arr.sum(), arr.min(), arr.max(), len(variants[kernel])), kernel
        assert row["mean_ns"] == pytest.approx(arr.mean(), rel=1e-12)
        assert row["share"] == pytest.approx(arr.sum() / grand, rel=1e-12)
        for q in (50, 90, 99):
            assert row[f"p{q}_ns"] == pytest.approx(np.percentile(arr, q), rel=1e-12, abs=1e-9)
    # heaviest first, ties by name
    order = sorted(durations, key=lambda k: (-sum(durations[k]), k))
    assert list(got.index) == order


@pytest.mark.parametrize("name", EXPORTS)
def test_api_section_matches_sql_and_numpy(name, reports):
    rows = nsys_sql(name, """SELECT COALESCE(s.value, '(unnamed)'), MAX(r."end" - r.start, 0)
                             FROM CUPTI_ACTIVITY_KIND_RUNTIME r
                             LEFT JOIN StringIds s ON s.id = r.nameId""")
    run, _, _, _ = reports(name)
    got = _table(run, "api")
    if not rows or got.empty:
        assert got.empty == (run.num_rows("api_calls") == 0)
        return
    calls = defaultdict(list)
    for call, duration in rows:
        calls[call].append(duration)
    got = got.set_index("name")
    assert sorted(got.index) == sorted(calls)
    for call, values in calls.items():
        arr = np.array(values)
        assert (got.loc[call, "calls"], got.loc[call, "total_ns"], got.loc[call, "max_ns"]) \
            == (len(arr), arr.sum(), arr.max())
        assert got.loc[call, "median_ns"] == pytest.approx(np.median(arr))


@pytest.mark.parametrize("name", EXPORTS)
def test_copy_section_per_kind_matches_sql(name, reports):
    run, _, _, _ = reports(name)
    got = _table(run, "copies")
    memcpy = nsys_sql(name, """SELECT COUNT(*), SUM(bytes), MIN(bytes), MAX(bytes)
                               FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE "end" >= start
                               GROUP BY copyKind""")
    memset = nsys_sql(name, """SELECT COUNT(*), SUM(bytes), MIN(bytes), MAX(bytes)
                               FROM CUPTI_ACTIVITY_KIND_MEMSET WHERE "end" >= start""")
    expected = sorted(r for r in memcpy + memset if r[0])
    mine = sorted(zip(got["count"], got["total_bytes"], got["min_bytes"], got["max_bytes"],
                      strict=True))
    assert mine == expected


def _union(intervals: list[tuple[int, int]]) -> tuple[int, list[tuple[int, int]]]:
    """Busy time of intervals and the idle gaps between them, by a plain sweep."""
    busy, gaps, current = 0, [], None
    for start, end in sorted(intervals):
        if current is None:
            current = [start, end]
        elif start > current[1]:
            busy += current[1] - current[0]
            gaps.append((current[1], start))
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    busy += current[1] - current[0]
    return busy, gaps


def _gpu_intervals(name: str) -> list[tuple]:
    return gpu_activity_rows(name, PLACED)


@pytest.mark.parametrize("name", EXPORTS)
def test_gpu_stream_and_gap_sections_match_plain_union(name, reports):
    run, _, _, _ = reports(name)
    per_gpu, per_stream = defaultdict(list), defaultdict(list)
    for device, pid, stream, start, end in _gpu_intervals(name):
        per_gpu[device].append((start, end))
        per_stream[(device, pid, stream)].append((start, end))
    if not per_gpu:
        return
    gpus = _table(run, "gpus").set_index("device_id")
    streams = _table(run, "streams").set_index(["device_id", "pid", "stream_id"])
    gaps = _table(run, "gaps")
    assert sorted(gpus.index) == sorted(per_gpu)
    assert sorted(streams.index) == sorted(per_stream)
    for key, intervals in per_stream.items():
        busy, idle = _union(intervals)
        assert (streams.loc[key, "busy_ns"], streams.loc[key, "gap_count"]) \
            == (busy, len(idle)), key
    for device, intervals in per_gpu.items():
        busy, idle = _union(intervals)
        assert (gpus.loc[device, "busy_ns"], gpus.loc[device, "count"]) \
            == (busy, len(intervals))
        expected = sorted(idle, key=lambda g: (g[0] - g[1], g[0]))[:5]
        mine = gaps[gaps["device_id"] == device]
        assert list(zip(mine["gap_start_ns"], mine["gap_end_ns"], strict=True)) == expected


@pytest.mark.parametrize("name", EXPORTS)
def test_nvtx_section_counts_and_totals_match_sql(name, reports):
    """Per range (domain, text, kind): count and total, as a multiset (the SQL groups by
    domain id, the report by domain name)."""
    rows = nsys_sql(name, """SELECT COUNT(*), SUM(n."end" - n.start)
                             FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
                             WHERE n.eventType IN (59, 60) AND n."end" >= n.start
                             GROUP BY n.domainId, COALESCE(n.text, s.value), n.eventType""")
    run, _, _, _ = reports(name)
    got = _table(run, "nvtx")
    mine = sorted(zip(got["count"].astype(int), got["total_ns"].astype(int), strict=True))
    assert mine == sorted(rows)
