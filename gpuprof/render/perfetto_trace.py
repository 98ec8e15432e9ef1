"""A ``Profile`` as Perfetto's native protobuf trace (``.pftrace``), for exports too big for JSON.

The JSON trace (``chrome_trace``) of a 1M-kernel export is about 1 GB: chrome://tracing reads
a file as one string (V8 caps strings near 512 MiB) and Perfetto's UI parses JSON slowly. The
protobuf trace takes about 26 bytes a slice (``perfetto_packets``: one packet sequence per
track lane, incremental timestamps, names interned per sequence), and Perfetto's UI and
trace processor read it natively.

Same layout as the JSON trace: a process per host process with, per thread, a "CUDA API" and
an "NVTX" track; a process per GPU with a track per stream holding kernels and copies; an
arrow from each API call through the GPU work it launched (``perfetto_flows``); memory in use
per (source, device, kind) as counter tracks (bytes); an engine run's timed iterations and
layers on a "run" process. Slices on one track must not overlap, so a track whose slices do
(nested NVTX ranges, async start/end ranges) is split into lanes ("NVTX", "NVTX 2", ...).
Per-slice arguments (launch configurations) are left out to keep the file small: the JSON
trace of a cut (``--trace-window``) has them.

Timestamps are the profile's own ns (nsys session clock, or CLOCK_MONOTONIC for driven runs),
unrounded. Slice names travel as codes into each table's names (pandas categories), never as
a Python string per slice. Tests read the file back with Perfetto's own protobuf classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..fsutil import atomic_write
from ..model import Profile
from . import perfetto_packets as packets
from . import protowire as wire
from .chrome_trace import GPU_PID_BASE, RUN_PID, _labels, _placed_layers
from .perfetto_flows import GPU_TABLES, LaunchFlows, launch_flows
from .perfetto_lanes import Lane, Slices, lane_numbers, sorted_columns

COUNTER = 4              # TrackEvent.Type
WRITE_AHEAD_CHUNKS = 8   # encoded chunks (about 2 MB each) waiting for the writer thread


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
    lanes = [lane for uuid, slices in _slice_sets(profile, tracks)
             for lane in _lanes_of(uuid, slices, tracks)]
    counters = list(_counter_sets(profile, tracks))
    with atomic_write(path, "wb") as raw, _maybe_gzip(raw, path) as handle:
        _write_behind(handle, _trace_chunks(tracks, lanes, counters))
    return Path(path)


def _trace_chunks(tracks: TrackTree, lanes: list[Lane], counters: list) -> Iterator:
    yield _descriptor_packets(tracks)
    for sequence_id, lane in enumerate(lanes, start=1):
        yield from lane.packets(sequence_id)
    counter_sequence = len(lanes) + 1
    if counters:
        yield _counter_sequence_start(counter_sequence)
    for uuid, times, values in counters:
        yield _counter_packets(uuid, times, values, counter_sequence)


def _write_behind(handle, chunks: Iterator) -> None:
    """Write ``chunks`` from a second thread while the next ones are encoded: file writes
    and gzip release the GIL, and so do numpy's loops, so both cores work."""
    import queue
    import threading

    pending: queue.Queue = queue.Queue(maxsize=WRITE_AHEAD_CHUNKS)
    failure: list[BaseException] = []

    def drain() -> None:
        while (chunk := pending.get()) is not None:
            if not failure:
                try:
                    handle.write(chunk)
                except BaseException as error:  # reported to the caller below
                    failure.append(error)

    writer = threading.Thread(target=drain, name="pftrace-writer", daemon=True)
    writer.start()
    try:
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        pending.put(None)
        writer.join()
    if failure:
        raise failure[0]


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
    flows = launch_flows(profile)
    yield from _host_slices(profile, tracks, flows)
    yield from _gpu_slices(profile, tracks, flows)
    yield from _run_slices(profile, tracks)


