"""`gpuprof perf --net --trace` end to end: real bpftrace, a real Triton server on loopback, the
per-request path recomputed here in plain Python from the raw capture file and the CSV."""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.triton, pytest.mark.bpf, pytest.mark.slow]

SEGMENTS = ["net_client_send_ns", "net_wire_in_ns", "net_server_read_ns", "server_receive_ns",
            "queue_ns", "compute_input_ns", "compute_infer_ns", "server_output_ns",
            "net_server_send_ns", "net_wire_out_ns", "net_client_recv_ns"]
LEVELS = (1, 4)


@pytest.fixture(scope="module")
def run(cls_triton_server, tmp_path_factory):
    out = tmp_path_factory.mktemp("perf-net")
    srv = cls_triton_server
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u", srv.http_url,
           "--shape", "x:1,3,48,192", "--concurrency-range", "1:4:3", "-p", "400", "-r", "3",
           "--warmup", "200", "--trace", "--trace-rate", "1",  # every request traced
           "--net", "--net-file", str(out / "net.txt"),
           "--trace-csv", str(out / "requests.csv"), "--chrome-trace", str(out / "path.json"),
           "--waterfall", str(out / "slowest.png"), "-o", str(out / "report.json"), "--no-live"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "stdout": proc.stdout, "csv": pd.read_csv(out / "requests.csv"),
            "report": json.loads((out / "report.json").read_text()), "port": srv.http_port}


def _section(report: dict, key: str) -> dict:
    return next(s for s in report["sections"] if s["key"] == key)


def test_every_request_at_concurrency_1_and_4_gets_its_network_segments(run):
    csv = run["csv"]
    assert set(csv["level"]) == set(LEVELS)
    for level in LEVELS:
        rows = csv[csv["level"] == level]
        assert len(rows) > 50
        assert rows[SEGMENTS].notna().all().all(), f"level {level}: a request lacks segments"
    assert csv[csv["level"] == 4]["client_port"].nunique() == 4


def test_ebpf_bytes_equal_what_the_client_wrote_and_read(run):
    csv = run["csv"]
    # the server reads the 110 KB request in many calls: runs, not calls, are on each line
    assert (csv["server_recv_calls"] > 1).all() and (csv["client_send_calls"] >= 1).all()
    assert (csv["client_send_bytes"] == csv["sent_bytes"]).all()
    assert (csv["server_recv_bytes"] == csv["sent_bytes"]).all()
    assert (csv["client_recv_bytes"] == csv["received_bytes"]).all()
    assert (csv["server_send_bytes"] == csv["received_bytes"]).all()
    # the request carries the 1x3x48x192 float32 tensor (110,592 bytes) plus its headers
    assert (csv["sent_bytes"] > 110_592).all()


def test_segments_add_up_to_the_client_latency(run):
    csv = run["csv"]
    assert (csv[SEGMENTS].sum(axis=1) == csv["client_latency_ns"]).all()


def _raw_runs(path) -> list[tuple]:
    """(direction, local port, remote port, first time, local addr, remote addr) per run,
    read plainly from the file: `perf --net` keeps runs in kernel maps that bpftrace prints
    as `@fin0[SOCKET, FIRST]: (DIR, PID, TID, LPORT, RPORT, FIRST, LAST, CALLS, BYTES, COMM,
    LADDR, RADDR)` (DIR 1 send, 2 recv, 9 a map's marker); a run printed twice counts once."""
    runs = {}
    for line in path.read_text().splitlines():
        if not line.startswith(("@fin0[", "@fin1[")):
            continue
        key, _, value = line.partition("]: (")
        fields = value.rstrip(")").split(", ")
        if fields[0] in ("1", "2"):
            runs.setdefault(key.split("[", 1)[1], (
                "send" if fields[0] == "1" else "recv", int(fields[3]), int(fields[4]),
                int(fields[5]), fields[-2], fields[-1]))
    return list(runs.values())


def _raw_calls(path, server_port: int) -> dict:
    """{client port: sorted [(first call time, side+direction)]} from the capture's runs."""
    calls = defaultdict(list)
    for direction, local, remote, first, _, _ in _raw_runs(path):
        if local == server_port:
            calls[remote].append((first, "server_" + direction))
        elif remote == server_port:
            calls[local].append((first, "client_" + direction))
    return {port: sorted(c) for port, c in calls.items()}


