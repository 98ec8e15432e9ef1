"""Chrome/Perfetto traces: valid Trace Event Format, every flow closed, counts that match SQL."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from gpuprof.analyze.common import first_event_ns
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import Profile
from gpuprof.render.chrome_trace import GPU_PID_BASE, to_chrome_trace, write_chrome_trace
from gpuprof.units import MIB
from tests.conftest import CLS_MODEL, fixture_path, nsys_profile, nsys_sql

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


def _sql_count(name: str, query: str) -> int:
    """A COUNT(*) query's result; 0 when the export lacks a table it names."""
    rows = nsys_sql(name, query)
    return rows[0][0] if rows else 0


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
    path = write_chrome_trace(nsys_profile(name), tmp_path / "trace.json")
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
    profile = nsys_profile("Lianhang666__gpu4__report2.sqlite")
    path = write_chrome_trace(profile, tmp_path / "t.json")
    assert json.loads(path.read_text(encoding="utf-8")) == to_chrome_trace(profile)


def test_gpu_tracks_one_per_stream_and_named():
    events = to_chrome_trace(nsys_profile("Lianhang666__gpu4__report2.sqlite"))["traceEvents"]
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


# -- engine runs: timed iterations, layers, host memory and phases ------------------------

def _engine_profile() -> Profile:
    """A TensorRT-like and ONNX-Runtime-like run in one: every engine-side case at once."""
    return Profile(tables={
        "iterations": pd.DataFrame({
            "iteration": [0, 1], "start_ns": [10_000, 20_000], "end_ns": [15_000, 26_000],
            "latency_ns": [4_000, 5_000], "h2d_ns": [1_000, -1], "compute_ns": [2_500, 3_000],
            "d2h_ns": [500, -1], "source": pd.Categorical(["cuda_events"] * 2)}),
        "layer_timings": pd.DataFrame({
            # ONNX Runtime gives starts (the earliest one starts the timeline), IProfiler only
            # durations: iterations 0 and 1 are timed, 5 and 6 are not
            "iteration": [0, 0, 0, 0, 1, 1, 5, 6],
            "layer": pd.Categorical(['conv "1"/é', "relu", "A", "B", "A", "B", "C", "D"]),
            "layer_type": pd.Categorical(["Conv", "Relu", None, None, None, None, None, None]),
            "duration_ns": [3_000, 500, 1_000, 2_000, 1_500, 500, 300, 400],
            "start_ns": [4_000, 7_000, -1, -1, -1, -1, -1, -1],
            "source": pd.Categorical(["onnxruntime"] * 2 + ["iprofiler"] * 6)}),
        "memory_events": pd.DataFrame({
            "time_ns": [5_000, 9_000, 12_000, 16_000, 11_000, 11_500],
            "device_id": [-1, -1, -1, -1, 0, 0], "pid": [99, 99, 99, 99, -1, -1],
            "source": pd.Categorical(["process_rss"] * 4 + ["trt_allocator"] * 2),
            # an unchanged RSS sample and a failed allocation are zero-byte rows, not phases
            "kind": pd.Categorical(["baseline", "phase", "sample", "sample", "alloc",
                                    "alloc_failed"]),
            "bytes": [100 * MIB, 0, 0, MIB, 2 * MIB, 0],
            "phase": pd.Categorical(["baseline", "timed", "timed", "timed", "inference",
                                     "inference"])}),
    })


def _tracks(events: list[dict]) -> dict[str, tuple[int, int]]:
    return {e["args"]["name"]: (e["pid"], e["tid"]) for e in events
            if e["ph"] == "M" and e["name"] == "thread_name"}


def _slices_by_track(events: list[dict]) -> dict[str, list[dict]]:
    names = {track: name for name, track in _tracks(events).items()}
    by_track: dict[str, list[dict]] = {}
    for e in events:
        if e["ph"] == "X":
            by_track.setdefault(names[(e["pid"], e["tid"])], []).append(e)
    return by_track