def _host_slices(profile: Profile, tracks: TrackTree, flows: LaunchFlows):
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
        ProcessDescriptor,
        ThreadDescriptor,
    )

    host = _HostTables(profile)
    threads = np.sort(pd.unique(np.concatenate([host.call_threads, host.range_threads])))
    for pid in pd.unique(threads >> 32):
        process = tracks.add(process=ProcessDescriptor(pid=int(pid), process_name=f"Process {pid}"))
        for key in threads[threads >> 32 == pid].tolist():
            tid = key & 0xFFFFFFFF
            thread = tracks.add(thread=ThreadDescriptor(pid=int(pid), tid=tid,
                                                        thread_name=f"Thread {tid}"))
            yield from _thread_slices(host, tracks, flows, key, thread)
        yield from _async_ranges(host, tracks, int(pid), process)


class _HostTables:
    """API calls and NVTX ranges as numpy columns, with each row's thread as one int64
    ((pid << 32) | tid: Linux pids and tids fit 32 bits) and range kinds as masks, so that
    picking a thread's rows is one comparison over millions of rows."""

    def __init__(self, profile: Profile):
        self.calls, self.ranges = profile.api_calls, profile.nvtx_ranges
        self.call_threads = _thread_keys(self.calls)
        self.range_threads = _thread_keys(self.ranges)
        self.calls_of, self.ranges_of = _RowsOf(self.call_threads), _RowsOf(self.range_threads)
        self.call_names = _coded(self.calls["name"], "(CUDA API)")
        self.range_names = _coded(self.ranges["text"], "(unnamed range)")
        ended = (self.ranges["end_ns"] >= self.ranges["start_ns"]).to_numpy()
        kind = self.ranges["range_kind"]
        self.nested = _is(kind, "push_pop") & ended
        self.spans = _is(kind, "start_end") & ended
        self.marks = _is(kind, "mark")

    def range_slices(self, rows: np.ndarray, missing: str | None = None,
                     instant: bool = False) -> Slices:
        start = self.ranges["start_ns"].to_numpy()[rows]
        codes, names = self.range_names
        if missing is not None:  # another word for a range without text
            names = np.concatenate([names[:-1], [missing]])
        end = start if instant else self.ranges["end_ns"].to_numpy()[rows]
        return Slices(start, end, codes[rows], names)


class _RowsOf:
    """Each key's rows, in row order (all of them as a slice). With few keys, one comparison
    over the column per key; past ``SORT_PAST`` keys, one stable sort and a slice of it per
    key, so a run with hundreds of threads or streams does not scan millions of rows each
    time."""

    SORT_PAST = 16

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self.codes, uniques = pd.factorize(keys)
        self.index = {int(k): i for i, k in enumerate(uniques.tolist())}
        self.order = self.ends = None
        if len(uniques) > self.SORT_PAST:
            self.order = np.argsort(self.codes, kind="stable")
            self.ends = np.cumsum(np.bincount(self.codes, minlength=len(uniques)))

    def __call__(self, key: int, mask: np.ndarray | None = None) -> np.ndarray | slice:
        """``key``'s rows, within ``mask`` where given."""
        if self.order is None:
            return _rows(self.keys == key if mask is None else (self.keys == key) & mask)
        code = self.index.get(int(key))
        if code is None:
            return np.empty(0, dtype=np.int64)
        rows = self.order[(self.ends[code - 1] if code else 0):self.ends[code]]
        if mask is not None:
            rows = rows[mask[rows]]
        return slice(None) if len(rows) == len(self.keys) else rows


def _rows(mask: np.ndarray) -> np.ndarray | slice:
    """The rows where ``mask`` holds; all of them as a slice (no copies when a track holds a
    whole table, as one thread or one stream often does)."""
    return slice(None) if mask.all() else np.flatnonzero(mask)


def _count(rows: np.ndarray | slice, total: int) -> int:
    return total if isinstance(rows, slice) else len(rows)


def _thread_keys(table: pd.DataFrame) -> np.ndarray:
    return (table["pid"].to_numpy(np.int64) << 32) | (table["tid"].to_numpy(np.int64)
                                                      & 0xFFFFFFFF)


