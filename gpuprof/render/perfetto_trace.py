"""A ``Profile`` as Perfetto's native protobuf trace (``.pftrace``), for exports too big for JSON.

The JSON trace (``chrome_trace``) of a 1M-kernel export is about 1 GB: chrome://tracing reads
a file as one string (V8 caps strings near 512 MiB) and Perfetto's UI parses JSON slowly. The
protobuf trace interns every name once and costs about 30 bytes a slice, and Perfetto's UI
and trace processor read it natively.

Same layout as the JSON trace: a process per host process with, per thread, a "CUDA API" and
an "NVTX" track; a process per GPU with a track per stream holding kernels and copies; an
arrow from each API call through the GPU work it launched (same correlation id, in start
order); memory in use per (source, device, kind) as counter tracks (bytes); an engine run's
timed iterations and layers on a "run" process. Slices on one track must not overlap, so a
track whose slices do (nested NVTX ranges, async start/end ranges) is split into lanes
("NVTX", "NVTX 2", ...). Per-slice arguments (launch configurations) are left out to keep the
file small: the JSON trace of a cut (``--trace-window``) has them.

Timestamps are the profile's own ns (nsys session clock, or CLOCK_MONOTONIC for driven runs),
unrounded. Slice packets are encoded in bulk by ``protowire``; tests read the file back with
Perfetto's own protobuf classes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..fsutil import atomic_write
from ..model import Profile
from . import protowire as wire
from .chrome_trace import GPU_PID_BASE, RUN_PID, _copy_names, _gpu_tracks, _labels, _placed_layers

SEQUENCE_ID = 1
BEGIN, END, INSTANT, COUNTER = 1, 2, 3, 4                 # TrackEvent.Type
INCREMENTAL_STATE_CLEARED, NEEDS_INCREMENTAL_STATE = 1, 2  # TracePacket.SequenceFlags
CHUNK_ROWS = 250_000


@dataclass
class Slices:
    """Slices for one named track (split into lanes when they overlap)."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    names: np.ndarray  # object array of str
    flow_out: np.ndarray | None = None   # flow id started here (0: none)
    flow_in: np.ndarray | None = None    # flow id arriving here (0: none)
    flow_ends: np.ndarray | None = None  # True where the arriving flow stops here


@dataclass
class TrackTree:
    """Track descriptors in order, and a uuid for each."""

    descriptors: list = field(default_factory=list)
    next_uuid: int = 1

    def add(self, **fields) -> int:
        from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackDescriptor

        uuid, self.next_uuid = self.next_uuid, self.next_uuid + 1
        self.descriptors.append(TrackDescriptor(uuid=uuid, **fields))
        return uuid


def write_perfetto_trace(profile: Profile, path: str | Path) -> Path:
    """Write ``profile`` as a Perfetto protobuf trace, atomically; returns the path."""
    tracks = TrackTree()
    slice_sets = list(_slice_sets(profile, tracks))
    counters = list(_counter_sets(profile, tracks))
    names, iids = _intern([slices.names for _, slices in slice_sets])
    lanes = [lane for (uuid, slices), ids in zip(slice_sets, iids, strict=True)
             for lane in _lanes_of(uuid, slices, ids, tracks)]
    with atomic_write(path, "wb") as raw, _maybe_gzip(raw, path) as handle:
        handle.write(_header_packets(tracks, names))
        for lane in lanes:
            for chunk in lane.chunks():
                handle.write(chunk)
        for uuid, times, values in counters:
            handle.write(_counter_packets(uuid, times, values))
    return Path(path)


def _maybe_gzip(handle, path: str | Path):
    """``handle`` itself, or a gzip stream over it for a ``.gz`` name (level 1: a trace
    compresses about 4x at that level, and higher levels gain little for much more time)."""
    import gzip
    from contextlib import nullcontext

    if not str(path).lower().endswith(".gz"):
        return nullcontext(handle)
    return gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=1, mtime=0)


# -- what goes on which track ---------------------------------------------------------------

