"""Each request's path as a Chrome/Perfetto trace: client, network and server tracks on the
client's CLOCK_MONOTONIC (trace microseconds), one thread per connection (the client port),
and flow arrows that follow a request from the client to the wire, the server and back.

Slices and arrows share one category, so every viewer (catapult, Perfetto, Chrome DevTools,
which binds an arrow only to a slice of the same category) draws the arrows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .chrome_trace import complete_event, flow_events, meta_event, write_trace_events
from .request_path import LABELS

CLIENT, NETWORK, SERVER, NODES, EXECUTIONS = 1, 2, 3, 4, 5
PROCESSES = {CLIENT: "client (gpuprof perf)", NETWORK: "network (eBPF TCP calls)",
             SERVER: "server (Triton stages)", NODES: "server: ONNX Runtime nodes",
             EXECUTIONS: "server: model executions"}
OWN_PROCESSES = (NODES, EXECUTIONS)   # named only when they have slices
# which track draws each segment
TRACK = {"net_client_send_ns": CLIENT, "net_client_recv_ns": CLIENT,
         "net_wire_in_ns": NETWORK, "net_wire_out_ns": NETWORK}
CATEGORY = "request"
OTHER_DATA = {"source": "gpuprof perf --net", "clock": "CLOCK_MONOTONIC (client)"}


def write_request_trace(path: str | Path, frame: pd.DataFrame, segments: list[str],
                        nodes: pd.DataFrame | None = None,
                        joined: pd.DataFrame | None = None) -> Path:
    """``frame``: the whole path per request (``net_path.whole_path``) with start_ns and
    client_port; ``segments`` in path order; ``nodes``: ONNX Runtime node rows
    (``render.request_nodes.node_rows``), drawn for the requests in ``frame``; ``joined``:
    the trace join (``perf_trace.join_requests``), whose model executions are drawn."""
    events = request_events(frame, segments)
    if nodes is not None:
        events += node_events(nodes[nodes["request_id"].isin(frame["request_id"])])
    if joined is not None and "compute_infer_ns" in segments:
        events += execution_events(frame, segments, joined)
    return write_trace_events(path, events, "ms", OTHER_DATA)


def execution_events(frame: pd.DataFrame, segments: list[str],
                     joined: pd.DataFrame) -> list[dict]:
    """One slice per model execution (COMPUTE_START to COMPUTE_END) on its own process, and an
    arrow from each drawn request's compute-infer slice to the execution it ran in: under
    dynamic batching several requests point at one slice. Executions that overlap (model
    instances) go on separate lanes (threads)."""
    from ..analyze.executions import execution_table

    drawn = joined[joined["request_id"].isin(frame["request_id"])]
    table = execution_table(drawn)
    if table.empty:
        return []
    lanes = _lanes(table["compute_start_ns"].to_numpy(), table["compute_end_ns"].to_numpy())
    events = [meta_event("process_name", EXECUTIONS, 0, {"name": PROCESSES[EXECUTIONS]}),
              meta_event("process_sort_index", EXECUTIONS, 0, {"sort_index": EXECUTIONS})]
    events += [meta_event("thread_name", EXECUTIONS, lane, {"name": f"executions {lane}"})
               for lane in sorted(set(lanes))]
    middle = {}
    for row, lane in zip(table.itertuples(index=False), lanes):
        start, end = row.compute_start_ns / 1000.0, row.compute_end_ns / 1000.0
        events.append(complete_event(
            f"execution {row.execution_id} ({row.requests} requests)", CATEGORY, EXECUTIONS,
            int(lane), start, end - start,
            {"execution_id": int(row.execution_id), "requests": int(row.requests),
             "rows": int(row.rows), "request_ids": list(row.request_ids)}))
        middle[row.execution_id] = (int(lane), (start + end) / 2)
    return events + _execution_flows(frame, segments, drawn, middle)


def _execution_flows(frame: pd.DataFrame, segments: list[str], drawn: pd.DataFrame,
                     middle: dict) -> list[dict]:
    k = segments.index("compute_infer_ns")
    edges = _edges(frame, segments)
    execution = drawn.set_index("request_id")["execution_id"]
    events = []
    for n, row in enumerate(frame.itertuples(index=False)):
        ran_in = execution.get(row.request_id)
        if ran_in is None or pd.isna(ran_in):
            continue
        lane, at = middle[ran_in]
        source = (SERVER, int(row.client_port), (edges[n, k] + edges[n, k + 1]) / 2)
        events += flow_events(f"x{n}", "execution", CATEGORY, source, (EXECUTIONS, lane, at))
    return events


def _lanes(starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """A lane (1, 2, ...) per interval, sorted by start, so no two on one lane overlap."""
    free_at: list[int] = []
    lanes = []
    for start, end in zip(starts, ends):
        lane = next((i for i, t in enumerate(free_at) if t <= start), len(free_at))
        if lane == len(free_at):
            free_at.append(end)
        free_at[lane] = end
        lanes.append(lane + 1)
    return lanes


def node_events(nodes: pd.DataFrame) -> list[dict]:
    """One slice per node execution on the nodes process, thread = the request's client port,
    so each request's nodes sit under its server stages."""
    events = [meta_event("process_name", NODES, 0, {"name": PROCESSES[NODES]}),
              meta_event("process_sort_index", NODES, 0, {"sort_index": NODES})]
    events += [meta_event("thread_name", NODES, int(port), {"name": f"connection :{port}"})
               for port in sorted(nodes["client_port"].unique())]
    for row in nodes.itertuples(index=False):
        events.append(complete_event(str(row.layer), CATEGORY, NODES, int(row.client_port),
                                     row.start_ns / 1000.0, row.duration_ns / 1000.0,
                                     {"request_id": row.request_id, "op": str(row.layer_type)}))
    return events


