"""A load test, optionally with the server trace and an eBPF capture, joined per request.

``run_perf`` runs the sweep (capture/loadgen) inside an eBPF capture (capture/net) when asked,
reads the capture (ingest/net_capture), checks the three clocks against each other from the
order of events (align/request_clocks) and joins each request's client timestamps, TCP calls
and server stages (analyze/perf_trace, analyze/net_path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..model import ClockDomain

CLIENT_WIRE = ["client_port", "sent_bytes", "received_bytes"]  # what the client itself counted


@dataclass
class NetResult:
    capture_path: Path
    facts: object                     # ingest.net_capture.NetCaptureFacts (program, lost events)
    events: pd.DataFrame              # network_events, as captured
    path: pd.DataFrame                # one row per matched request: net_* segments, bytes, calls
    match: object                     # analyze.net_path.NetMatch
    clocks: dict[str, ClockDomain] = field(default_factory=dict)


@dataclass
class PerfRun:
    sweep: object                     # capture.loadgen.SweepResult
    joined: pd.DataFrame | None       # client + server trace, one row per traced request
    net: NetResult | None
    nodes: object | None = None       # pipeline.ort_nodes.NodesResult: ORT nodes per request

    def request_table(self) -> pd.DataFrame | None:
        """The per-request CSV: the trace join (or the client records) with ``net_*`` columns."""
        if self.net is None:
            return self.joined
        client = self.sweep.requests_table()
        base = client if self.joined is None else self.joined.merge(
            client[["request_id", *CLIENT_WIRE]], on="request_id", how="left")
        path = self.net.path
        extra = [c for c in path.columns if c == "request_id" or c not in base.columns]
        return base.merge(path[extra], on="request_id", how="left")


def run_perf(spec, progress=None, net_file: Path | None = None,
             net_program: str = "auto") -> PerfRun:
    """Run the load test; with ``net_file`` capture TCP calls to the server port meanwhile."""
    from ..capture.loadgen import run_sweep

    if net_file is None:
        sweep = run_sweep(spec, progress=progress)
        return _with_nodes(PerfRun(sweep, _trace_join(sweep), None))
    from ..capture.loadgen.transport import split_url
    from ..capture.net import NetCapture

    port = split_url(spec.url)[1]
    capture = NetCapture(ports=[port], pids=None, out=net_file, program=net_program)
    capture.start()
    try:
        sweep = run_sweep(spec, progress=progress)
    finally:
        captured = capture.stop()
    joined = _trace_join(sweep)
    return _with_nodes(PerfRun(sweep, joined, analyze_net(sweep, captured, port)))


def _with_nodes(run: PerfRun) -> PerfRun:
    """With --trace, the ONNX Runtime nodes per request when the model profiles them."""
    sweep = run.sweep
    if not sweep.spec.trace:
        return run
    from ..analyze import perf_trace
    from .ort_nodes import collect_nodes

    spans = None
    if sweep.trace_requests is not None:
        spans = perf_trace.server_spans(sweep.trace_requests, sweep.prefix)
    run.nodes = collect_nodes(sweep, spans)
    return run


def _trace_join(sweep) -> pd.DataFrame | None:
    if sweep.trace_requests is None:
        return None
    from ..analyze import perf_trace

    spans = perf_trace.server_spans(sweep.trace_requests, sweep.prefix)
    return perf_trace.join_requests(sweep.requests_table(), spans)


def analyze_net(sweep, captured, server_port: int) -> NetResult:
    """Read a finished capture (``NetCaptureResult``) and tie its calls to the sweep's
    requests, clocks checked. Events bpftrace reported lost count with the file's own."""
    from ..analyze import perf_trace
    from ..ingest.net_capture import read_net_capture

    capture_path = captured.path
    events, facts = read_net_capture(capture_path)
    facts.lost_events = max(facts.lost_events, captured.lost_events)
    requests = sweep.requests_table()
    requests = requests[requests["ok"]] if not requests.empty else requests
    spans = None
    if sweep.trace_requests is not None:
        spans = perf_trace.server_spans(sweep.trace_requests, sweep.prefix)
    path, match, clocks = analyze_join(requests, events, server_port, os.getpid(), spans)
    return NetResult(Path(capture_path), facts, events, path, match, clocks)


def analyze_join(requests: pd.DataFrame, events: pd.DataFrame, server_port: int,
                 client_pid: int, spans: pd.DataFrame | None):
    """(path, match, clocks): each request's TCP calls, its network path and the clocks."""
    from ..analyze import net_path

    match = net_path.match_calls(requests, events, server_port, client_pid)
    path = net_path.network_path(requests, match.calls, spans)
    return path, match, _clocks(requests, match.calls, spans)


def _clocks(requests: pd.DataFrame, calls: pd.DataFrame,
            spans: pd.DataFrame | None) -> dict[str, ClockDomain]:
    from ..align import request_clocks

    frame = requests.merge(calls, on="request_id", how="inner")
    ebpf = request_clocks.ebpf_to_client(frame)
    clocks = {"client": request_clocks.client_clock(), "ebpf": ebpf}
    if spans is not None:
        frame = frame.merge(spans, on="request_id", how="inner")
        versus = request_clocks.triton_to_ebpf(frame)
        clocks["triton"] = request_clocks.triton_to_client(ebpf, versus)
        clocks["triton vs ebpf"] = versus
    return clocks
