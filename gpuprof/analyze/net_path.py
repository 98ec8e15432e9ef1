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

PACK_LIMIT_NS = 1 << 47          # (port << 47) + ns since the run's start fits an int64
GROUPS = ("client_send", "server_recv", "server_send", "client_recv")
# boundaries of the path, in order, with the segment that ends at each one
TRACED_PATH = [("cs_first_ns", "net_client_send_ns"), ("sr_first_ns", "net_wire_in_ns"),
               ("server_start_ns", "net_server_read_ns"),
               ("send_start_ns", "net_server_stages_ns"),
               ("ss_first_ns", "net_server_send_ns"), ("cr_first_ns", "net_wire_out_ns"),
               ("end_ns", "net_client_recv_ns")]
# the traced split of net_server_ns: read, Triton's stages, send
SERVER_SPLIT = ["net_server_read_ns", "net_server_stages_ns", "net_server_send_ns"]
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
    late_sends: int = 0            # server sends stamped outside the request they answer


@dataclass
class Calls:
    """Data-carrying calls between the client and the server port, as plain arrays (a
    capture runs to millions of calls: no per-call Python, no DataFrame of them)."""

    time_ns: np.ndarray         # the (first) call's time
    client_port: np.ndarray     # the connection's client-side port
    group: np.ndarray           # index in GROUPS
    bytes: np.ndarray
    pid: np.ndarray
    last_ns: np.ndarray         # a run's last call (== time_ns for a single call)
    calls: np.ndarray           # calls in the row (1, or a run's count)

    def __len__(self) -> int:
        return len(self.time_ns)

    def take(self, mask: np.ndarray) -> Calls:
        return Calls(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def label_calls(net: pd.DataFrame, server_port: int, client_pid: int,
                server_pids: set[int] | None = None) -> Calls:
    """The calls carrying data between the client and the server port, with the connection's
    client port and the group; other calls are dropped."""
    size = net["bytes"].to_numpy()
    local, remote = net["local_port"].to_numpy(), net["remote_port"].to_numpy()
    pid = net["pid"].to_numpy()
    data = size > 0
    client = data & (remote == server_port) & (pid == client_pid) & (local != server_port)
    server = data & (local == server_port)
    if server_pids:
        server &= np.isin(pid, list(server_pids))
    keep = np.flatnonzero(client | server)
    sends = _is_send(net["direction"])[keep]
    is_client = client[keep]
    group = np.where(is_client, np.where(sends, 0, 3), np.where(sends, 2, 1))  # GROUPS order
    port = np.where(is_client, local[keep], remote[keep]).astype(np.int64)
    times = net["time_ns"].to_numpy()
    if "calls" in net:   # rows may be runs of calls
        last, calls = net["last_ns"].to_numpy()[keep], net["calls"].to_numpy()[keep]
    else:
        last, calls = times[keep], np.ones(len(keep), dtype=np.int64)
    return Calls(times[keep], port, group, size[keep], pid[keep], last, calls)


def _is_send(direction: pd.Series) -> np.ndarray:
    if isinstance(direction.dtype, pd.CategoricalDtype):
        cats = direction.cat.categories
        send = cats.get_loc("send") if "send" in cats else -2
        return direction.cat.codes.to_numpy() == send
    return (direction.astype(str) == "send").to_numpy()


def match_calls(requests: pd.DataFrame, net: pd.DataFrame, server_port: int, client_pid: int,
                server_pids: set[int] | None = None) -> NetMatch:
    """Tie each data-carrying call to the measured request whose connection and time span
    contain it. ``requests`` needs request_id, client_port, start_ns and end_ns."""
    calls = label_calls(net, server_port, client_pid, server_pids)
    reqs = requests.loc[requests["client_port"] > 0, ["request_id", "client_port",
                                                     "start_ns", "end_ns"]]
    reqs = reqs.astype({"client_port": "int64", "start_ns": "int64", "end_ns": "int64"})
    reqs = reqs.reset_index(drop=True)
    window_owner = _owners(calls, reqs)
    owner = _answered(calls, window_owner)
    late = (calls.group == 2) & (owner >= 0) & (owner != window_owner)
    inside = owner >= 0
    on_load = np.isin(calls.client_port, reqs["client_port"].unique())
    per_request = _per_request(calls.take(inside), owner[inside], reqs)
    complete = per_request[CALLS_COLUMNS].gt(0).all(axis=1)
    server_side = ((calls.group == 1) | (calls.group == 2)) & inside
    return NetMatch(
        calls=per_request,
        requests_without_calls=int(len(requests) - len(per_request)),
        requests_incomplete=int((~complete).sum()),
        calls_outside_requests=int(calls.calls[on_load & ~inside].sum()),
        calls_other_traffic=_port_calls(net, server_port) - int(calls.calls[on_load].sum()),
        server_pids=tuple(int(p) for p in np.unique(calls.pid[server_side])),
        late_sends=int(calls.calls[late].sum()))


def _answered(calls: Calls, owner: np.ndarray) -> np.ndarray:
    """``owner`` with each server send given to the request it answers: the one whose receive
    came last before it on the connection (HTTP/1.1 answers in order, one request at a time).

    Time windows alone miss a send whose call returned late (the server thread was
    descheduled after handing the bytes over): its stamp can fall after the client already
    read the response and ended, or inside the client's next request. A send after the
    receive of a request that was not measured (probe, warm-up) belongs to none."""
    owner = owner.copy()
    recv = np.flatnonzero(calls.group == 1)
    send = np.flatnonzero(calls.group == 2)
    owner[send] = -1
    before = _latest_on_port(calls.client_port[recv], calls.time_ns[recv],
                             calls.client_port[send], calls.time_ns[send])
    found = before >= 0
    owner[send[found]] = owner[recv[before[found]]]
    return owner


def _latest_on_port(port: np.ndarray, time_ns: np.ndarray, at_port: np.ndarray,
                    at_ns: np.ndarray) -> np.ndarray:
    """For each (at_port, at_ns): the index of the item on the same port with the greatest
    time at or before it, else -1. One binary search over all connections at once: (port,
    time) packed into one int64 key (a load test under 39 hours fits beside a 16-bit port)."""
    if port.size == 0 or at_port.size == 0:
        return np.full(at_port.size, -1, dtype=np.int64)
    t0 = int(min(time_ns.min(), at_ns.min()))
    span = int(max(time_ns.max(), at_ns.max())) - t0 + 1
    if span >= PACK_LIMIT_NS:
        raise ValueError(f"a load test spanning {span / 3.6e12:.0f} hours cannot be joined")
    order = np.lexsort((time_ns, port))
    keys = port[order] * PACK_LIMIT_NS + (time_ns[order] - t0)
    at = np.searchsorted(keys, at_port * PACK_LIMIT_NS + (at_ns - t0), side="right") - 1
    found = order[np.maximum(at, 0)]
    return np.where((at >= 0) & (port[found] == at_port), found, -1)


def _port_calls(net: pd.DataFrame, port: int) -> int:
    """Data-carrying calls on any connection to or from ``port`` (a row may be a run)."""
    data = net[net["bytes"] > 0]
    on_port = (data["local_port"] == port) | (data["remote_port"] == port)
    calls = data["calls"] if "calls" in data else pd.Series(1, index=data.index)
    return int(calls[on_port].sum())


def _owners(calls: Calls, reqs: pd.DataFrame) -> np.ndarray:
    """For each call, the row in ``reqs`` of the request on its connection that started last
    before it, when the call also lies before that request's end; else -1 (time taken from
    a run's first instant)."""
    owner = np.full(len(calls), -1, dtype=np.int64)
    if len(calls) == 0 or reqs.empty:
        return owner
    start, end = reqs["start_ns"].to_numpy(), reqs["end_ns"].to_numpy()
    candidate = _latest_on_port(reqs["client_port"].to_numpy(), start, calls.client_port,
                                calls.time_ns)
    hit = (candidate >= 0) & (calls.time_ns <= end[np.maximum(candidate, 0)])
    owner[hit] = candidate[hit]
    return owner


def _per_request(calls: Calls, owner: np.ndarray, reqs: pd.DataFrame) -> pd.DataFrame:
    """One row per request with calls: first/last time (-1: no such call), call count and
    bytes of each group."""
    code = owner * len(GROUPS) + calls.group
    # calls come in time order (read_net_capture sorts them): a stable sort by cell keeps it
    in_time = calls.time_ns.size < 2 or bool((np.diff(calls.time_ns) >= 0).all())
    order = (np.argsort(code, kind="stable") if in_time
             else np.lexsort((calls.time_ns, code)))
    code, times = code[order], calls.time_ns[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if code.size else np.empty(0, int)
    cells = code[starts]
    rows, slot = np.unique(cells // len(GROUPS), return_inverse=True)
    out = pd.DataFrame({"request_id": reqs["request_id"].to_numpy()[rows]})
    sizes = np.bincount(code, weights=calls.bytes[order])
    counts = np.bincount(code, weights=calls.calls[order])
    # a run's last call can come after a later-starting row's: take the greatest end per cell
    lasts = np.maximum.reduceat(calls.last_ns[order], starts) if starts.size else starts
    for g, (name, short) in enumerate(zip(GROUPS, ("cs", "sr", "ss", "cr"))):
        # ns stay int64 (a float loses ns past 104 days of uptime); -1 when the group has none
        first = np.full(len(rows), -1, dtype=np.int64)
        last, count, total = first.copy(), np.zeros(len(rows), np.int64), np.zeros(len(rows),
                                                                                   np.int64)
        mine = (cells % len(GROUPS)) == g
        first[slot[mine]], last[slot[mine]] = times[starts[mine]], lasts[mine]
        count[slot[mine]] = counts[cells[mine]].astype(np.int64)
        total[slot[mine]] = sizes[cells[mine]].astype(np.int64)
        out[f"{short}_first_ns"], out[f"{short}_last_ns"] = first, last
        out[f"{name}_calls"], out[f"{name}_bytes"] = count, total
    return out


def complete(calls: pd.DataFrame) -> pd.DataFrame:
    """The requests that have calls of all four groups."""
    return calls[calls[CALLS_COLUMNS].gt(0).all(axis=1)]


def network_path(requests: pd.DataFrame, calls: pd.DataFrame,
                 spans: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per request with all four groups of calls: the ``net_*`` segments, which add
    up to the client latency, and the bytes and calls of each group.

    Every such request gets the path with the server as one segment (``net_server_ns``,
    first receive to first send). ``spans`` (perf_trace's ``server_spans``) splits that
    segment for the requests the server traced (a sampled trace holds some of them):
    ``SERVER_SPLIT`` is NA for the others, and for a traced request missing a boundary."""
    frame = requests.merge(complete(calls), on="request_id", how="inner")
    out = frame[["request_id", "client_port", "start_ns"]].copy()
    _segments(out, frame, frame["start_ns"], UNTRACED_PATH)
    if spans is not None:
        bounds = frame[["request_id"]].merge(
            spans[["request_id", "server_start_ns", "send_start_ns"]], on="request_id",
            how="left")
        traced = frame.assign(server_start_ns=bounds["server_start_ns"].to_numpy(),
                              send_start_ns=bounds["send_start_ns"].to_numpy())
        split = pd.DataFrame(index=frame.index)
        _segments(split, traced, traced["sr_first_ns"], TRACED_PATH[2:5])
        # all three or none: a split with a missing boundary would not add up
        out[SERVER_SPLIT] = split[SERVER_SPLIT].mask(split[SERVER_SPLIT].isna().any(axis=1))
    out["client_latency_ns"] = (frame["end_ns"] - frame["start_ns"]).to_numpy()
    out[BYTES_COLUMNS + CALLS_COLUMNS] = frame[BYTES_COLUMNS + CALLS_COLUMNS].to_numpy()
    return out.reset_index(drop=True)


def _segments(out: pd.DataFrame, frame: pd.DataFrame, start: pd.Series, path) -> None:
    """``out[segment]`` = each boundary minus the one before it, from ``start``; a missing
    boundary (NaN) gives NA, never a number."""
    previous = start.astype("Int64")
    for boundary, segment in path:
        current = frame[boundary].astype("float64").round().astype("Int64")
        out[segment] = (current - previous).to_numpy()
        previous = current


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
    if joined is None or "net_server_read_ns" not in path:
        order = [segment for _, segment in UNTRACED_PATH]
        return path.dropna(subset=order).reset_index(drop=True), order
    order = [segment for _, segment in TRACED_PATH]
    frame = path.merge(joined[["request_id", *SERVER_SEGMENTS]], on="request_id", how="inner")
    at = order.index("net_server_stages_ns")
    order = order[:at] + SERVER_SEGMENTS + order[at + 1:]
    # traced requests with every boundary; others stay in the CSV with what they have
    frame = frame.dropna(subset=order).reset_index(drop=True)
    frame[order] = frame[order].astype("int64")
    return frame, order


def segment_summary(frame: pd.DataFrame, segments: list[str]) -> pd.DataFrame:
    """count, mean, percentiles and max of each segment (ns), in path order; no rows when no
    request is on the path."""
    from .stats import describe_by

    long = frame[segments].astype("float64").melt(var_name="segment", value_name="ns")
    table = describe_by(long, "segment", "ns")
    if table.empty:
        return table
    return table.set_index("segment").loc[segments].reset_index()


def slowest(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    return frame.nlargest(n, "client_latency_ns")