def _is(column: pd.Series, value: str) -> np.ndarray:
    """``column == value`` as a numpy mask (on a categorical's codes: no string compares)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if value not in categories:
            return np.zeros(len(column), bool)
        return column.cat.codes.to_numpy() == categories.index(value)
    return (column.astype(object) == value).to_numpy(bool)


def _thread_slices(host: _HostTables, tracks, flows, key: int, thread: int):
    calls = host.calls
    rows = host.calls_of(key)
    if _count(rows, len(calls)):
        codes, names = host.call_names
        yield (tracks.add(parent_uuid=thread, name="CUDA API"),
               Slices(calls["start_ns"].to_numpy()[rows], calls["end_ns"].to_numpy()[rows],
                      codes[rows], names, flow=flows.out[rows]))
    nested = host.ranges_of(key, host.nested)
    if _count(nested, len(host.ranges)):
        yield tracks.add(parent_uuid=thread, name="NVTX"), host.range_slices(nested)


def _async_ranges(host: _HostTables, tracks: TrackTree, pid: int, process: int):
    """start/end ranges (may cross threads) and marks, on the process."""
    mine = (host.range_threads >> 32) == pid
    spans = np.flatnonzero(mine & host.spans)
    if len(spans):
        yield (tracks.add(parent_uuid=process, name="NVTX start/end"),
               host.range_slices(spans))
    marks = np.flatnonzero(mine & host.marks)
    if len(marks):  # zero-length slices: instants would need a track of their own kind
        yield (tracks.add(parent_uuid=process, name="NVTX marks"),
               host.range_slices(marks, "(mark)", instant=True))


def _gpu_slices(profile: Profile, tracks: TrackTree, flows: LaunchFlows):
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import ProcessDescriptor

    work = _gpu_work(profile, flows)
    if not len(work["start_ns"]):
        return
    gpu_names = {g.device_id: g.name for g in profile.meta.gpus}
    # one track per (device, process, stream), in that order, as the JSON trace's
    rows_of = _RowsOf(work["track"])
    keys = np.asarray(pd.unique(work["track"]))
    streams = pd.DataFrame({"track": keys, "device_id": keys >> 56,
                            "pid": (keys >> 32) & 0xFFFFFF, "stream_id": keys & 0xFFFFFFFF})
    streams = streams.sort_values(["device_id", "pid", "stream_id"])
    shared = streams.groupby("device_id")["pid"].nunique().max() > 1
    for device, group in streams.groupby("device_id"):
        label = f"GPU {device}" + (f" ({gpu_names[device]})" if device in gpu_names else "")
        gpu = tracks.add(process=ProcessDescriptor(pid=GPU_PID_BASE + int(device),
                                                   process_name=label))
        for row in group.itertuples(index=False):
            rows = rows_of(row.track)
            name = f"Stream {row.stream_id}" + (f" (process {row.pid})" if shared else "")
            yield (tracks.add(parent_uuid=gpu, name=name),
                   Slices(work["start_ns"][rows], work["end_ns"][rows], work["codes"][rows],
                          work["names"], flow=work["flow"][rows],
                          terminating=work["terminating"][rows]))


def _gpu_work(profile: Profile, flows: LaunchFlows) -> dict[str, np.ndarray]:
    """Kernels then copies as columns: their track as one int64 (device << 56 | pid << 32 |
    stream), when, their name codes into one ``names`` array, and the launch flow each passes
    or ends."""
    parts, names = [], []
    for table_name in GPU_TABLES:
        table = profile.tables[table_name]
        if table.empty:
            continue
        codes, table_names = (_coded(table["name"], "(kernel)") if table_name == "kernels"
                              else _copy_coded(table))
        reaching, ends = flows.reaching[table_name], flows.last[table_name]
        parts.append({"track": _stream_keys(table), "start_ns": table["start_ns"].to_numpy(),
                      "end_ns": table["end_ns"].to_numpy(),
                      "codes": codes + sum(len(n) for n in names),
                      "flow": np.where(ends, 0, reaching).astype(np.uint64),
                      "terminating": np.where(ends, reaching, 0).astype(np.uint64)})
        names.append(table_names)
    if not parts:
        return {"start_ns": np.zeros(0, np.int64)}
    work = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts])
                                             for k in parts[0]}
    work["names"] = np.concatenate(names)
    return work


def _stream_keys(table: pd.DataFrame) -> np.ndarray:
    return ((table["device_id"].to_numpy(np.int64) << 56)
            | (table["pid"].to_numpy(np.int64) << 32)
            | (table["stream_id"].to_numpy(np.int64) & 0xFFFFFFFF))


def _copy_coded(copies: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Copies named "KIND DIRECTION" (as the JSON trace's), from the two columns' codes."""
    kinds, kind_names = _coded(copies["kind"], "copy")
    directions, direction_names = _coded(copies["direction"], "")
    names = [f"{k} {d}".strip() for k in kind_names for d in direction_names]
    return kinds * len(direction_names) + directions, np.array(names, object)


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
                      *_coded(pd.Series([f"iteration {i}" for i in group["iteration"]]), "")))
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
                      *_coded(group["layer"], "(layer)")))


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


