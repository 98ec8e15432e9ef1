"""Each request's network path: the TCP calls eBPF saw, tied to the request they carried.

A load-test request is sent on one connection and, because every sender waits for its answer
before sending again, nothing else travels on that connection between the request's client
start and end. So a TCP call belongs to a request when it is on the request's connection (the
client's local port and the server port; on the client side also the client's pid, on the
server side the server's pid when known) and its time lies inside the request's
``[start_ns, end_ns]``. That is the whole match: no nearest-neighbour, no guess. Calls that fall
outside every measured request (the probe, warm-up, gaps between windows, other connections)
and requests with no calls are counted, not matched.

The eBPF time of a call is when the ``sock_send_length``/``sock_recv_length`` tracepoint fired,
at the end of the system call. Four groups of calls per request: the client's sends, the
server's receives, the server's sends and the client's receives; for each the first and last
call time, the call count and the bytes.

The path uses first-byte boundaries, so each segment is "until the first byte of the next hop":

    start -> client's first send returned        net_client_send   (build + hand to kernel)
          -> server's first receive returned      net_wire_in      (loopback/wire + wake-up)
          -> HTTP_RECV_START (trace)              net_server_read  (frontend starts the request)
          ... Triton's stages (perf_trace) until the response's send starts ...
          -> server's first send returned         net_server_send  (write the response)
          -> client's first receive returned      net_wire_out     (loopback/wire + wake-up)
          -> client end                           net_client_recv  (read the rest, parse)

Without a server trace the server part is one segment, ``net_server`` (first receive to first
send). Consecutive boundaries telescope, so the segments add up to the client latency exactly;
on loopback a receiver can return before the sender's call does, so a segment can be slightly
negative: such requests are counted (``negative_segments``), never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GROUPS = ("client_send", "server_recv", "server_send", "client_recv")
# boundaries of the path, in order, with the segment that ends at each one
TRACED_PATH = [("cs_first_ns", "net_client_send_ns"), ("sr_first_ns", "net_wire_in_ns"),
               ("server_start_ns", "net_server_read_ns"), ("send_start_ns", "net_server_ns"),
               ("ss_first_ns", "net_server_send_ns"), ("cr_first_ns", "net_wire_out_ns"),
               ("end_ns", "net_client_recv_ns")]
UNTRACED_PATH = [("cs_first_ns", "net_client_send_ns"), ("sr_first_ns", "net_wire_in_ns"),
                 ("ss_first_ns", "net_server_ns"), ("cr_first_ns", "net_wire_out_ns"),
                 ("end_ns", "net_client_recv_ns")]
BYTES_COLUMNS = [f"{g}_bytes" for g in GROUPS]
CALLS_COLUMNS = [f"{g}_calls" for g in GROUPS]


@dataclass
class NetMatch:
    """The calls of each request, and what could not be matched."""

    calls: pd.DataFrame            # one row per request with network calls (see request_calls)
    requests_without_calls: int    # measured requests on whose connection eBPF saw nothing
    requests_incomplete: int       # ... that miss one of the four groups of calls
    calls_outside_requests: int    # calls on the load's connections outside any request
    calls_other_traffic: int       # calls on the server port from other processes/connections
    server_pids: tuple[int, ...]   # the pids that served the load's connections


def label_calls(net: pd.DataFrame, server_port: int, client_pid: int,
                server_pids: set[int] | None = None) -> pd.DataFrame:
    """The calls carrying data between the client and the server port, with the connection's
    client port and the group (client_send, server_recv, ...); other calls are dropped."""
    data = net[net["bytes"] > 0]
    client = ((data["remote_port"] == server_port) & (data["pid"] == client_pid)
              & (data["local_port"] != server_port))
    server = data["local_port"] == server_port
    if server_pids:
        server &= data["pid"].isin(server_pids)
    picked = data[client | server]
    is_client = client[client | server].to_numpy()
    direction = picked["direction"].astype(str).to_numpy()
    group = np.where(is_client, np.where(direction == "send", "client_send", "client_recv"),
                     np.where(direction == "send", "server_send", "server_recv"))
    port = np.where(is_client, picked["local_port"], picked["remote_port"])
    return pd.DataFrame({"time_ns": picked["time_ns"].to_numpy(),
                         "client_port": port.astype("int64"),
                         "group": group, "bytes": picked["bytes"].to_numpy(),
                         "pid": picked["pid"].to_numpy()})


def match_calls(requests: pd.DataFrame, net: pd.DataFrame, server_port: int, client_pid: int,
                server_pids: set[int] | None = None) -> NetMatch:
    """Tie each data-carrying call to the measured request whose connection and time span
    contain it. ``requests`` needs request_id, client_port, start_ns and end_ns."""
    calls = label_calls(net, server_port, client_pid, server_pids)
    reqs = requests.loc[requests["client_port"] > 0, ["request_id", "client_port",
                                                     "start_ns", "end_ns"]]
    reqs = reqs.astype({"client_port": "int64", "start_ns": "int64", "end_ns": "int64"})
    owned = _owner(calls, reqs)
    inside = owned["request_id"].notna().to_numpy()
    on_load = owned["client_port"].isin(set(reqs["client_port"].unique())).to_numpy()
    per_request = _per_request(owned[inside])
    complete = per_request[[f"{g}_calls" for g in GROUPS]].gt(0).all(axis=1)
    server_side = owned[inside & owned["group"].str.startswith("server").to_numpy()]
    return NetMatch(
        calls=per_request,
        requests_without_calls=int(len(requests) - len(per_request)),
        requests_incomplete=int((~complete).sum()),
        calls_outside_requests=int((on_load & ~inside).sum()),
        calls_other_traffic=_port_calls(net, server_port) - int(on_load.sum()),
        server_pids=tuple(sorted(int(p) for p in server_side["pid"].unique())))


def _port_calls(net: pd.DataFrame, port: int) -> int:
    """Data-carrying calls on any connection to or from ``port``."""
    data = net[net["bytes"] > 0]
    return int(((data["local_port"] == port) | (data["remote_port"] == port)).sum())


def _owner(calls: pd.DataFrame, reqs: pd.DataFrame) -> pd.DataFrame:
    """Each call with the request on its connection that started last before it, kept only
    when the call also lies before that request's end (else request_id is NaN)."""
    left = calls.sort_values("time_ns", kind="stable")
    right = reqs.sort_values("start_ns", kind="stable")
    merged = pd.merge_asof(left, right, left_on="time_ns", right_on="start_ns",
                           by="client_port", direction="backward")
    merged.loc[merged["time_ns"] > merged["end_ns"], "request_id"] = np.nan
    return merged


