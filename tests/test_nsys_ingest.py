"""Every real nsys export (2021 to 2026) ingests; absent tables are reported, not guessed;
nothing identifying from the export's metadata leaks into the run."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import TABLE_NAMES, Profile

from .conftest import fixture_path, nsys_fixtures

FIXTURES = nsys_fixtures()
SQL_COUNTS = {
    "kernels": "CUPTI_ACTIVITY_KIND_KERNEL",
    "api_calls": "CUPTI_ACTIVITY_KIND_RUNTIME",
}


# META_DATA_CAPTURE keys whose values identify a person, a machine or a launch environment.
PERSONAL_CAPTURE_KEYS = ("USER_NAME", "ENVIRONMENT_VARIABLE", "WORKING_DIR", "COMMAND", "ARGUMENT",
                         "HOST", "DEVICE_DISPLAY_NAME")


def _count(path, table):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def test_fixture_set_is_found():
    # the shared set grows: take it as it is found, never pin its size
    if not FIXTURES:
        pytest.skip("shared nsys fixtures not found (set GPUPROF_FIXTURES)")
    assert all(path.suffix == ".sqlite" for path in FIXTURES)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name[:40])
def test_every_export_ingests(path):
    profile = read_nsys(path)
    for name in TABLE_NAMES:
        assert name in profile.tables
    for name, table in SQL_COUNTS.items():
        expected = _count(path, table)
        if expected is None:
            assert name in profile.meta.absent
            assert profile.tables[name].empty
        else:
            assert len(profile.tables[name]) == expected
    copies = (_count(path, "CUPTI_ACTIVITY_KIND_MEMCPY") or 0) + (_count(path, "CUPTI_ACTIVITY_KIND_MEMSET") or 0)
    assert len(profile.copies) == copies
    kernels = profile.kernels
    assert (kernels["end_ns"] >= kernels["start_ns"]).all()
    assert kernels["name"].isna().sum() == 0


def _metadata_secrets(path) -> set[str]:
    """Host, user, path and environment values of the export's own metadata tables, minus
    strings that are also the program's own event data (NVTX text, kernel names) or part of
    the file name the user passed: those are legitimately shown."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    found: set[str] = set()
    queries = ["SELECT name, value FROM META_DATA_EXPORT", "SELECT name, value FROM EXPORT_META_DATA",
               "SELECT name, value FROM META_DATA_CAPTURE"]
    for query in queries:
        try:
            found |= {v for (k, v) in con.execute(query)
                      if isinstance(v, str) and any(t in k for t in PERSONAL_CAPTURE_KEYS + ("USER", "PATH"))}
        except sqlite3.OperationalError:
            pass
    try:
        data = "\n".join(v for (v,) in con.execute("SELECT value FROM StringIds") if isinstance(v, str))
        data += "\n".join(v for (v,) in con.execute("SELECT text FROM NVTX_EVENTS") if isinstance(v, str))
    except sqlite3.OperationalError:
        pass
    con.close()
    return {v for v in found if len(v) > 3 and any(c.isalpha() for c in v)
            and v not in path.name and v not in data}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name[:40])
def test_nothing_identifying_leaks(path, tmp_path):
    """Export metadata (host, user, paths, launch environment) never reaches a run or a report."""
    from gpuprof.api import Run
    from gpuprof.render.report import render

    profile = read_nsys(path)
    saved = profile.save(tmp_path / "run.gpuprof").read_bytes()
    outputs = [json.dumps(profile.meta.to_dict())]
    if len(profile.kernels) or len(profile.copies):
        report = Run.of(profile).report()
        outputs += [render(report, "md"), render(report, "json")]
    for secret in _metadata_secrets(path):
        assert secret.encode() not in saved
        for text in outputs:
            assert secret not in text