def _slice_sets(profile: Profile, tracks: TrackTree) -> Iterator[tuple[int, Slices]]:
    flows = _launch_flows(profile)
    yield from _host_slices(profile, tracks, flows)
    yield from _gpu_slices(profile, tracks, flows)
    yield from _run_slices(profile, tracks)


def _host_slices(profile: Profile, tracks: TrackTree, flows: LaunchFlows):
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
        ProcessDescriptor,
        ThreadDescriptor,
    )

    calls, ranges = profile.api_calls, profile.nvtx_ranges
    threads = pd.concat([calls[["pid", "tid"]], ranges[["pid", "tid"]]]).drop_duplicates()
    for pid, group in threads.sort_values(["pid", "tid"]).groupby("pid"):
        process = tracks.add(process=ProcessDescriptor(pid=int(pid), process_name=f"Process {pid}"))
        for tid in group["tid"]:
            thread = tracks.add(thread=ThreadDescriptor(pid=int(pid), tid=int(tid),
                                                        thread_name=f"Thread {tid}"))
            yield from _thread_slices(profile, tracks, flows, int(pid), int(tid), thread)
        yield from _async_ranges(ranges[(ranges["pid"] == pid)], tracks, process)


def _thread_slices(profile, tracks, flows, pid, tid, thread):
    calls = profile.api_calls
    rows = np.flatnonzero((calls["pid"] == pid).to_numpy() & (calls["tid"] == tid).to_numpy())
    if len(rows):
        mine = calls.iloc[rows]
        yield (tracks.add(parent_uuid=thread, name="CUDA API"),
               Slices(mine["start_ns"].to_numpy(), mine["end_ns"].to_numpy(),
                      _names(mine["name"], "(CUDA API)"),
                      flow_out=np.where(flows.starts[rows], rows + 1, 0).astype(np.uint64)))
    ranges = profile.nvtx_ranges
    nested = ranges[(ranges["pid"] == pid) & (ranges["tid"] == tid)
                    & (ranges["range_kind"].astype(object) == "push_pop")
                    & (ranges["end_ns"] >= ranges["start_ns"])]
    if not nested.empty:
        yield (tracks.add(parent_uuid=thread, name="NVTX"),
               Slices(nested["start_ns"].to_numpy(), nested["end_ns"].to_numpy(),
                      _names(nested["text"], "(unnamed range)")))


def _async_ranges(ranges: pd.DataFrame, tracks: TrackTree, process: int):
    """start/end ranges (may cross threads) and marks, on the process."""
    kind = ranges["range_kind"].astype(object)
    spans = ranges[(kind == "start_end") & (ranges["end_ns"] >= ranges["start_ns"])]
    if not spans.empty:
        yield (tracks.add(parent_uuid=process, name="NVTX start/end"),
               Slices(spans["start_ns"].to_numpy(), spans["end_ns"].to_numpy(),
                      _names(spans["text"], "(unnamed range)")))
    marks = ranges[kind == "mark"]
    if not marks.empty:  # zero-length slices: instants would need a track of their own kind
        yield (tracks.add(parent_uuid=process, name="NVTX marks"),
               Slices(marks["start_ns"].to_numpy(), marks["start_ns"].to_numpy(),
                      _names(marks["text"], "(mark)")))


