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
# what the trace's GPU tracks need of each kernel
KERNEL_COLUMNS = ["start_ns", "end_ns", "device_id", "stream_id", "name", "demangled_name"]


@dataclass
class NetResult:
    capture_path: Path
    facts: object                     # ingest.net_capture.NetCaptureFacts (program, lost events)
    path: pd.DataFrame                # one row per matched request: net_* segments, bytes, calls
    match: object                     # analyze.net_path.NetMatch
    clocks: dict[str, ClockDomain] = field(default_factory=dict)


@dataclass
class KernelResult:
    """GPU kernels of an nsys export of the server, inside each request's compute window."""

    found: object                     # analyze.request_kernels.RequestKernels
    clock: ClockDomain                # how the export was put on the client's clock
    export_name: str
    placed: pd.DataFrame | None = None    # each kernel given to an execution (placed_kernels)
    members: pd.DataFrame | None = None   # request_id -> execution (execution_members)


@dataclass
class PerfRun:
    sweep: object                     # capture.loadgen.SweepResult
    requests: pd.DataFrame            # every measured request, client side (requests_table)
    spans: pd.DataFrame | None        # server boundaries per traced request (server_spans)
    joined: pd.DataFrame | None       # client + server trace, one row per traced request
    net: NetResult | None
    kernels: KernelResult | None = None
    nodes: object | None = None       # pipeline.ort_nodes.NodesResult: ORT nodes per request

    def request_table(self) -> pd.DataFrame | None:
        """The per-request CSV: the trace join (or the client records) with ``net_*`` columns."""
        if self.net is None:
            return self._with_kernels(self.joined)
        client = self.requests
        base = client if self.joined is None else self.joined.merge(
            client[["request_id", *CLIENT_WIRE]], on="request_id", how="left")
        path = self.net.path
        extra = [c for c in path.columns if c == "request_id" or c not in base.columns]
        return self._with_kernels(base.merge(path[extra], on="request_id", how="left"))

    def path(self) -> tuple[pd.DataFrame, list[str]]:
        """Each request's path and its segments in order, for the trace and the waterfall:
        with eBPF the network around the server stages (``net_path.whole_path``), else the
        trace join's segments (client to server, stages, server to client)."""
        from ..analyze.net_path import whole_path
        from ..analyze.perf_trace import SEGMENTS

        if self.net is not None:
            return whole_path(self.net.path, self.joined)
        if self.joined is None:
            return pd.DataFrame(), []
        wire = self.requests[["request_id", *CLIENT_WIRE]].rename(
            columns={"sent_bytes": "client_send_bytes", "received_bytes": "client_recv_bytes"})
        frame = self.joined.merge(wire, on="request_id").dropna(subset=SEGMENTS)
        return frame.reset_index(drop=True), list(SEGMENTS)

    def _with_kernels(self, base: pd.DataFrame | None) -> pd.DataFrame | None:
        if base is None or self.kernels is None:
            return base
        # execution_requests is the trace join's already
        per = self.kernels.found.per_request.drop(columns="execution_requests",
                                                   errors="ignore").rename(columns={
            "kernels": "gpu_kernels", "layers": "gpu_layers", "top_layer": "gpu_top_layer",
            "top_layer_ns": "gpu_top_layer_ns"})
        return base.merge(per, on="request_id", how="left")


def run_perf(spec, progress=None, net_file: Path | None = None, net_program: str = "auto",
             server_nsys: Path | None = None) -> PerfRun:
    """Run the load test; with ``net_file`` capture TCP calls to the server port meanwhile;
    with ``server_nsys`` (an export of the server, made during the run) place its kernels in
    each traced request's compute window. The client records and the server spans are built
    once here and handed to every join."""
    from ..analyze import perf_trace

    sweep, captured, port = _capture(spec, progress, net_file, net_program)
    requests = sweep.requests_table()
    spans = (None if sweep.trace_requests is None
             else perf_trace.server_spans(sweep.trace_requests, sweep.prefix))
    joined = (None if spans is None
              else perf_trace.join_requests(requests, spans, batch_rows(sweep.shapes)))
    net = None if captured is None else analyze_net(requests, captured, port, spans)
    run = PerfRun(sweep, requests, spans, joined, net)
    if spec.trace:
        from .ort_nodes import collect_nodes

        run.nodes = collect_nodes(sweep, spans)
    if server_nsys is not None and spans is not None:
        run.kernels = server_kernels(spans, Path(server_nsys))
    return run