def test_engine_run_tracks_slices_and_args(tmp_path):
    path = write_chrome_trace(_engine_profile(), tmp_path / "engine.json")
    events = check_trace(json.loads(path.read_text(encoding="utf-8")))
    tracks = _slices_by_track(events)
    assert {name: len(s) for name, s in tracks.items()} == {
        "timed iterations (cuda_events)": 2, "layers (iprofiler)": 6, "layers (onnxruntime)": 2}
    assert len({e["pid"] for s in tracks.values() for e in s}) == 1  # one host "run" process
    assert all(e["pid"] < GPU_PID_BASE for s in tracks.values() for e in s)

    # the first event is a layer start (4 us): every time is relative to it
    first, second = tracks["timed iterations (cuda_events)"]
    assert (first["name"], first["ts"], first["dur"]) == ("iteration 0", 6.0, 5.0)
    assert first["args"] == {"latency_us": 4.0, "h2d_us": 1.0, "compute_us": 2.5, "d2h_us": 0.5}
    assert second["args"] == {"latency_us": 5.0, "compute_us": 3.0}  # -1: not measured

    ort = tracks["layers (onnxruntime)"]
    assert [(e["name"], e["ts"], e["dur"]) for e in ort] == [('conv "1"/é', 0.0, 3.0),
                                                             ("relu", 3.0, 0.5)]
    assert ort[0]["args"] == {"iteration": 0, "layer_type": "Conv"}

    # durations only: back to back from the iteration's start, else from the first event
    placed = [(e["name"], e["args"]["iteration"], e["ts"], e["dur"])
              for e in tracks["layers (iprofiler)"]]
    assert placed == [("A", 0, 6.0, 1.0), ("B", 0, 7.0, 2.0), ("A", 1, 16.0, 1.5),
                      ("B", 1, 17.5, 0.5), ("C", 5, 0.0, 0.3), ("D", 6, 0.3, 0.4)]
    assert {e["args"]["placed"] for e in tracks["layers (iprofiler)"]} == {
        "sequential (profiler gives durations only)"}
    assert not any("placed" in e["args"] for e in ort)


def test_engine_run_host_memory_and_phase_markers():
    events = check_trace(to_chrome_trace(_engine_profile()))
    run_pid = next(e["pid"] for e in events if e["ph"] == "X")
    counters = Counter((e["name"], e["pid"]) for e in events if e["ph"] == "C")
    assert counters == {("Host memory (process_rss)", run_pid): 4,
                        ("GPU memory (trt_allocator)", GPU_PID_BASE): 2}
    host = [e["args"]["MiB"] for e in events if e["ph"] == "C" and e["pid"] == run_pid]
    assert host == [100.0, 100.0, 100.0, 101.0]
    instants = [e for e in events if e["ph"] == "i"]
    assert [(e["name"], e["s"], e["pid"], e["ts"]) for e in instants] == [
        ("timed", "p", run_pid, 5.0)]
    processes = {e["pid"]: e["args"]["name"] for e in events
                 if e["ph"] == "M" and e["name"] == "process_name"}
    assert processes == {run_pid: "run", GPU_PID_BASE: "GPU 0"}  # no "GPU -1" for host RSS


def test_time_zero_ignores_unrecorded_starts():
    layers = pd.DataFrame({"iteration": [0], "duration_ns": [10], "start_ns": [-1]})
    assert first_event_ns(Profile(tables={"layer_timings": layers}).tables) == 0
    iterations = pd.DataFrame({"iteration": [0], "start_ns": [500], "end_ns": [900]})
    tables = Profile(tables={"layer_timings": layers, "iterations": iterations}).tables
    assert first_event_ns(tables) == 500
    events = check_trace(to_chrome_trace(Profile(tables=tables)))
    assert [(e["name"], e["ts"]) for e in events if e["ph"] == "X"] == [("iteration 0", 0.0),
                                                                        ("(layer)", 0.0)]