def _gpu_slices(profile: Profile, tracks: TrackTree, flows: LaunchFlows):
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import ProcessDescriptor

    work = _gpu_work(profile, flows)
    if work.empty:
        return
    gpu_names = {g.device_id: g.name for g in profile.meta.gpus}
    streams = _gpu_tracks(profile)
    shared = streams.groupby("device_id")["pid"].nunique().max() > 1
    columns = {c: work[c].to_numpy() for c in ("start_ns", "end_ns", "flow_id", "flow_last")}
    labels = work["label"].to_numpy(object)
    rows_of = work.groupby(["device_id", "pid", "stream_id"], sort=False).indices
    for device, group in streams.groupby("device_id"):
        label = f"GPU {device}" + (f" ({gpu_names[device]})" if device in gpu_names else "")
        gpu = tracks.add(process=ProcessDescriptor(pid=GPU_PID_BASE + int(device),
                                                   process_name=label))
        for row in group.itertuples(index=False):
            rows = rows_of.get((row.device_id, row.pid, row.stream_id))
            if rows is None:
                continue
            name = f"Stream {row.stream_id}" + (f" (process {row.pid})" if shared else "")
            yield (tracks.add(parent_uuid=gpu, name=name),
                   Slices(columns["start_ns"][rows], columns["end_ns"][rows], labels[rows],
                          flow_in=columns["flow_id"][rows], flow_ends=columns["flow_last"][rows]))


GPU_TABLES = (("kernels", "kernel"), ("copies", "copy"))


def _gpu_work(profile: Profile, flows: LaunchFlows) -> pd.DataFrame:
    """Kernels and copies with their label and the launch flow reaching each (0: none)."""
    keys = ["device_id", "pid", "stream_id", "start_ns", "end_ns"]
    parts = []
    for table_name, _ in GPU_TABLES:
        table = profile.tables[table_name]
        if not table.empty:
            label = _kernel_labels(table) if table_name == "kernels" else _copy_names(table)
            parts.append(table[keys].assign(label=label, flow_id=flows.reaching[table_name],
                                            flow_last=flows.last[table_name]))
    if not parts:
        return pd.DataFrame(columns=keys + ["label", "flow_id", "flow_last"])
    return pd.concat(parts, ignore_index=True)


@dataclass
class LaunchFlows:
    """One flow per API call that launched GPU work: it runs from the call through each kernel
    or copy with the call's correlation id (same process), in start order, and ends at the
    last (a graph launch has many). A flow's id is its call's api_calls row + 1."""

    starts: np.ndarray                 # per api_calls row: starts a flow
    reaching: dict[str, np.ndarray]    # per GPU table row: the flow reaching it (0: none)
    last: dict[str, np.ndarray]        # per GPU table row: the flow ends here


def _launch_flows(profile: Profile) -> LaunchFlows:
    calls = profile.api_calls
    call_keys = _launch_keys(calls)
    valid = np.flatnonzero(calls["correlation_id"].to_numpy() >= 0)
    keys, first = np.unique(call_keys[valid], return_index=True)  # the first call per key
    first_rows = valid[first]
    starts = np.zeros(len(calls), bool)
    reaching, last = {}, {}
    for table_name, _ in GPU_TABLES:
        table = profile.tables[table_name]
        api_row = _matching_rows(_launch_keys(table), keys, first_rows)
        reaching[table_name] = np.where(api_row >= 0, api_row + 1, 0).astype(np.uint64)
        last[table_name] = _last_of_each_flow(api_row, table["start_ns"].to_numpy())
        starts[api_row[api_row >= 0]] = True
    # a flow passes from one table's rows to the other's: only the latest row may end it
    _end_once(reaching, last, profile)
    return LaunchFlows(starts, reaching, last)


def _launch_keys(table: pd.DataFrame) -> np.ndarray:
    """(pid, correlation id) as one int64: pids fit 24 bits, correlation ids 39."""
    pid = table["pid"].to_numpy(np.int64)
    corr = table["correlation_id"].to_numpy(np.int64)
    return (pid << 39) | (corr & ((1 << 39) - 1))


