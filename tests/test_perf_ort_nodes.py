"""`gpuprof perf --trace --node-csv` against `gpuprof triton serve --ort-profile`: a real
Triton server running real ONNX Runtime with its profiler on; each request's node times are
recomputed here in plain Python from the raw profile JSON, anchors and run lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CLS_MODEL, KERNEL_TIME, ort_profiled_runs

pytestmark = [pytest.mark.triton, pytest.mark.slow]

STAGES = ["to_server_ns", "server_receive_ns", "queue_ns", "compute_input_ns"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The classifier served with ONNX Runtime profiling on, tracing off until perf asks."""
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    root = tmp_path_factory.mktemp("served")
    trace = TraceConfig(root / "trace.json", levels=("OFF",))
    with serve_onnx(CLS_MODEL, trace=trace, profile_dir=root / "prof") as srv:
        yield srv, root / "prof"


def _perf(srv, out, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u", srv.http_url,
           "--shape", "x:1,3,48,192", "-p", "300", "-r", "3", "--warmup", "100", "--trace",
           "--trace-rate", "1", "--node-csv", str(out / "nodes.csv"),
           "--trace-csv", str(out / "requests.csv"), "-o", str(out / "report.json"),
           "--no-live", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def run(server, tmp_path_factory):
    srv, prof = server
    out = tmp_path_factory.mktemp("perf-ort-nodes")
    _perf(srv, out, "--concurrency-range", "1:2:1")
    return {"out": out, "prof": prof, "nodes": pd.read_csv(out / "nodes.csv"),
            "csv": pd.read_csv(out / "requests.csv"),
            "report": json.loads((out / "report.json").read_text())}


def _raw(prof) -> dict:
    """{request id: (before, after, [(node, start mono ns, dur ns)])} from the raw files."""
    out = {}
    for pid, session, _, line, events in ort_profiled_runs(prof):
        anchor = json.loads((prof / f"anchor-{pid}-{session}.json").read_text())
        zero = anchor["profiling_start_ns"] - anchor["realtime_minus_monotonic_ns"]
        nodes = [(e["name"][:-len(KERNEL_TIME)], zero + e["ts"] * 1000, e["dur"] * 1000) for e in events]
        out[line["request_id"]] = (line["before_ns"], line["after_ns"], nodes)
    return out


def _section(report: dict) -> dict:
    return next(s for s in report["sections"] if s["key"] == "ort_nodes")


def test_per_request_node_sums_match_the_raw_profile(run):
    raw = _raw(run["prof"])
    nodes = run["nodes"]
    ours = nodes.groupby("request_id")["duration_ns"].sum()
    assert len(ours) == len(run["csv"]["request_id"].unique()) > 100
    for request_id, total in ours.items():
        assert total == sum(d for _, _, d in raw[request_id][2]), request_id
    counts = nodes.groupby("request_id").size()
    assert (counts == counts.iloc[0]).all()     # one graph: every request runs every node


def test_every_node_event_sits_inside_its_requests_run_stamps(run):
    raw = _raw(run["prof"])
    for request_id, (before, after, nodes) in raw.items():
        if not request_id.startswith("gp"):
            continue      # not a load test's request
        for _, start, duration in nodes:
            assert before <= start and start + duration <= after, request_id


def test_run_stamps_sit_inside_tritons_compute_span(run):
    raw = _raw(run["prof"])
    csv = run["csv"]
    input_end = csv["start_ns"] + csv[STAGES].sum(axis=1)
    output_start = input_end + csv["compute_infer_ns"]
    outside = 0
    for request_id, lo, hi in zip(csv["request_id"], input_end, output_start):
        before, after, _ = raw[request_id]
        outside += not (lo <= before and after <= hi)
    notes = " ".join(_section(run["report"])["notes"])
    assert f"{outside} of {len(csv)} traced requests ran ONNX Runtime outside" in notes
    assert outside == 0


def test_report_percentiles_are_numpy_linear_over_the_raw_profile(run):
    raw = _raw(run["prof"])
    measured = set(run["nodes"]["request_id"])
    section = _section(run["report"])
    table = pd.DataFrame(section["rows"]).set_index("node")
    for node in table.index[:3]:
        values = np.array([d for rid in measured for n, _, d in raw[rid][2] if n == node],
                          dtype="float64")
        assert table.loc[node, "n"] == len(values)
        for q in (50, 99):
            expect = np.percentile(values, q, method="linear")  # JSON keeps ns
            assert table.loc[node, f"p{q:g}_ns"] == pytest.approx(expect, rel=1e-9)
    sums = np.array([sum(d for _, _, d in raw[rid][2]) for rid in measured], dtype="float64")
    p50 = np.percentile(sums, 50, method="linear") / 1000
    assert f"node time p50 {p50:.1f} µs" in " ".join(section["notes"])


def test_anchor_is_realtime_and_the_clock_is_verified(run):
    from gpuprof.align.ort_clock import ort_clock
    from gpuprof.ingest.ort_server_profile import read_profile_dir

    anchors = [json.loads(p.read_text()) for p in run["prof"].glob("anchor-*.json")]
    gap_now = time.time_ns() - time.monotonic_ns()
    for anchor in anchors:
        # profiling start is realtime epoch ns: after 2020, and realtime-minus-monotonic is
        # the host's (within 1 s: the clocks are not stepped during a test)
        assert anchor["profiling_start_ns"] > 1_577_836_800 * 10**9
        assert abs(anchor["realtime_minus_monotonic_ns"] - gap_now) < 10**9
        assert 0 <= anchor["offset_error_ns"] < 10**6
    profile = read_profile_dir(run["prof"], run["csv"]["request_id"][0].rsplit("-", 1)[0])
    clock = ort_clock(profile.runs)
    assert clock.offset_ns == 0 and clock.error_ns >= 0, clock.method
    assert "verified" in clock.method
    # the ingest's arithmetic, recomputed: start + ts * 1000 - (realtime - monotonic)
    raw = _raw(run["prof"])
    first = profile.nodes.iloc[0]
    assert first["start_ns"] == raw[first["request_id"]][2][0][1]
    notes = " ".join(_section(run["report"])["notes"])
    assert re.search(r"clock: onnxruntime offset 0\.0 µs, error bound [0-9.]+ µs", notes)


@pytest.mark.bpf
def test_nodes_sit_under_their_request_in_the_perfetto_trace(server, tmp_path):
    """With --net the trace gains a 4th process; each node slice is on its request's
    connection and inside that request's compute-infer slice on the server track."""
    srv, _ = server
    _perf(srv, tmp_path, "--concurrency-range", "2", "--net", "--chrome-trace",
          str(tmp_path / "path.json"))
    events = json.loads((tmp_path / "path.json").read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert names[4] == "server: ONNX Runtime nodes"
    infer = {(e["tid"], e["ts"]): e for e in events
             if e.get("ph") == "X" and e["pid"] == 3 and e["name"] == "compute infer"}
    spans = defaultdict(list)
    for (tid, ts), e in infer.items():
        spans[tid].append((ts, ts + e["dur"]))
    nodes = [e for e in events if e.get("ph") == "X" and e["pid"] == 4]
    drawn = {e["args"]["request_id"] for e in events
             if e.get("ph") == "X" and e["name"].startswith("request ")}
    rows = pd.read_csv(tmp_path / "nodes.csv")
    assert len(nodes) == rows["request_id"].isin(drawn).sum() > 0
    for node in nodes:
        # µs floats: allow 1 ns of rounding
        assert any(lo - 1e-3 <= node["ts"] and node["ts"] + node["dur"] <= hi + 1e-3
                   for lo, hi in spans[node["tid"]]), node
        assert node["cat"] == "request"
