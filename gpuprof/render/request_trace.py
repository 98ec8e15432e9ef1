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

CLIENT, NETWORK, SERVER, NODES, EXECUTIONS, GPU_KERNELS, GPU_LAYERS = 1, 2, 3, 4, 5, 6, 7
PROCESSES = {CLIENT: "client (gpuprof perf)", NETWORK: "network (eBPF TCP calls)",
             SERVER: "server (Triton stages)", NODES: "server: ONNX Runtime nodes",
             EXECUTIONS: "server: model executions",
             GPU_KERNELS: "server GPU: kernels (nsys)",
             GPU_LAYERS: "server GPU: TensorRT layers (nsys)"}
# named only when they have slices
OWN_PROCESSES = (NODES, EXECUTIONS, GPU_KERNELS, GPU_LAYERS)
LANES_PER_GPU = 1000   # layer-lane thread ids: GPU * this + lane
# which track draws each segment
TRACK = {"net_client_send_ns": CLIENT, "net_client_recv_ns": CLIENT,
         "net_wire_in_ns": NETWORK, "net_wire_out_ns": NETWORK,
         # without eBPF: the client's view of the way to the server and back
         "to_server_ns": CLIENT, "from_server_ns": CLIENT}
CATEGORY = "request"
OTHER_DATA = {"source": "gpuprof perf --net", "clock": "CLOCK_MONOTONIC (client)"}


