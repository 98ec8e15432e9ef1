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

CLIENT, NETWORK, SERVER, NODES = 1, 2, 3, 4
PROCESSES = {CLIENT: "client (gpuprof perf)", NETWORK: "network (eBPF TCP calls)",
             SERVER: "server (Triton stages)", NODES: "server: ONNX Runtime nodes"}
# which track draws each segment
TRACK = {"net_client_send_ns": CLIENT, "net_client_recv_ns": CLIENT,
         "net_wire_in_ns": NETWORK, "net_wire_out_ns": NETWORK}
CATEGORY = "request"
OTHER_DATA = {"source": "gpuprof perf --net", "clock": "CLOCK_MONOTONIC (client)"}


def write_request_trace(path: str | Path, frame: pd.DataFrame, segments: list[str],
                        nodes: pd.DataFrame | None = None) -> Path:
    """``frame``: the whole path per request (``net_path.whole_path``) with start_ns and
    client_port; ``segments`` in path order; ``nodes``: ONNX Runtime node rows
    (``render.request_nodes.node_rows``), drawn for the requests in ``frame``."""
    events = request_events(frame, segments)
    if nodes is not None:
        events += node_events(nodes[nodes["request_id"].isin(frame["request_id"])])
    return write_trace_events(path, events, "ms", OTHER_DATA)


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
        if pid == NODES:
            continue  # only when there are nodes (node_events)
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