def _matching_rows(work_keys: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per GPU row: the api_calls row of its launch (-1: none)."""
    if not len(keys) or not len(work_keys):
        return np.full(len(work_keys), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, work_keys), len(keys) - 1)
    return np.where(keys[at] == work_keys, rows[at], -1)


def _last_of_each_flow(api_row: np.ndarray, start_ns: np.ndarray) -> np.ndarray:
    """True on the latest-starting row of each flow (within one table)."""
    order = np.lexsort((start_ns, api_row))
    sorted_rows = api_row[order]
    is_last = np.ones(len(order), bool)
    is_last[:-1] = sorted_rows[:-1] != sorted_rows[1:]
    out = np.zeros(len(api_row), bool)
    out[order] = is_last & (sorted_rows >= 0)
    return out


def _end_once(reaching: dict, last: dict, profile: Profile) -> None:
    """Where one call launched both kernels and copies, keep the end on the later of the two
    tables' last rows only."""
    kernels, copies = profile.tables["kernels"], profile.tables["copies"]
    k_last, c_last = np.flatnonzero(last["kernels"]), np.flatnonzero(last["copies"])
    if not len(k_last) or not len(c_last):
        return
    k_ids, c_ids = reaching["kernels"][k_last], reaching["copies"][c_last]
    both, k_at, c_at = np.intersect1d(k_ids, c_ids, return_indices=True)
    if not len(both):
        return
    k_start = kernels["start_ns"].to_numpy()[k_last[k_at]]
    c_start = copies["start_ns"].to_numpy()[c_last[c_at]]
    last["kernels"][k_last[k_at[k_start < c_start]]] = False
    last["copies"][c_last[c_at[k_start >= c_start]]] = False


def _run_slices(profile: Profile, tracks: TrackTree):
    """An engine run's timed iterations and layers, per source, on the "run" process."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import ProcessDescriptor

    iterations = profile.iterations[profile.iterations["start_ns"] >= 0]
    layers = profile.layer_timings
    if iterations.empty and layers.empty:
        return
    label = f"{profile.meta.tool} run" if profile.meta.tool else "run"
    run = tracks.add(process=ProcessDescriptor(pid=RUN_PID, process_name=label))
    for source, group in iterations.groupby(_labels(iterations["source"], "(unknown source)")):
        yield (tracks.add(parent_uuid=run, name=f"timed iterations ({source})"),
               Slices(group["start_ns"].to_numpy(), group["end_ns"].to_numpy(),
                      np.array([f"iteration {i}" for i in group["iteration"]], object)))
    if layers.empty:
        return
    origin = int(min(iterations["start_ns"].min() if not iterations.empty else np.inf,
                     layers.loc[layers["start_ns"] >= 0, "start_ns"].min()
                     if (layers["start_ns"] >= 0).any() else np.inf, 2**62))
    placed = _placed_layers(layers, profile.iterations, origin)
    for source, group in placed.groupby(_labels(placed["source"], "(unknown source)")):
        start = group["placed_ns"].to_numpy()
        yield (tracks.add(parent_uuid=run, name=f"layers ({source})"),
               Slices(start, start + group["duration_ns"].clip(lower=0).to_numpy(),
                      _names(group["layer"], "(layer)")))


def _counter_sets(profile: Profile, tracks: TrackTree):
    """Memory in use (bytes) per (source, device, kind), one counter track each."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
        CounterDescriptor,
        ProcessDescriptor,
    )

    from ..analyze.memory import memory_timeline
    from .chrome_trace import memory_counter_names

    if profile.memory_events.empty:
        return
    timeline = memory_timeline(profile.memory_events)
    names = memory_counter_names(timeline)
    host = None
    for key, rows in timeline.groupby(["source", "device_id", "memory_kind"], sort=False,
                                      observed=True):
        device = key[1]
        if device < 0 and host is None:
            host = tracks.add(process=ProcessDescriptor(pid=RUN_PID, process_name="host"))
        uuid = tracks.add(name=names[key],
                          counter=CounterDescriptor(unit=CounterDescriptor.UNIT_SIZE_BYTES),
                          parent_uuid=host if device < 0 else _gpu_process(tracks, device))
        yield uuid, rows["time_ns"].to_numpy(), rows["used_bytes"].to_numpy()


