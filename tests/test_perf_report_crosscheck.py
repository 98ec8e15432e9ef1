"""``gpuprof perf`` report numbers recomputed from the raw inputs with plain Python.

A real traced sweep against the bundled tritonserver (HTTP and gRPC); then, independently of
gpuprof's analysis:

- the levels table (infer/s, percentiles, client / net+srv / queue / compute) and the
  perf_analyzer CSV columns come from the client's raw timestamps of the counted windows
  (``statistics``) and the server statistics deltas of those windows (summed by hand);
- the per-request trace segments come from the Triton trace files read with ``json`` and
  joined by request id with the client's timestamps.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

import pytest

from gpuprof.analyze import perf, perf_trace
from gpuprof.capture.loadgen.options import LoadSpec
from gpuprof.render import perf_report

SHAPE = {"x": (1, 3, 48, 192)}
STAGES = ("queue", "compute_input", "compute_infer", "compute_output")
# percentile -> index among statistics.quantiles(n=1000) cut points; "inclusive" is the same
# linear interpolation between closest ranks as numpy's "linear"
PERCENTILES = {"p50": 499, "p90": 899, "p95": 949, "p99": 989, "p99.9": 998}
# where the server starts receiving and starts sending the response, per frontend
RECEIVED = {"http": "HTTP_RECV_START", "grpc": "GRPC_WAITREAD_END"}
SENDING = {"http": "HTTP_SEND_START", "grpc": "GRPC_SEND_START"}


@pytest.fixture(scope="module", params=["http", "grpc"])
def sweep(request, cls_triton_server):
    """Two concurrency levels, every request traced on the server."""
    from gpuprof.capture.loadgen import run_sweep

    server, protocol = cls_triton_server, request.param
    url = server.http_url if protocol == "http" else server.grpc_url
    spec = LoadSpec(model=server.model_name, url=url, protocol=protocol, shapes=SHAPE,
                    levels=[1, 2], measurement_interval_ms=300, max_trials=3, warmup_ms=100,
                    max_duration_s=60, max_requests=5000, trace=True)
    result = run_sweep(spec)
    assert not result.partial and result.trace_files and result.trace_error is None
    return result


def _ok_requests(window) -> list[tuple]:
    """(request id, start, sent, received, end) of the answered requests of one window."""
    rows = window.records
    ok = rows["error"].isna()
    return list(zip(rows.loc[ok, "request_id"], *(rows.loc[ok, c].astype(int) for c in
                                                    ("start_ns", "sent_ns", "recv_ns", "end_ns")),
                    strict=True))


def _expected_level(level, batch_size: int) -> dict[str, float]:
    """A level's numbers the way perf_analyzer defines them, from its last windows."""
    counted = level.windows[-perf.STABILITY_WINDOWS:]
    requests = [r for w in counted for r in _ok_requests(w)]
    seconds = sum(w.end_ns - w.start_ns for w in counted) / 1e9
    latency = [end - start for _, start, _, _, end in requests]
    send = statistics.fmean(sent - start for _, start, sent, _, _ in requests)
    receive = statistics.fmean(end - recv for _, _, _, recv, end in requests)
    server = {}
    for stage in STAGES:
        count = sum(w.delta[stage][0] for w in counted)
        server[stage] = sum(w.delta[stage][1] for w in counted) / count
    cuts = statistics.quantiles(latency, n=1000, method="inclusive")
    out = {"infer/s": len(requests) * batch_size / seconds, "samples": len(requests),
           "send": send, "receive": receive, "client": send + receive,
           "net+srv": max(0.0, statistics.fmean(latency) - send - receive - sum(server.values())),
           "compute": server["compute_input"] + server["compute_infer"] + server["compute_output"]}
    out |= {f"server_{stage}": ns for stage, ns in server.items()}
    return out | {label: cuts[index] for label, index in PERCENTILES.items()}