def _per_request(owned: pd.DataFrame) -> pd.DataFrame:
    """One row per request: first/last time, call count and bytes of each group."""
    if owned.empty:
        cols = ["request_id"] + [f"{p}_{k}" for p in ("cs", "sr", "ss", "cr")
                                 for k in ("first_ns", "last_ns")] + CALLS_COLUMNS + BYTES_COLUMNS
        return pd.DataFrame(columns=cols)
    agg = owned.groupby(["request_id", "group"], sort=False)["time_ns"].agg(["min", "max",
                                                                             "count"])
    agg["bytes"] = owned.groupby(["request_id", "group"], sort=False)["bytes"].sum()
    wide = agg.unstack("group")
    out = pd.DataFrame(index=wide.index)
    for group, short in zip(GROUPS, ("cs", "sr", "ss", "cr")):
        present = group in wide["min"].columns
        out[f"{short}_first_ns"] = wide["min"][group] if present else np.nan
        out[f"{short}_last_ns"] = wide["max"][group] if present else np.nan
        out[f"{group}_calls"] = wide["count"][group].fillna(0) if present else 0
        out[f"{group}_bytes"] = wide["bytes"][group].fillna(0) if present else 0
    out[CALLS_COLUMNS + BYTES_COLUMNS] = out[CALLS_COLUMNS + BYTES_COLUMNS].astype("int64")
    return out.reset_index()


def network_path(requests: pd.DataFrame, calls: pd.DataFrame,
                 spans: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per request with all its network calls: the ``net_*`` segments, which add up
    to the client latency, and the bytes and calls of each group. ``spans`` (perf_trace's
    ``server_spans``) adds the server's own boundaries; without it the server is one segment."""
    frame = requests.merge(calls, on="request_id", how="inner")
    frame = frame[frame[CALLS_COLUMNS].gt(0).all(axis=1)]
    path = UNTRACED_PATH
    if spans is not None:
        frame = frame.merge(spans[["request_id", "server_start_ns", "send_start_ns"]],
                            on="request_id", how="inner")
        path = TRACED_PATH
    out = frame[["request_id", "client_port", "start_ns"]].copy()
    previous = frame["start_ns"].astype("int64")
    for boundary, segment in path:
        current = frame[boundary].astype("int64")
        out[segment] = (current - previous).to_numpy()
        previous = current
    out["client_latency_ns"] = (frame["end_ns"] - frame["start_ns"]).to_numpy()
    out[BYTES_COLUMNS + CALLS_COLUMNS] = frame[BYTES_COLUMNS + CALLS_COLUMNS].to_numpy()
    return out.reset_index(drop=True)


def segment_columns(path: pd.DataFrame) -> list[str]:
    return [c for c in path.columns if c.startswith("net_") and c.endswith("_ns")]


def negative_segments(path: pd.DataFrame) -> int:
    """Requests with a segment below zero (calls that overlapped on loopback)."""
    cols = segment_columns(path)
    return int((path[cols] < 0).any(axis=1).sum()) if cols else 0


# Triton's own segments (perf_trace) that replace net_server_ns when the server was traced
SERVER_SEGMENTS = ["server_receive_ns", "queue_ns", "compute_input_ns", "compute_infer_ns",
                   "server_output_ns"]


def whole_path(path: pd.DataFrame, joined: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """Each request's path from client to kernel and back, in order: the network segments
    around Triton's stages when the server was traced. Returns the frame and its segment
    columns in path order; they add up to ``client_latency_ns``."""
    order = [segment for _, segment in (TRACED_PATH if joined is not None else UNTRACED_PATH)]
    if joined is None:
        return path, order
    frame = path.merge(joined[["request_id", *SERVER_SEGMENTS]], on="request_id", how="inner")
    at = order.index("net_server_ns")
    return frame, order[:at] + SERVER_SEGMENTS + order[at + 1:]


def segment_summary(frame: pd.DataFrame, segments: list[str]) -> pd.DataFrame:
    """count, mean, percentiles and max of each segment (ns), in path order."""
    from .stats import describe_by

    long = frame[segments].melt(var_name="segment", value_name="ns")
    table = describe_by(long, "segment", "ns").set_index("segment").loc[segments]
    return table.reset_index()


def slowest(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    return frame.nlargest(n, "client_latency_ns")