def _gpu_process(tracks: TrackTree, device: int) -> int:
    """The uuid of GPU ``device``'s process track, added if the GPU ran no kernels."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import ProcessDescriptor

    pid = GPU_PID_BASE + int(device)
    for descriptor in tracks.descriptors:
        if descriptor.HasField("process") and descriptor.process.pid == pid:
            return descriptor.uuid
    return tracks.add(process=ProcessDescriptor(pid=pid, process_name=f"GPU {device}"))


# -- encoding -----------------------------------------------------------------------------

def _intern(name_sets: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every distinct slice name once (its iid is its index + 1), and each set's iids."""
    if not name_sets:
        return np.array([], object), []
    codes, names = pd.factorize(np.concatenate(name_sets))
    bounds = np.cumsum([len(n) for n in name_sets])[:-1]
    return names, [(c + 1).astype(np.uint64) for c in np.split(codes, bounds)]


def _names(series: pd.Series, missing: str) -> np.ndarray:
    """A column of names as an object array, ``missing`` where absent."""
    values = series.astype(object)
    return values.where(values.notna(), missing).to_numpy(object)


def _kernel_labels(kernels: pd.DataFrame) -> np.ndarray:
    return _names(kernels["name"], "(kernel)")


def _header_packets(tracks: TrackTree, names: np.ndarray) -> bytes:
    """Track descriptors, then the interned names (which clear the sequence's state)."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
        EventName,
        InternedData,
        TracePacket,
    )

    packets = [TracePacket(track_descriptor=d) for d in tracks.descriptors]
    packets.append(TracePacket(
        trusted_packet_sequence_id=SEQUENCE_ID, sequence_flags=INCREMENTAL_STATE_CLEARED,
        interned_data=InternedData(event_names=[EventName(iid=i, name=str(n))
                                                for i, n in enumerate(names, start=1)])))
    return b"".join(_framed(p.SerializeToString()) for p in packets)


def _framed(packet: bytes) -> bytes:
    """One ``Trace.packet`` entry (field 1, length-delimited)."""
    return b"\x0a" + wire.varint_bytes(len(packet)) + packet


@dataclass
class Lane:
    """Non-overlapping slices of one track, sorted by start, ready to encode."""

    uuid: int
    start: np.ndarray
    end: np.ndarray
    iids: np.ndarray
    flow_out: np.ndarray | None
    flow_in: np.ndarray | None
    flow_ends: np.ndarray | None

    def chunks(self) -> Iterator[bytes]:
        rows = np.arange(len(self.start))
        for part in np.array_split(rows, max(1, -(-len(rows) // CHUNK_ROWS))):
            yield _slice_packets(self.uuid, self.start[part], self.end[part], self.iids[part],
                                 _pick(self.flow_out, part), _pick(self.flow_in, part),
                                 _pick(self.flow_ends, part))


def _lanes_of(uuid: int, slices: Slices, iids: np.ndarray, tracks: TrackTree) -> list[Lane]:
    """The track's slices split into lanes (lane 0 is the track itself; the others are added
    as tracks "TITLE 2", "TITLE 3", ... before any packet is written)."""
    order = np.argsort(slices.start_ns, kind="stable")
    start = slices.start_ns[order]
    end = np.maximum(slices.end_ns[order], start)
    lanes = _lanes(start, end)
    iids = iids[order]
    flows = [None if a is None else a[order]
             for a in (slices.flow_out, slices.flow_in, slices.flow_ends)]
    title = next(d.name for d in tracks.descriptors if d.uuid == uuid)
    out = []
    for lane in range(int(lanes.max()) + 1 if len(lanes) else 0):
        mine = np.flatnonzero(lanes == lane)
        lane_uuid = uuid if lane == 0 else tracks.add(parent_uuid=uuid, name=f"{title} {lane + 1}")
        out.append(Lane(lane_uuid, start[mine], end[mine], iids[mine],
                        *(_pick(a, mine) for a in flows)))
    return out


def _pick(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[rows]


def _lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A lane per slice (slices sorted by start) such that no two slices of a lane overlap:
    each goes to the lowest lane free at its start."""
    if len(start) < 2 or np.all(start[1:] >= np.maximum.accumulate(end)[:-1]):
        return np.zeros(len(start), np.int64)  # the common case: nothing overlaps
    # nested ranges (NVTX push/pop): a slice's depth, the slices still open at its start,
    # is a valid lane -- checked, since partly overlapping ranges would break it
    depth = np.arange(len(start)) - np.searchsorted(np.sort(end), start, side="right")
    if _lanes_valid(depth, start, end):
        return depth
    return _greedy_lanes(start, end)