def test_network_segments_recomputed_from_the_raw_capture(run):
    calls = _raw_calls(run["out"] / "net.txt", run["port"])
    csv = run["csv"]
    for row in csv.itertuples(index=False):
        seen = calls[int(row.client_port)]
        times = [t for t, _ in seen]
        inside = seen[bisect.bisect_left(times, row.start_ns):
                      bisect.bisect_right(times, row.end_ns)]
        first = {}
        for when, group in inside:
            first.setdefault(group, when)
        # the response is the connection's next server send after this request's receive,
        # also when its call returned after the client had ended (a descheduled sender)
        at = seen.index((first["server_recv"], "server_recv"))
        first["server_send"] = next(when for when, group in seen[at:] if group == "server_send")
        start = row.start_ns
        server_start = start + row.net_client_send_ns + row.net_wire_in_ns + row.net_server_read_ns
        assert row.net_client_send_ns == first["client_send"] - start
        assert row.net_wire_in_ns == first["server_recv"] - first["client_send"]
        assert row.net_server_read_ns == server_start - first["server_recv"]
        assert row.net_wire_out_ns == first["client_recv"] - first["server_send"]
        assert row.net_client_recv_ns == row.end_ns - first["client_recv"]


def test_report_percentiles_are_numpy_linear_over_the_csv(run):
    table = pd.DataFrame(_section(run["report"], "net_path")["rows"])
    by_segment = table.set_index("segment")
    csv = run["csv"]
    checks = {"wire in": "net_wire_in_ns", "queue": "queue_ns", "client recv": "net_client_recv_ns",
              "compute infer": "compute_infer_ns"}
    for label, column in checks.items():
        values = csv[column].to_numpy(dtype="float64")
        assert by_segment.loc[label, "n"] == len(values)
        assert by_segment.loc[label, "column"] == column
        for q in (50, 99, 99.9):
            expect = np.percentile(values, q, method="linear")
            key = f"p{q:g}_ns".replace(".", "_")  # JSON keys: p99_9_ns, raw ns
            assert by_segment.loc[label, key] == pytest.approx(expect, rel=1e-9)


def test_clock_offsets_and_error_bounds_are_measured_and_stated(run):
    clocks = pd.DataFrame(_section(run["report"], "clocks")["rows"]).set_index("source")
    for source in ("ebpf", "triton", "triton vs ebpf"):
        assert clocks.loc[source, "offset_ns"] == 0, clocks.loc[source, "method"]
        assert "verified: causality" in clocks.loc[source, "method"]
        bound = clocks.loc[source, "error_bound_ns"]
        assert 0 <= bound < 1_000_000, (source, bound)
    print(f"clock error bounds (ns): {clocks['error_bound_ns'].to_dict()}")


def test_trace_waterfall_and_timeline_are_written(run):
    trace = json.loads((run["out"] / "path.json").read_text())
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "process_name"}
    assert names == {"client (gpuprof perf)", "network (eBPF TCP calls)", "server (Triton stages)",
                     "server: model executions"}
    requests = [e for e in events if e.get("ph") == "X" and e["name"].startswith("request ")]
    assert len(requests) == len(run["csv"])
    flows = [e["name"] for e in events if e["ph"] == "s"]
    assert flows.count("request path") == 4 * len(run["csv"])
    # no dynamic batching here: one execution per request, one arrow to it from each
    assert flows.count("execution") == len(run["csv"]) == sum(
        e["ph"] == "X" and e["pid"] == 5 for e in events)
    assert (run["out"] / "slowest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SERVER_RECV" in run["stdout"] and "CLIENT_END" in run["stdout"]


def test_timeline_gaps_are_the_mean_segments_of_the_csv(run):
    """The seed-style timeline's gaps, recomputed as plain means of the CSV's segments."""
    lines = "\n".join(_section(run["report"], "net_timeline")["preformatted"])
    csv = run["csv"].dropna(subset=SEGMENTS)
    for column in SEGMENTS:
        mean_us = sum(int(v) for v in csv[column]) / len(csv) / 1000
        assert f"{mean_us:,.1f} µs" in lines, column


def test_the_capture_carries_the_loopback_addresses(run):
    """Every run names both ends' addresses, and the parsed events carry them."""
    from gpuprof.ingest.net_capture import read_net_capture

    path = run["out"] / "net.txt"
    ends = {(laddr, raddr) for *_, laddr, raddr in _raw_runs(path)}
    assert ends and ends <= {("127.0.0.1", "127.0.0.1"), ("::ffff:127.0.0.1", "::ffff:127.0.0.1")}
    events, _ = read_net_capture(path)
    mine = events[(events["local_port"] == run["port"]) | (events["remote_port"] == run["port"])]
    assert set(mine["local_addr"].astype(str)) == {"127.0.0.1"}
    assert set(mine["remote_addr"].astype(str)) == {"127.0.0.1"}