def test_tensorrt_export_metadata():
    profile = read_nsys(fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"))
    assert profile.meta.tool_version == "2025.1.3.140"
    assert [g.name for g in profile.meta.gpus] == ["NVIDIA GeForce RTX 2070 SUPER"]
    assert profile.meta.gpus[0].compute_capability == "7.5"
    assert profile.meta.session_start_utc_ns == 1761248832294082683
    domains = set(profile.nvtx_ranges["domain"].astype(str))
    assert domains == {"default", "TensorRT"}
    assert "memory_events" in profile.meta.absent
    assert "--cuda-memory-usage=true" in profile.meta.absent["memory_events"]


def test_text_and_textid_in_one_file():
    """nsys 2026.2 writes NVTX strings both inline and as ids in one export."""
    path = fixture_path("nsys", "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite")
    profile = read_nsys(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    expected = con.execute("""SELECT COUNT(*) FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
                              WHERE COALESCE(n.text, s.value) IS NOT NULL AND n.eventType = 59""").fetchone()[0]
    con.close()
    assert profile.nvtx_ranges["text"].notna().sum() == expected == 19118
    assert sorted(profile.kernels["device_id"].unique()) == [0, 1]


def test_oldest_schema_reads_gpus_from_old_table():
    profile = read_nsys(fixture_path("nsys", "lockfuehrer__beast_ressoruces__report1.sqlite"))
    assert profile.meta.tool_version is None
    assert {g.name for g in profile.meta.gpus} == {"Tesla V100-PCIE-32GB"}
    assert profile.meta.gpus[0].sm_count == 80


def test_no_cuda_data_is_absent_not_an_error():
    profile = read_nsys(fixture_path("nsys", "mabdullahsoyturk__cardiac-simulation__report1.sqlite"))
    assert set(profile.meta.absent) == {"kernels", "api_calls", "copies", "nvtx_ranges", "memory_events"}


def test_copy_directions_match_sql():
    path = fixture_path("nsys", "Lianhang666__gpu4__report2.sqlite")
    profile = read_nsys(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = dict(con.execute("SELECT copyKind, SUM(bytes) FROM CUPTI_ACTIVITY_KIND_MEMCPY GROUP BY 1"))
    con.close()
    got = profile.copies.groupby("direction", observed=True)["bytes"].sum().to_dict()
    assert got == {{1: "HtoD", 2: "DtoH", 8: "DtoD"}[k]: v for k, v in rows.items()}


def test_saved_run_round_trips(tmp_path):
    profile = read_nsys(fixture_path("nsys", "caoye310__Lower-Triangular-Solves__la.sqlite"))
    loaded = Profile.load(profile.save(tmp_path / "la"))
    for name in TABLE_NAMES:
        a, b = profile.tables[name], loaded.tables[name]
        assert list(a.columns) == list(b.columns)
        assert len(a) == len(b)
        if len(a):
            assert a.astype(str).equals(b.astype(str))
    assert loaded.meta == profile.meta


def test_nvtx_payloads_are_read_with_details(tmp_path):
    """Payloads cost ~40% of the NVTX read, so they are a detail; none of the shared exports
    sets one, so a copy of a real export gets a few, in different union members."""
    path = tmp_path / "payloads.sqlite"
    shutil.copy(fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"), path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE NVTX_EVENTS SET int64Value = rowid * 7 WHERE eventType = 59 AND rowid % 5 = 0")
        db.execute("UPDATE NVTX_EVENTS SET doubleValue = rowid / 4.0 WHERE eventType = 59 AND rowid % 5 = 1")
        expected = db.execute(
            "SELECT start, COALESCE(int64Value, doubleValue) FROM NVTX_EVENTS WHERE eventType = 59 "
            "AND COALESCE(int64Value, doubleValue) IS NOT NULL ORDER BY start").fetchall()
    with_details = read_nsys(path, details=True)
    ranges = with_details.nvtx_ranges.dropna(subset=["payload"]).sort_values("start_ns", kind="stable")
    assert list(zip(ranges["start_ns"], ranges["payload"])) == [(s, float(v)) for s, v in expected]
    assert with_details.meta.extra["details"] is True
    lean = read_nsys(path)
    assert lean.nvtx_ranges["payload"].isna().all() and lean.meta.extra["details"] is False