# -- lanes and their packets ---------------------------------------------------------------

def _coded(series: pd.Series, missing: str) -> tuple[np.ndarray, np.ndarray]:
    """A column of names as (codes, names): row i is named ``names[codes[i]]``, ``missing``
    where absent. Categories give the codes for free; other columns are factorized."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy(np.int64)
        names = [str(c) for c in series.cat.categories]
    else:
        codes, uniques = pd.factorize(series)
        names = [str(u) for u in uniques]
    return np.where(codes < 0, len(names), codes), np.array(names + [missing], object)


def _descriptor_packets(tracks: TrackTree) -> bytes:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TracePacket

    return b"".join(packets.framed(TracePacket(track_descriptor=d).SerializeToString())
                    for d in tracks.descriptors)


def _lanes_of(uuid: int, slices: Slices, tracks: TrackTree) -> list[Lane]:
    """The track's slices split into lanes (lane 0 is the track itself; the others are added
    as tracks "TITLE 2", "TITLE 3", ... before any packet is written)."""
    start, end, columns = sorted_columns(slices)
    end = np.maximum(end, start)
    lane_of = lane_numbers(start, end)
    title = next(d.name for d in tracks.descriptors if d.uuid == uuid)
    out = []
    for lane in range(int(lane_of.max()) + 1 if len(lane_of) else 0):
        mine = np.flatnonzero(lane_of == lane) if lane or lane_of.any() else slice(None)
        lane_uuid = uuid if lane == 0 else tracks.add(parent_uuid=uuid, name=f"{title} {lane + 1}")
        codes, flow, terminating = (c[mine] for c in columns)
        out.append(Lane(lane_uuid, start[mine], end[mine], codes, slices.names, flow,
                        terminating))
    return out


# -- memory counters: few rows, absolute timestamps on a sequence of their own --------------

def _counter_sequence_start(sequence_id: int) -> bytes:
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TracePacket

    return packets.framed(TracePacket(
        trusted_packet_sequence_id=sequence_id,
        sequence_flags=packets.INCREMENTAL_STATE_CLEARED).SerializeToString())


def _counter_packets(track: int, times: np.ndarray, values: np.ndarray, sequence_id: int) -> bytes:
    n = len(times)
    event = wire.varint_field(9, np.full(n, COUNTER))
    event += wire.varint_field(11, np.full(n, track, np.uint64))
    event += wire.varint_field(30, np.maximum(values, 0))
    packet = wire.varint_field(8, times) + wire.varint_field(10, np.full(n, sequence_id))
    packet += wire.message_field(11, event)
    return wire.to_bytes(wire.message_field(1, packet))
