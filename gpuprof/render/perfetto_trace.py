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
    with atomic_write(path, "wb") as handle:
        handle.write(_header_packets(tracks, names))
        for lane in lanes:
            for chunk in lane.chunks():
                handle.write(chunk)
        for uuid, times, values in counters:
            handle.write(_counter_packets(uuid, times, values))
    return Path(path)


# -- what goes on which track ---------------------------------------------------------------

def _slice_sets(profile: Profile, tracks: TrackTree) -> Iterator[tuple[int, Slices]]:
    flows = _launch_flows(profile)
    yield from _host_slices(profile, tracks, flows)
    yield from _gpu_slices(profile, tracks, flows)
    yield from _run_slices(profile, tracks)


def _host_slices(profile: Profile, tracks: TrackTree, flows: pd.DataFrame):
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
                      _names(mine["name"], "(CUDA API)"), flow_out=_flow_out(rows, flows)))
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


def _gpu_slices(profile: Profile, tracks: TrackTree, flows: pd.DataFrame):
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


def _gpu_work(profile: Profile, flows: pd.DataFrame) -> pd.DataFrame:
    """Kernels and copies with their label and the launch flow reaching each (0: none)."""
    keys = ["device_id", "pid", "stream_id", "correlation_id", "start_ns", "end_ns"]
    parts = []
    for table, names, kind in ((profile.kernels, _kernel_labels, "kernel"),
                               (profile.copies, _copy_names, "copy")):
        if not table.empty:
            parts.append(table[keys].assign(label=names(table), kind=kind,
                                            row=np.arange(len(table))))
    if not parts:
        return pd.DataFrame(columns=keys + ["label", "flow_id", "flow_last"])
    work = pd.concat(parts, ignore_index=True)
    work = work.merge(flows[["kind", "row", "flow_id", "flow_last"]], on=["kind", "row"],
                      how="left", sort=False)
    return work.assign(flow_id=work["flow_id"].fillna(0).astype(np.uint64),
                       flow_last=work["flow_last"].fillna(False).astype(bool))


def _launch_flows(profile: Profile) -> pd.DataFrame:
    """One flow per API call that launched GPU work: it runs from the call through each kernel
    or copy with the call's correlation id (same process), in start order, and ends at the
    last (a graph launch has many)."""
    calls = profile.api_calls[["pid", "correlation_id"]].assign(api_row=np.arange(
        len(profile.api_calls)))
    calls = calls[calls["correlation_id"] >= 0].drop_duplicates(["pid", "correlation_id"])
    parts = [t[["pid", "correlation_id", "start_ns"]].assign(kind=kind, row=np.arange(len(t)))
             for t, kind in ((profile.kernels, "kernel"), (profile.copies, "copy"))
             if not t.empty]
    columns = ["api_row", "kind", "row", "flow_id", "flow_last"]
    if calls.empty or not parts:
        return pd.DataFrame(columns=columns)
    pairs = pd.concat(parts, ignore_index=True).merge(calls, on=["pid", "correlation_id"])
    pairs = pairs.sort_values(["api_row", "start_ns"], kind="stable")
    pairs["flow_id"] = (pairs["api_row"] + 1).astype(np.uint64)
    pairs["flow_last"] = ~pairs.duplicated("api_row", keep="last")
    return pairs[columns]


def _flow_out(rows: np.ndarray, flows: pd.DataFrame) -> np.ndarray:
    """Per api_calls row in ``rows``: the flow it starts (0: none)."""
    started = np.isin(rows, flows["api_row"].to_numpy(np.int64))
    return np.where(started, rows + 1, 0).astype(np.uint64)


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

    from ..analyze.memory import ONE_KIND, memory_timeline
    from .memory_labels import memory_labels

    if profile.memory_events.empty:
        return
    timeline = memory_timeline(profile.memory_events)
    keys = timeline[["source", "device_id", "memory_kind"]].drop_duplicates()
    host = None
    for key, label in zip(keys.itertuples(index=False, name=None), memory_labels(keys),
                          strict=True):
        source, device, kind = key
        if device < 0 and host is None:
            host = tracks.add(process=ProcessDescriptor(pid=RUN_PID, process_name="host"))
        name = (f"{'GPU' if device >= 0 else 'Host'} memory ({source})" if kind == ONE_KIND
                else f"{label} memory ({source})")
        uuid = tracks.add(name=name, counter=CounterDescriptor(unit=CounterDescriptor.UNIT_SIZE_BYTES),
                          parent_uuid=host if device < 0 else _gpu_process(tracks, device))
        rows = timeline[(timeline["source"] == source) & (timeline["device_id"] == device)
                        & (timeline["memory_kind"] == kind)]
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
    packet += wire.varint_field(13, np.full(2 * n, NEEDS_INCREMENTAL_STATE))
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