def test_onnxruntime_engine_run_trace_matches_its_tables(tmp_path):
    pytest.importorskip("onnxruntime")
    from gpuprof.capture.ort import OrtRunConfig
    from gpuprof.pipeline.engine_run import run_onnxruntime

    if not CLS_MODEL.exists():
        pytest.skip(f"{CLS_MODEL.name} not fetched (python tools/fetch_models.py --tests)")
    profile = run_onnxruntime(OrtRunConfig(CLS_MODEL, iterations=4, warmup=1, profile_iterations=2,
                                           shapes={"x": (1, 3, 48, 192)}))
    path = write_chrome_trace(profile, tmp_path / "trace.json")
    events = check_trace(json.loads(path.read_text(encoding="utf-8")))
    tracks = _slices_by_track(events)
    assert set(tracks) == {"timed iterations (onnxruntime)", "layers (onnxruntime)"}
    iterations = tracks["timed iterations (onnxruntime)"]
    assert [e["name"] for e in iterations] == [f"iteration {i}" for i in
                                               profile.iterations["iteration"]]
    origin = first_event_ns(profile.tables)
    assert [e["ts"] for e in iterations] == [
        round((s - origin) / 1000, 3) for s in profile.iterations["start_ns"]]
    layers = tracks["layers (onnxruntime)"]
    assert len(layers) == len(profile.layer_timings)
    assert [e["name"] for e in layers] == profile.layer_timings["layer"].astype(str).tolist()
    memory = profile.memory_events
    host = [e for e in events if e["ph"] == "C" and e["name"] == "Host memory (process_rss)"]
    assert len(host) == len(memory) and all(e["pid"] < GPU_PID_BASE for e in host)
    markers = [e["name"] for e in events if e["ph"] == "i"]
    assert markers == memory.loc[memory["kind"] == "phase", "phase"].astype(str).tolist()
    assert min(e["ts"] for e in events if "ts" in e) == 0

    # independently of gpuprof: time zero is the earliest recorded time of the run's rows,
    # layers sit at their own start for their own duration, and host memory is the running
    # sum of the RSS changes in time order (ties in table order)
    zero = min([int(t) for t in profile.iterations["start_ns"]]
               + [int(t) for t in profile.layer_timings["start_ns"] if t >= 0]
               + [int(t) for t in memory["time_ns"]])
    assert zero == origin
    timings = profile.layer_timings
    assert [e["ts"] for e in layers] == pytest.approx(
        [(int(t) - zero) / 1000 for t in timings["start_ns"]], abs=1e-3)
    assert [e["dur"] for e in layers] == pytest.approx(
        [max(int(d), 0) / 1000 for d in timings["duration_ns"]], abs=1e-3)
    changes = sorted((int(t), i, int(b)) for i, (t, b) in
                     enumerate(zip(memory["time_ns"], memory["bytes"], strict=True)))
    used, expected = 0, []
    for time_ns, _, change in changes:
        used += change
        expected.append(((time_ns - zero) / 1000, used / MIB))
    assert [e["ts"] for e in host] == pytest.approx([t for t, _ in expected], abs=1e-3)
    assert [e["args"]["MiB"] for e in host] == pytest.approx([m for _, m in expected], abs=1e-3)


