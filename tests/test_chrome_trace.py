"""Chrome/Perfetto traces: valid Trace Event Format, every flow closed, counts that match SQL."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from functools import cache

import pandas as pd
import pytest

from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import Profile
from gpuprof.render.chrome_trace import GPU_PID_BASE, to_chrome_trace, write_chrome_trace
from tests.conftest import fixture_path

EXPORTS = [
    "Lianhang666__gpu4__report2.sqlite",
    "caoye310__Lower-Triangular-Solves__la.sqlite",
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
    "kamalchowdhury326__HW5_helper__report1.sqlite",
    "lockfuehrer__beast_ressoruces__report1.sqlite",
]
REQUIRED = {
    "X": {"name", "ph", "ts", "dur", "pid", "tid"},
    "i": {"name", "ph", "ts", "pid", "tid", "s"},
    "b": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "e": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "s": {"name", "cat", "ph", "ts", "pid", "tid", "id"},
    "f": {"name", "cat", "ph", "ts", "pid", "tid", "id", "bp"},
    "C": {"name", "ph", "ts", "pid", "args"},
    "M": {"name", "ph", "pid", "args"},
}
GPU_TABLES = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
              "CUPTI_ACTIVITY_KIND_MEMSET")
GPU_PID = "((g.globalPid >> 24) & 16777215)"
RUNTIME_PID = "((r.globalTid >> 24) & 16777215)"


@cache
def _profile(name: str) -> Profile:
    return read_nsys(fixture_path("nsys", name))


def _sql_count(name: str, query: str) -> int:
    path = fixture_path("nsys", name)
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        used = {t for t in (*GPU_TABLES, "CUPTI_ACTIVITY_KIND_RUNTIME") if t in query}
        return db.execute(query).fetchone()[0] if used <= tables else 0


def check_trace(trace: dict) -> list[dict]:
    """Validate a trace dict the way a viewer needs it; return its events."""
    assert set(trace) == {"traceEvents", "displayTimeUnit"}
    events = trace["traceEvents"]
    for event in events:
        missing = REQUIRED[event["ph"]] - set(event)
        assert not missing, (event, missing)
        if "ts" in event:
            assert event["ts"] >= 0
        if event["ph"] == "X":
            assert event["dur"] >= 0
    starts = Counter((e["cat"], e["id"]) for e in events if e["ph"] == "s")
    finishes = Counter((e["cat"], e["id"]) for e in events if e["ph"] == "f")
    assert starts == finishes and max(starts.values(), default=1) == 1
    begins = Counter((e["cat"], e["id"]) for e in events if e["ph"] == "b")
    assert begins == Counter((e["cat"], e["id"]) for e in events if e["ph"] == "e")
    return events


@pytest.mark.parametrize("name", EXPORTS)
def test_trace_of_real_export_is_valid_and_complete(name, tmp_path):
    path = write_chrome_trace(_profile(name), tmp_path / "trace.json")
    with open(path, encoding="utf-8") as handle:
        events = check_trace(json.load(handle))
    gpu_slices = [e for e in events if e["ph"] == "X" and e["pid"] >= GPU_PID_BASE]
    assert len(gpu_slices) == sum(
        _sql_count(name, f'SELECT COUNT(*) FROM {table} WHERE "end" >= start')
        for table in GPU_TABLES)
    launched = sum(_sql_count(name, f"""
        SELECT COUNT(*) FROM {table} g WHERE g."end" >= g.start AND EXISTS (
            SELECT 1 FROM CUPTI_ACTIVITY_KIND_RUNTIME r WHERE r.correlationId = g.correlationId
            AND {RUNTIME_PID} = {GPU_PID})""") for table in GPU_TABLES)
    assert sum(1 for e in events if e["ph"] == "f") == launched
    assert min(e["ts"] for e in events if "ts" in e) == 0


def test_trace_streams_to_the_same_document_as_the_dict(tmp_path):
    profile = _profile("Lianhang666__gpu4__report2.sqlite")
    path = write_chrome_trace(profile, tmp_path / "t.json")
    assert json.loads(path.read_text(encoding="utf-8")) == to_chrome_trace(profile)


def test_gpu_tracks_one_per_stream_and_named():
    events = to_chrome_trace(_profile("Lianhang666__gpu4__report2.sqlite"))["traceEvents"]
    names = [e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] >= GPU_PID_BASE]
    assert sorted(names) == ["Stream 13", "Stream 14", "Stream 15", "Stream 16"]


def test_hand_built_profile_has_every_event_kind():
    profile = Profile(tables={
        "api_calls": pd.DataFrame({"start_ns": [1000], "end_ns": [1500], "pid": [7], "tid": [8],
                                   "correlation_id": [42],
                                   "name": pd.Categorical(["cudaLaunchKernel"])}),
        "kernels": pd.DataFrame({"start_ns": [2000], "end_ns": [2500], "pid": [7],
                                 "device_id": [0], "stream_id": [3], "correlation_id": [42],
                                 "name": pd.Categorical(["gemm<$x>"])}),
        "kernel_launches": pd.DataFrame({"kernel_row": [0], "grid_x": [4], "grid_y": [1],
                                         "grid_z": [1], "block_x": [128], "block_y": [1],
                                         "block_z": [1]}),
        "nvtx_ranges": pd.DataFrame({
            "start_ns": [900, 950, 1200], "end_ns": [3000, 950, 2600], "pid": [7, 7, 7],
            "tid": [8, 8, 9], "range_kind": pd.Categorical(["push_pop", "mark", "start_end"]),
            "domain": pd.Categorical(["TensorRT", None, None]),
            "text": pd.Categorical(["layer \"1\"", "mark", "async"])}),
        "memory_events": pd.DataFrame({"time_ns": [900, 2800], "device_id": [0, 0],
                                       "source": pd.Categorical(["nsys", "nsys"]),
                                       "bytes": [2 << 20, -(1 << 20)]}),
    })
    events = check_trace(to_chrome_trace(profile))
    by_phase = Counter(e["ph"] for e in events)
    assert {ph: by_phase[ph] for ph in "XisfbeC"} == {
        "X": 3, "i": 1, "s": 1, "f": 1, "b": 1, "e": 1, "C": 2}
    kernel = next(e for e in events if e["ph"] == "X" and e["pid"] >= GPU_PID_BASE)
    assert kernel["ts"] == 1.1 and kernel["dur"] == 0.5  # µs from the first event (900 ns)
    assert kernel["args"]["correlation_id"] == 42 and kernel["args"]["grid"].startswith("(4,")
    flow_start = next(e for e in events if e["ph"] == "s")
    assert (flow_start["pid"], flow_start["tid"], flow_start["ts"]) == (7, 8, 0.1)
    assert [e["args"]["MiB"] for e in events if e["ph"] == "C"] == [2.0, 1.0]


def test_nanosecond_precision_is_kept():
    profile = Profile(tables={"kernels": pd.DataFrame({
        "start_ns": [10_000_000_000_000, 10_000_000_000_001],
        "end_ns": [10_000_000_000_003, 10_000_000_001_004], "device_id": [0, 0]})})
    slices = [e for e in to_chrome_trace(profile)["traceEvents"] if e["ph"] == "X"]
    assert [(e["ts"], e["dur"]) for e in slices] == [(0.0, 0.003), (0.001, 1.003)]


def test_empty_profile_gives_an_empty_but_valid_trace(tmp_path):
    path = write_chrome_trace(Profile(), tmp_path / "empty.json")
    assert json.loads(path.read_text()) == {"displayTimeUnit": "ns", "traceEvents": []}