def request_events(frame: pd.DataFrame, segments: list[str]) -> list[dict]:
    events = _metadata(sorted(int(p) for p in frame["client_port"].unique()))
    edges = _edges(frame, segments)
    for n, row in enumerate(frame.itertuples(index=False)):
        events += _request_slices(row, edges[n], segments)
        events += _request_flows(n, row, edges[n], segments)
    return events


def _metadata(ports: list[int]) -> list[dict]:
    events = []
    for pid, name in PROCESSES.items():
        if pid in OWN_PROCESSES:
            continue  # only when they have slices (node_events, execution_events)
        events.append(meta_event("process_name", pid, 0, {"name": name}))
        events.append(meta_event("process_sort_index", pid, 0, {"sort_index": pid}))
        events += [meta_event("thread_name", pid, port, {"name": f"connection :{port}"})
                   for port in ports]
    return events


def _edges(frame: pd.DataFrame, segments: list[str]) -> np.ndarray:
    """Boundary times (µs) per request: start, then the end of each segment."""
    steps = frame[segments].to_numpy(dtype="float64")
    start = frame["start_ns"].to_numpy(dtype="float64")[:, None]
    return np.hstack([start, start + np.cumsum(steps, axis=1)]) / 1000.0


def _request_slices(row, edges: np.ndarray, segments: list[str]) -> list[dict]:
    port = int(row.client_port)
    args = {"request_id": row.request_id, "request_bytes": int(row.client_send_bytes),
            "response_bytes": int(row.client_recv_bytes)}
    events = [complete_event(f"request {row.request_id}", CATEGORY, CLIENT, port, edges[0],
                             edges[-1] - edges[0], args)]
    for k, segment in enumerate(segments):
        events.append(complete_event(LABELS[segment], CATEGORY, TRACK.get(segment, SERVER),
                                     port, edges[k], max(edges[k + 1] - edges[k], 0.0)))
    return events


def _request_flows(n: int, row, edges: np.ndarray, segments: list[str]) -> list[dict]:
    """Arrows where the request changes track: client -> network -> server -> ... -> client."""
    port, events = int(row.client_port), []
    tracks = [TRACK.get(s, SERVER) for s in segments]
    for k in range(1, len(segments)):
        if tracks[k] != tracks[k - 1]:
            # the arrow leaves just before the previous slice ends, so it binds to that slice
            leave = max(edges[k] - 0.001, edges[k - 1])
            events += flow_events(f"{n}.{k}", "request path", CATEGORY,
                                  (tracks[k - 1], port, leave), (tracks[k], port, edges[k]))
    return events