@pytest.mark.triton
def test_levels_table_matches_raw_records_and_statistics(sweep):
    table = sweep.level_table()
    shown = perf_report.perf_report(table, {}, [], "concurrency").section("levels").table
    assert shown["Concurrency"].tolist() == [1, 2]
    for row, level in zip(shown.to_dict("records"), sweep.levels, strict=True):
        want = _expected_level(level, sweep.spec.batch_size)
        assert row["samples"] == want["samples"] > 0
        assert row["infer/s"] == pytest.approx(want["infer/s"], rel=1e-9)
        for label in PERCENTILES:
            assert row[f"{label} ms"] == pytest.approx(want[label] / 1e6, rel=1e-9), label
        for column, key in (("client ms", "client"), ("net+srv ms", "net+srv"),
                            ("queue ms", "server_queue"), ("compute ms", "compute")):
            assert row[column] == pytest.approx(want[key] / 1e6, rel=1e-9, abs=1e-12), column


@pytest.mark.triton
def test_perf_analyzer_csv_matches_raw_records_and_statistics(sweep):
    csv = perf_report.perf_analyzer_frame(sweep.level_table(), "concurrency")
    columns = {"Client Send": "send", "Client Recv": "receive",
               "Network+Server Send/Recv": "net+srv", "Server Queue": "server_queue",
               "Server Compute Input": "server_compute_input",
               "Server Compute Infer": "server_compute_infer",
               "Server Compute Output": "server_compute_output", "p99 latency": "p99"}
    for row, level in zip(csv.to_dict("records"), sweep.levels, strict=True):
        want = _expected_level(level, sweep.spec.batch_size)
        for column, key in columns.items():
            assert row[column] == int(want[key] // 1000), column  # whole µs, truncated


def _raw_trace(files, prefix: str) -> dict[str, dict[str, list[int]]]:
    """{request id: {timestamp name: [ns, ...]}} of this run, straight from Triton's JSON."""
    ids, stamps = {}, defaultdict(lambda: defaultdict(list))
    for path in files:
        for obj in json.loads(path.read_text()):
            if str(obj.get("request_id", "")).startswith(prefix):
                ids[obj["id"]] = obj["request_id"]
            for stamp in obj.get("timestamps", []):
                stamps[obj["id"]][stamp["name"]].append(int(stamp["ns"]))
    return {request_id: stamps[trace_id] for trace_id, request_id in ids.items()}


def _segments(client: tuple, server: dict[str, list[int]], protocol: str) -> dict[str, int]:
    """The documented split of one request's client latency at the server's timestamps."""
    _, start, _, _, end = client
    one = {name: times[0] for name, times in server.items()}
    assert all(len(times) == 1 for times in server.values()), server  # unambiguous stamps
    return {"client latency": end - start,
            "to server": one[RECEIVED[protocol]] - start,
            "server receive": one["QUEUE_START"] - one[RECEIVED[protocol]],
            "queue": one["COMPUTE_START"] - one["QUEUE_START"],
            "compute input": one["COMPUTE_INPUT_END"] - one["COMPUTE_START"],
            "compute infer": one["COMPUTE_OUTPUT_START"] - one["COMPUTE_INPUT_END"],
            "server output": one[SENDING[protocol]] - one["COMPUTE_OUTPUT_START"],
            "from server": end - one[SENDING[protocol]]}


@pytest.mark.triton
def test_trace_segments_match_raw_trace_files(sweep):
    from gpuprof.capture.loadgen.tracing import read_trace_requests

    # the report's side, built the way `gpuprof perf --trace` builds it
    spans = perf_trace.server_spans(read_trace_requests(sweep.trace_files), sweep.prefix)
    joined = perf_trace.join_requests(sweep.requests_table(), spans)
    shown = perf_report.perf_report(sweep.level_table(), {}, [], "concurrency",
                                    joined).section("trace").table.set_index("level")
    raw = _raw_trace(sweep.trace_files, sweep.prefix)
    protocol = sweep.spec.protocol
    for level in sweep.levels:
        clients = [r for w in level.windows for r in _ok_requests(w)]  # all windows of the level
        assert all(c[0] in raw for c in clients)  # every answered request was traced
        segments = [_segments(c, raw[c[0]], protocol) for c in clients]
        row = shown.loc[level.level]
        assert row["requests"] == len(segments) > 0
        for name in segments[0]:
            mean_ms = statistics.fmean(s[name] for s in segments) / 1e6
            assert row[name] == pytest.approx(mean_ms, rel=1e-9, abs=1e-12), name