def _lanes_valid(lanes: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
    if lanes.min() < 0:
        return False
    order = np.argsort(lanes, kind="stable")  # by lane, then by start
    same = lanes[order][1:] == lanes[order][:-1]
    return bool(np.all(start[order][1:][same] >= end[order][:-1][same]))


def _greedy_lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Each slice in the lowest lane free at its start (any overlaps)."""
    lanes = np.empty(len(start), np.int64)
    free: list[int] = []
    busy: list[tuple[int, int]] = []  # (end, lane)
    for i, (s, e) in enumerate(zip(start.tolist(), end.tolist(), strict=True)):
        while busy and busy[0][0] <= s:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        lanes[i] = lane
        heapq.heappush(busy, (e, lane))
    return lanes


def _slice_packets(track: int, start: np.ndarray, end: np.ndarray, iids: np.ndarray,
                   flow_out, flow_in, flow_ends) -> bytes:
    """Begin and end packets of non-overlapping slices sorted by start: b0 e0 b1 e1 ..."""
    n = len(start)
    times = np.empty(2 * n, np.int64)
    times[0::2], times[1::2] = start, end
    begins = np.zeros(2 * n, bool)
    begins[0::2] = True
    event = wire.varint_field(9, np.where(begins, BEGIN, END))
    event += wire.varint_field(11, np.full(2 * n, track, np.uint64))
    event += wire.varint_field(10, np.repeat(iids, 2), begins)
    if flow_out is not None or flow_in is not None:
        event += _flow_fields(n, begins, flow_out, flow_in, flow_ends)
    packet = wire.varint_field(8, times)
    packet += wire.varint_field(10, np.full(2 * n, SEQUENCE_ID))
    # only begin packets name their slice through the interned names
    packet += wire.varint_field(13, np.full(2 * n, NEEDS_INCREMENTAL_STATE), begins)
    packet += wire.message_field(11, event)
    return _framed_rows(packet)


def _flow_fields(n, begins, flow_out, flow_in, flow_ends) -> list[wire.Segment]:
    """flow_ids (47) where a flow starts or passes through, terminating_flow_ids (48) where
    it ends; on begin packets only."""
    out = np.zeros(n, np.uint64) if flow_out is None else flow_out.astype(np.uint64)
    arriving = np.zeros(n, np.uint64) if flow_in is None else flow_in.astype(np.uint64)
    ends = np.zeros(n, bool) if flow_ends is None else flow_ends.astype(bool)
    through = np.where(out > 0, out, np.where(ends, 0, arriving))
    stop = np.where(ends & (arriving > 0), arriving, 0)
    return (wire.fixed64_field(47, np.repeat(through, 2), begins & np.repeat(through > 0, 2))
            + wire.fixed64_field(48, np.repeat(stop, 2), begins & np.repeat(stop > 0, 2)))


def _counter_packets(track: int, times: np.ndarray, values: np.ndarray) -> bytes:
    n = len(times)
    event = wire.varint_field(9, np.full(n, COUNTER))
    event += wire.varint_field(11, np.full(n, track, np.uint64))
    event += wire.varint_field(30, np.maximum(values, 0))
    packet = wire.varint_field(8, times) + wire.varint_field(10, np.full(n, SEQUENCE_ID))
    packet += wire.message_field(11, event)
    return _framed_rows(packet)


def _framed_rows(packet_fields: list[wire.Segment]) -> bytes:
    """Each row as one ``Trace.packet`` entry."""
    return wire.to_bytes(wire.message_field(1, packet_fields))