def batch_rows(shapes: dict[str, tuple[int, ...]]) -> int:
    """A request's rows: the first dim of its first input as sent (every request of a load test
    has the same shapes; a scalar input is one row)."""
    first = next(iter(shapes.values()), ())
    return int(first[0]) if first else 1


def _capture(spec, progress, net_file: Path | None, net_program: str):
    """(sweep result, finished eBPF capture or None, server port)."""
    from ..capture.loadgen.transport import split_url
    from .sweep import run_sweep

    port = split_url(spec.url)[1]
    if net_file is None:
        return run_sweep(spec, progress=progress), None, port
    from ..capture.net import NetCapture

    # runs of calls, not every call: printing each call cost the load test 45% of its p50
    capture = NetCapture(ports=[port], pids=None, out=net_file, program=net_program, runs=True)
    capture.start()
    try:
        sweep = run_sweep(spec, progress=progress)
    finally:
        captured = capture.stop()
    return sweep, captured, port


def server_kernels(spans: pd.DataFrame, export: Path) -> KernelResult:
    """The export's kernels on the client's clock (gpuprof's clock marks, else its UTC session
    start), each given to the traced request whose compute window holds its start."""
    from ..align.clock import nsys_anchor, shifted
    from ..analyze import request_kernels
    from ..api import load

    run = load(export)
    clock = nsys_anchor(run)
    windows = pd.DataFrame({"request_id": spans["request_id"],
                            "start_ns": spans["compute_start_ns"],
                            "end_ns": spans["infer_end_ns"]}).dropna().astype(
        {"start_ns": "int64", "end_ns": "int64"})
    kernels = shifted("kernels", run.frame("kernels", KERNEL_COLUMNS), clock.offset_ns)
    layers = request_kernels.kernel_layers(run)
    found = request_kernels.kernels_per_execution(windows, kernels, layers)
    # the placed kernels, for the trace's GPU tracks: only those inside a window are kept
    placed = request_kernels.placed_kernels(windows, kernels, layers)
    return KernelResult(found, clock, export.name, placed,
                        request_kernels.execution_members(windows))


def analyze_net(requests: pd.DataFrame, captured, server_port: int,
                spans: pd.DataFrame | None) -> NetResult:
    """Read a finished capture (``NetCaptureResult``) and tie its calls to the answered
    requests, clocks checked. Events bpftrace reported lost count with the file's own."""
    from ..ingest.net_capture import read_net_capture

    events, facts = read_net_capture(captured.path)
    facts.lost_events = max(facts.lost_events, captured.lost_events)
    answered = requests[requests["ok"]] if not requests.empty else requests
    path, match, clocks = analyze_join(answered, events, server_port, os.getpid(), spans)
    return NetResult(Path(captured.path), facts, path, match, clocks)


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
    from ..analyze.net_path import complete

    frame = requests.merge(complete(calls), on="request_id", how="inner")
    ebpf = request_clocks.ebpf_to_client(frame)
    clocks = {"client": request_clocks.client_clock(), "ebpf": ebpf}
    if spans is not None:
        frame = frame.merge(spans, on="request_id", how="inner")
        versus = request_clocks.triton_to_ebpf(frame)
        clocks["triton"] = request_clocks.triton_to_client(ebpf, versus)
        clocks["triton vs ebpf"] = versus
    return clocks