def write_request_trace(path: str | Path, frame: pd.DataFrame, segments: list[str],
                        nodes: pd.DataFrame | None = None,
                        joined: pd.DataFrame | None = None,
                        kernels: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> Path:
    """``frame``: the whole path per request (``net_path.whole_path``) with start_ns and
    client_port; ``segments`` in path order; ``nodes``: ONNX Runtime node rows
    (``render.request_nodes.node_rows``), drawn for the requests in ``frame``; ``joined``:
    the trace join (``perf_trace.join_requests``), whose model executions are drawn;
    ``kernels``: (placed kernels, request -> execution) of ``request_kernels``, the GPU
    kernels and TensorRT layers inside the compute windows."""
    events = request_events(frame, segments)
    if nodes is not None:
        events += node_events(nodes[nodes["request_id"].isin(frame["request_id"])])
    if joined is not None and "compute_infer_ns" in segments:
        events += execution_events(frame, segments, joined)
    if kernels is not None and not kernels[0].empty:
        placed, members = kernels
        events += kernel_events(placed)
        if "compute_infer_ns" in segments:
            events += kernel_flows(frame, segments, placed, members)
    return write_trace_events(path, events, "ms", OTHER_DATA)


def kernel_events(placed: pd.DataFrame) -> list[dict]:
    """One slice per kernel on a thread per GPU stream, and the TensorRT layers: per execution
    and layer one slice from its first kernel's start to its last kernel's end, on lanes per
    GPU so that no two slices of a thread overlap. ``placed``: ``request_kernels.placed_kernels``."""
    tids = _stream_tids(placed)
    events = _process(GPU_KERNELS) + [
        meta_event("thread_name", GPU_KERNELS, tids[key], {"name": f"GPU {key[0]} stream {key[1]}"})
        for key in tids]
    names = placed["demangled_name"].astype(object).where(placed["demangled_name"].notna(),
                                                          placed["name"].astype(object))
    for row, name in zip(placed.itertuples(index=False), names):
        events.append(complete_event(
            str(name), CATEGORY, GPU_KERNELS, tids[(int(row.device_id), int(row.stream_id))],
            row.start_ns / 1000.0, (row.end_ns - row.start_ns) / 1000.0,
            {"execution": row.execution, "layer": "" if pd.isna(row.layer) else str(row.layer)}))
    return events + _layer_events(placed)


def _layer_events(placed: pd.DataFrame) -> list[dict]:
    named = placed.dropna(subset=["layer"]).assign(gpu_ns=lambda f: f["end_ns"] - f["start_ns"])
    if named.empty:
        return []
    spans = named.groupby(["device_id", "execution", "layer"], sort=False, observed=True).agg(
        start_ns=("start_ns", "min"), end_ns=("end_ns", "max"), kernels=("gpu_ns", "size"),
        gpu_ns=("gpu_ns", "sum")).reset_index().sort_values("start_ns", kind="stable")
    events = _process(GPU_LAYERS)
    for device, rows in spans.groupby("device_id", sort=True):
        lanes = _lanes(rows["start_ns"].to_numpy(), rows["end_ns"].to_numpy())
        base = int(device) * LANES_PER_GPU
        events += [meta_event("thread_name", GPU_LAYERS, base + lane,
                              {"name": f"GPU {int(device)} layers {lane}"})
                   for lane in sorted(set(lanes))]
        for row, lane in zip(rows.itertuples(index=False), lanes):
            events.append(complete_event(
                str(row.layer), CATEGORY, GPU_LAYERS, base + lane, row.start_ns / 1000.0,
                (row.end_ns - row.start_ns) / 1000.0,
                {"execution": row.execution, "kernels": int(row.kernels),
                 "gpu_ns": int(row.gpu_ns)}))
    return events


def kernel_flows(frame: pd.DataFrame, segments: list[str], placed: pd.DataFrame,
                 members: pd.DataFrame) -> list[dict]:
    """An arrow from each drawn request's compute-infer slice to the first kernel of the
    execution it ran in."""
    first = placed.drop_duplicates("execution").set_index("execution")
    tids = _stream_tids(placed)
    execution = members.set_index("request_id")["execution"]
    k = segments.index("compute_infer_ns")
    edges = _edges(frame, segments)
    events = []
    for n, row in enumerate(frame.itertuples(index=False)):
        ran_in = execution.get(row.request_id)
        if ran_in is None or ran_in not in first.index:
            continue
        kernel = first.loc[ran_in]
        target = (GPU_KERNELS, tids[(int(kernel.device_id), int(kernel.stream_id))],
                  (kernel.start_ns + kernel.end_ns) / 2000.0)
        source = (SERVER, int(row.client_port), (edges[n, k] + edges[n, k + 1]) / 2)
        events += flow_events(f"k{n}", "kernels", CATEGORY, source, target)
    return events


def _stream_tids(placed: pd.DataFrame) -> dict[tuple[int, int], int]:
    """(GPU, stream) -> thread id on the kernels process, in GPU then stream order."""
    streams = sorted(set(zip(placed["device_id"].astype(int), placed["stream_id"].astype(int))))
    return {key: n + 1 for n, key in enumerate(streams)}


def _process(pid: int) -> list[dict]:
    return [meta_event("process_name", pid, 0, {"name": PROCESSES[pid]}),
            meta_event("process_sort_index", pid, 0, {"sort_index": pid})]


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
    events = _process(EXECUTIONS)
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
    events = _process(NODES)
    events += [meta_event("thread_name", NODES, int(port), {"name": f"connection :{port}"})
               for port in sorted(nodes["client_port"].unique())]
    for row in nodes.itertuples(index=False):
        events.append(complete_event(str(row.layer), CATEGORY, NODES, int(row.client_port),
                                     row.start_ns / 1000.0, row.duration_ns / 1000.0,
                                     {"request_id": row.request_id, "op": str(row.layer_type)}))
    return events


def request_events(frame: pd.DataFrame, segments: list[str]) -> list[dict]:
    drawn = {CLIENT} | {TRACK.get(s, SERVER) for s in segments}
    events = _metadata(sorted(int(p) for p in frame["client_port"].unique()), drawn)
    edges = _edges(frame, segments)
    for n, row in enumerate(frame.itertuples(index=False)):
        events += _request_slices(row, edges[n], segments)
        events += _request_flows(n, row, edges[n], segments)
    return events


def _metadata(ports: list[int], drawn: set[int]) -> list[dict]:
    events = []
    for pid, name in PROCESSES.items():
        if pid not in drawn:
            continue  # the others only when they have slices (node_events, ...)
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