def test_kernel_launch_args_match_sql():
    """Grid, block, registers and shared memory (static + dynamic) of every kernel, read with
    details, against the export's own kernel columns."""
    name = "Lianhang666__gpu4__report2.sqlite"
    profile = read_nsys(fixture_path("nsys", name), details=True)
    events = to_chrome_trace(profile)["traceEvents"]
    got = Counter((e["args"]["correlation_id"], e["args"]["grid"], e["args"]["block"],
                   e["args"]["registers_per_thread"], e["args"]["shared_memory_bytes"])
                  for e in events if e["ph"] == "X" and "grid" in e.get("args", {}))
    expected = Counter(
        (corr, f"({gx}, {gy}, {gz})", f"({bx}, {by}, {bz})", regs, smem)
        for corr, gx, gy, gz, bx, by, bz, regs, smem in nsys_sql(name, """
            SELECT correlationId, gridX, gridY, gridZ, blockX, blockY, blockZ,
                   registersPerThread, staticSharedMemory + dynamicSharedMemory
            FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE "end" >= start"""))
    assert sum(expected.values()) > 0 and got == expected
    # read without details, kernels carry no launch configuration at all
    plain = to_chrome_trace(nsys_profile(name))["traceEvents"]
    assert not any("grid" in e.get("args", {}) for e in plain if e["ph"] == "X")


def test_api_return_values_only_where_read():
    """With details, each CUDA API call's return value is the export's; without, the trace
    says nothing rather than a success code it never read."""
    name = "Lianhang666__gpu4__report2.sqlite"
    detailed = to_chrome_trace(read_nsys(fixture_path("nsys", name), details=True))
    got = Counter((e["args"]["correlation_id"], e["args"]["return_value"])
                  for e in detailed["traceEvents"] if e.get("cat") == "cuda_api")
    expected = Counter(nsys_sql(name, """SELECT correlationId, returnValue
                                         FROM CUPTI_ACTIVITY_KIND_RUNTIME WHERE "end" >= start"""))
    assert sum(expected.values()) > 0 and got == expected
    plain = to_chrome_trace(nsys_profile(name))["traceEvents"]
    api = [e for e in plain if e.get("cat") == "cuda_api"]
    assert api and not any("return_value" in e["args"] for e in api)


def test_tensorrt_run_folder_trace(tmp_path):
    """A runner folder written and loaded by the real TensorRT bookkeeping (no GPU needed)."""
    from gpuprof.capture.trt.allocator import AllocationLog
    from gpuprof.capture.trt.profiler import LayerTimeLog
    from gpuprof.capture.trt.results import load_results, write_results

    log = AllocationLog(clock=iter(range(100, 10_000, 100)).__next__)
    with log.in_phase("deserialize"):
        log.record_alloc(0xA, 8 << 20, 256, 0, 0, "allocate_async")
        log.record_event("alloc_failed", 1 << 40, 256, 0, 0, "allocate_async")  # zero bytes
    layers = LayerTimeLog()
    for i in range(3):  # iteration 2 was profiled but not timed
        layers.next_iteration(i)
        layers.report("/conv1/Conv + /relu/Relu", 0.2)
        layers.report("/fc/Gemm", 0.05)
    iterations = [{"iteration": i, "start_ns": 1_000_000 * (i + 1), "end_ns": 1_000_000 * (i + 1)
                   + 900_000, "latency_ns": 800_000, "h2d_ns": 100_000, "compute_ns": 600_000,
                   "d2h_ns": 100_000, "host_latency_ns": 900_000, "source": "cuda_events"}
                  for i in range(2)]
    write_results(tmp_path, {"memory_events": log.rows(pid=7), "iterations": iterations,
                             "layer_timings": layers.rows()}, {})
    events = check_trace(to_chrome_trace(load_results(tmp_path)))
    tracks = _slices_by_track(events)
    assert {name: len(s) for name, s in tracks.items()} == {
        "timed iterations (cuda_events)": 2, "layers (iprofiler)": 6}
    assert [(e["args"]["iteration"], e["ts"]) for e in tracks["layers (iprofiler)"]] == [
        (0, 999.9), (0, 1199.9), (1, 1999.9), (1, 2199.9), (2, 0.0), (2, 200.0)]
    assert all(e["args"]["placed"] for e in tracks["layers (iprofiler)"])
    assert {e["name"] for e in events if e["ph"] == "C"} == {"GPU memory (trt_allocator)"}
    assert not [e for e in events if e["ph"] == "i"]  # a failed allocation is no phase marker
