"""A ``Profile`` as a Chrome Trace Event Format file, for ui.perfetto.dev and chrome://tracing.

Layout, like the Nsight Systems timeline: one process per host process, with its threads as
tracks holding NVTX ranges and CUDA API calls; one process per GPU, with one track per stream
holding kernels and copies; an arrow from each API call to the GPU work it launched (same
correlation id); GPU memory in use as a counter track.

What an engine run (``gpuprof engine``: ONNX Runtime or TensorRT) captured goes on one more
host process, "run": a "timed iterations" track and a "layers" track per source, host memory
(process RSS) as a counter, and the run's phase changes as instant events. Layer timings that
carry durations only (TensorRT IProfiler) are laid out back to back within their iteration
and say so in their args.

Timestamps are microseconds relative to the earliest event, as floats with 3 decimals so that
nanosecond precision survives. Large traces are written event by event in chunks: the whole
document never exists as one string.

The Trace Event Format primitives (``meta_event``, ``complete_event``, ``flow_events``,
``trace_document``, ``write_trace_events``) are shared with every other trace gpuprof writes
(``triton_trace_json``), so there is one writer and one shape per event kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyze.common import first_event_ns
from ..fsutil import atomic_write
from ..model import Profile
from ..units import MIB

# Synthetic pids for GPU processes, above any real pid (nsys keeps 24 bits of a pid).
GPU_PID_BASE = 1 << 24
# Synthetic pid of the host process holding an engine run's tracks: below the GPU pids and
# above any real Linux pid (pid_max is at most 2**22), so it meets neither.
RUN_PID = GPU_PID_BASE - 1
PLACED_SEQUENTIALLY = "sequential (profiler gives durations only)"
RunTracks = dict[tuple[str, str], int]  # (table, source) -> tid on the run process
FLOW_CATEGORY = "launch"
CHUNK_EVENTS = 20_000


def to_chrome_trace(profile: Profile, origin_ns: int | None = None) -> dict:
    """The whole trace as one dict (small profiles, tests); see ``write_chrome_trace``."""
    return trace_document(list(iter_events(profile, origin_ns)))


def write_chrome_trace(profile: Profile, path: str | Path, origin_ns: int | None = None) -> Path:
    """Write the trace as JSON, atomically, streaming events in chunks.

    ``origin_ns`` is the run's time zero when the caller has it (``Run.time_zero``); None finds
    it (``first_event_ns``)."""
    return write_trace_events(path, iter_events(profile, origin_ns))


# -- Trace Event Format primitives (shared with triton_trace_json) -------------------------

def trace_document(events: list[dict], display_time_unit: str = "ns",
                   other_data: dict | None = None) -> dict:
    """The JSON object form of a trace: events plus the viewer's display unit."""
    return {"traceEvents": events, **_document_head(display_time_unit, other_data)}


def write_trace_events(path: str | Path, events: Iterable[dict], display_time_unit: str = "ns",
                       other_data: dict | None = None) -> Path:
    """Write ``trace_document(events, ...)`` as JSON, atomically, streaming events in chunks."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    head = encode(_document_head(display_time_unit, other_data))
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(head[:-1] + ',"traceEvents":[\n')  # the head object, left open
        first = True
        for chunk in _chunks(iter(events), CHUNK_EVENTS):
            # one encoder call per chunk: per-event calls cost more than the encoding itself
            handle.write(("" if first else ",\n") + encode(chunk)[1:-1])
            first = False
        handle.write("\n]}\n")
    return Path(path)


def _document_head(display_time_unit: str, other_data: dict | None) -> dict:
    head: dict = {"displayTimeUnit": display_time_unit}
    if other_data:
        head["otherData"] = other_data
    return head


def meta_event(name: str, pid: int, tid: int, args: dict) -> dict:
    """Metadata (``ph: M``): process/thread names and sort order."""
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}


def complete_event(name: str, cat: str, pid: int, tid: int, ts: float, dur: float,
                   args: dict | None = None) -> dict:
    """A slice with start and duration (``ph: X``), in trace microseconds."""
    event = {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": ts, "dur": dur}
    if args is not None:
        event["args"] = args
    return event


def flow_events(flow_id: int | str, name: str, cat: str, source: tuple[int, int, float],
                target: tuple[int, int, float]) -> tuple[dict, dict]:
    """An arrow from (pid, tid, ts) ``source`` to ``target``; the target end binds to the slice
    enclosing it (``bp: e``), as viewers expect for launch and request links."""
    common = {"name": name, "cat": cat, "id": flow_id}
    (src_pid, src_tid, src_ts), (dst_pid, dst_tid, dst_ts) = source, target
    return (common | {"ph": "s", "pid": src_pid, "tid": src_tid, "ts": src_ts},
            common | {"ph": "f", "bp": "e", "pid": dst_pid, "tid": dst_tid, "ts": dst_ts})


def _chunks(events: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_events(profile: Profile, origin_ns: int | None = None) -> Iterator[dict]:
    """Every trace event of ``profile``: metadata first, then slices, flows and counters, in
    µs from ``origin_ns`` (None: the run's first event)."""
    clock = _Clock(first_event_ns(profile.tables) if origin_ns is None else origin_ns)
    gpu_tracks = _gpu_tracks(profile)
    run_tracks = _run_tracks(profile)
    yield from _host_metadata(profile)
    yield from _run_metadata(profile, run_tracks)
    yield from _gpu_metadata(profile, gpu_tracks)
    yield from _nvtx_events(profile.nvtx_ranges, clock)
    yield from _api_events(profile.api_calls, clock, _has_return_values(profile))
    yield from _gpu_events(_kernels_with_launches(profile), gpu_tracks, clock, _kernel_names,
                           _kernel_args)
    yield from _gpu_events(profile.copies, gpu_tracks, clock, _copy_names, _copy_args)
    yield from _flow_events(profile, gpu_tracks, clock)
    yield from _iteration_events(profile.iterations, run_tracks, clock)
    yield from _layer_events(profile, run_tracks, clock)
    yield from _memory_counters(profile.memory_events, clock)
    yield from _phase_markers(profile.memory_events, clock)


class _Clock:
    """Converts ns on the session clock to trace microseconds from the run's time zero."""

    def __init__(self, origin_ns: int):
        self.origin_ns = origin_ns

    def us(self, ns: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(ns, dtype=np.int64) - self.origin_ns) / 1000.0, 3)

    @staticmethod
    def dur_us(start: np.ndarray, end: np.ndarray) -> np.ndarray:
        return np.round(np.maximum(np.asarray(end) - np.asarray(start), 0) / 1000.0, 3)


# -- tracks -------------------------------------------------------------------------------

def _gpu_tracks(profile: Profile) -> pd.DataFrame:
    """One track per (device, process, stream): its trace pid and tid."""
    keys = ["device_id", "pid", "stream_id"]
    frames = [t[keys] for t in (profile.kernels, profile.copies) if not t.empty]
    if not frames:
        return pd.DataFrame(columns=keys + ["trace_pid", "trace_tid"])
    tracks = pd.concat(frames).drop_duplicates().sort_values(keys).reset_index(drop=True)
    tracks["trace_pid"] = GPU_PID_BASE + tracks["device_id"].astype(np.int64)
    tracks["trace_tid"] = tracks.groupby("device_id").cumcount() + 1
    return tracks


def _host_metadata(profile: Profile) -> Iterator[dict]:
    host = pd.concat([t[["pid", "tid"]] for t in (profile.api_calls, profile.nvtx_ranges)])
    host = host.drop_duplicates().sort_values(["pid", "tid"])
    for index, pid in enumerate(host["pid"].unique()):
        yield meta_event("process_name", int(pid), 0, {"name": f"Process {pid}"})
        yield meta_event("process_sort_index", int(pid), 0, {"sort_index": index})
    for pid, tid in host.itertuples(index=False):
        yield meta_event("thread_name", int(pid), int(tid), {"name": f"Thread {tid}"})
        yield meta_event("thread_sort_index", int(pid), int(tid), {"sort_index": int(tid)})


def _gpu_metadata(profile: Profile, gpu_tracks: pd.DataFrame) -> Iterator[dict]:
    gpu_names = {g.device_id: g.name for g in profile.meta.gpus}
    memory_devices = profile.memory_events["device_id"]
    # device -1 is host memory (process RSS): it goes on the run process, not on a "GPU -1"
    devices = set(gpu_tracks["device_id"]) | set(memory_devices[memory_devices >= 0])
    for device in sorted(int(d) for d in devices):
        label = f"GPU {device}" + (f" ({gpu_names[device]})" if device in gpu_names else "")
        yield meta_event("process_name", GPU_PID_BASE + device, 0, {"name": label})
        # after every host process, in device order
        yield meta_event("process_sort_index", GPU_PID_BASE + device, 0,
                    {"sort_index": GPU_PID_BASE + device})
    # name the process only when several share a GPU: their stream ids may then repeat
    shared = bool(len(gpu_tracks)) and gpu_tracks.groupby("device_id")["pid"].nunique().max() > 1
    for row in gpu_tracks.itertuples(index=False):
        label = f"Stream {row.stream_id}" + (f" (process {row.pid})" if shared else "")
        yield meta_event("thread_name", int(row.trace_pid), int(row.trace_tid), {"name": label})
        yield meta_event("thread_sort_index", int(row.trace_pid), int(row.trace_tid),
                    {"sort_index": int(row.trace_tid)})


# -- host side ----------------------------------------------------------------------------

def _nvtx_events(ranges: pd.DataFrame, clock: _Clock) -> Iterator[dict]:
    if ranges.empty:
        return
    columns = zip(ranges["range_kind"].astype(object).tolist(),
                  _labels(ranges["text"], "(unnamed range)"), _labels(ranges["domain"], "nvtx"),
                  ranges["pid"].tolist(), ranges["tid"].tolist(),
                  clock.us(ranges["start_ns"]).tolist(),
                  clock.us(ranges["end_ns"]).tolist(),
                  (ranges["end_ns"] >= ranges["start_ns"]).tolist(), strict=True)
    for index, (kind, text, domain, pid, tid, start, end, ended) in enumerate(columns):
        base = {"name": text, "cat": domain, "pid": pid, "tid": tid, "ts": start}
        if kind == "mark":
            yield base | {"ph": "i", "s": "t"}
        elif kind == "push_pop" and ended:
            yield complete_event(text, domain, pid, tid, start, round(end - start, 3))
        elif kind == "start_end" and ended:
            # start/end ranges may cross threads and overlap: async slices, not nested ones
            async_id = f"nvtx{index}"
            yield base | {"ph": "b", "id": async_id}
            yield base | {"ph": "e", "id": async_id, "ts": end}


def _has_return_values(profile: Profile) -> bool:
    """False for an nsys export read (or saved) without its details: its return values were
    not read, and the column's fill must not show as every call succeeding."""
    return profile.meta.extra.get("details", True) is not False


def _api_events(calls: pd.DataFrame, clock: _Clock, returns: bool = True) -> Iterator[dict]:
    if calls.empty:
        return
    values = calls["return_value"].tolist() if returns else [None] * len(calls)
    columns = zip(_labels(calls["name"], "(CUDA API)"), calls["pid"].tolist(),
                  calls["tid"].tolist(), clock.us(calls["start_ns"]).tolist(),
                  clock.dur_us(calls["start_ns"], calls["end_ns"]).tolist(),
                  calls["correlation_id"].tolist(), values, strict=True)
    for name, pid, tid, ts, dur, corr, ret in columns:
        args = {"correlation_id": corr} if ret is None else {"correlation_id": corr,
                                                             "return_value": ret}
        yield complete_event(name, "cuda_api", pid, tid, ts, dur, args)


# -- GPU side -----------------------------------------------------------------------------

def _with_tracks(table: pd.DataFrame, gpu_tracks: pd.DataFrame) -> pd.DataFrame:
    return table.merge(gpu_tracks, on=["device_id", "pid", "stream_id"], how="left", sort=False)


def _gpu_events(table: pd.DataFrame, gpu_tracks: pd.DataFrame, clock: _Clock,
                names_of, args_of) -> Iterator[dict]:
    if table.empty:
        return
    rows = _with_tracks(table, gpu_tracks)
    columns = zip(names_of(rows), rows["trace_pid"].tolist(), rows["trace_tid"].tolist(),
                  clock.us(rows["start_ns"]).tolist(),
                  clock.dur_us(rows["start_ns"], rows["end_ns"]).tolist(), args_of(rows),
                  strict=True)
    for name, pid, tid, ts, dur, args in columns:
        yield complete_event(name, "gpu", pid, tid, ts, dur, args)


LAUNCH_ARGS = ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z",
               "registers_per_thread", "shared_memory_bytes")


def _kernels_with_launches(profile: Profile) -> pd.DataFrame:
    """Kernels with their launch configuration columns (-1 where it was not captured); the
    kernels alone when no configuration was read (their args then have none)."""
    if profile.kernel_launches.empty:
        return profile.kernels
    launches = profile.kernel_launches.set_index("kernel_row")[list(LAUNCH_ARGS)]
    filled = launches.reindex(range(len(profile.kernels)), fill_value=-1)
    return profile.kernels.join(filled.reset_index(drop=True))


def _kernel_names(rows: pd.DataFrame) -> list[str]:
    return _labels(rows["name"], "(kernel)")


def _kernel_args(rows: pd.DataFrame) -> Iterator[dict]:
    ids = zip(rows["correlation_id"].tolist(), rows["stream_id"].tolist(),
              _labels(rows["demangled_name"], ""), strict=True)
    launches = (zip(*(rows[c].tolist() for c in LAUNCH_ARGS), strict=True)
                if LAUNCH_ARGS[0] in rows else repeat(None))
    for (corr, stream, demangled), launch in zip(ids, launches):
        args = {"correlation_id": corr, "stream_id": stream, "demangled_name": demangled}
        if launch is not None and launch[0] >= 0:  # -1: this kernel's was not captured
            gx, gy, gz, bx, by, bz, regs, smem = launch
            args |= {"grid": f"({gx}, {gy}, {gz})", "block": f"({bx}, {by}, {bz})",
                     "registers_per_thread": regs, "shared_memory_bytes": smem}
        yield args


def _copy_names(rows: pd.DataFrame) -> list[str]:
    return [f"{kind} {direction}".strip() for kind, direction in zip(
        _labels(rows["kind"], "copy"), _labels(rows["direction"], ""), strict=True)]


def _copy_args(rows: pd.DataFrame) -> Iterator[dict]:
    columns = zip(rows["bytes"].tolist(), _labels(rows["kind"], ""),
                  _labels(rows["direction"], ""), rows["correlation_id"].tolist(),
                  rows["stream_id"].tolist(), strict=True)
    for size, kind, direction, corr, stream in columns:
        yield {"bytes": size, "kind": kind, "direction": direction, "correlation_id": corr,
               "stream_id": stream}


def _flow_events(profile: Profile, gpu_tracks: pd.DataFrame, clock: _Clock) -> Iterator[dict]:
    """An arrow from each API call to each kernel or copy with its correlation id."""
    calls = profile.api_calls[["pid", "tid", "correlation_id", "start_ns"]]
    # correlation id 0 is CUPTI's "none": it links nothing (as align.nvtx.match_calls)
    calls = calls[calls["correlation_id"] > 0].drop_duplicates(["pid", "correlation_id"])
    work = [t[["device_id", "pid", "stream_id", "correlation_id", "start_ns"]]
            for t in (profile.kernels, profile.copies) if not t.empty]
    if calls.empty or not work:
        return
    gpu = _with_tracks(pd.concat(work, ignore_index=True), gpu_tracks)
    pairs = gpu.merge(calls, on=["pid", "correlation_id"], suffixes=("_gpu", "_api"))
    columns = zip(pairs["pid"].tolist(), pairs["tid"].tolist(), pairs["trace_pid"].tolist(),
                  pairs["trace_tid"].tolist(), clock.us(pairs["start_ns_api"]).tolist(),
                  clock.us(pairs["start_ns_gpu"]).tolist(), strict=True)
    for flow_id, (pid, tid, gpu_pid, gpu_tid, t_api, t_gpu) in enumerate(columns, start=1):
        yield from flow_events(flow_id, "launch", FLOW_CATEGORY, (pid, tid, t_api),
                               (gpu_pid, gpu_tid, t_gpu))


def _memory_counters(events: pd.DataFrame, clock: _Clock) -> Iterator[dict]:
    """Memory in use per (source, device, memory kind) after each event, as a counter (MiB)
    named where the memory lives ("GPU 0 device memory (nsys)", "host pinned memory (nsys)")."""
    from ..analyze.memory import memory_timeline

    timeline = memory_timeline(events)
    names = memory_counter_names(timeline)
    ts = clock.us(timeline["time_ns"])
    columns = zip(timeline["source"].astype(object), timeline["device_id"],
                  timeline["memory_kind"].astype(object), timeline["used_bytes"], ts, strict=True)
    for source, device, kind, used, t in columns:
        yield {"ph": "C", "name": names[(source, device, kind)], "pid": _memory_pid(device),
               "tid": 0, "ts": float(t), "args": {"MiB": round(int(used) / MIB, 3)}}


def memory_counter_names(timeline: pd.DataFrame) -> dict[tuple, str]:
    """(source, device, kind) of a memory timeline -> its counter's name, where the memory
    lives ("GPU 0 device memory (nsys)", "host pinned memory (nsys)"); shared by both trace
    formats."""
    from ..analyze.memory import ONE_KIND
    from .memory_labels import memory_labels

    keys = timeline[["source", "device_id", "memory_kind"]].drop_duplicates()
    return {key: (f"{'GPU' if key[1] >= 0 else 'Host'} memory ({key[0]})" if key[2] == ONE_KIND
                  else f"{label} memory ({key[0]})")
            for key, label in zip(keys.itertuples(index=False, name=None), memory_labels(keys),
                                  strict=True)}


def _memory_pid(device: int) -> int:
    """Host memory (device -1) on the run process, GPU memory on its GPU's process."""
    return GPU_PID_BASE + int(device) if device >= 0 else RUN_PID


def _phase_markers(events: pd.DataFrame, clock: _Clock) -> Iterator[dict]:
    """Each phase change a memory source recorded, as an instant over its whole process."""
    from ..analyze.memory import is_phase_marker

    markers = events[is_phase_marker(events)]
    columns = zip(_labels(markers["phase"], "(phase)"), _labels(markers["source"], ""),
                  markers["device_id"].tolist(), clock.us(markers["time_ns"]).tolist(),
                  strict=True)
    for phase, source, device, ts in columns:
        yield {"ph": "i", "s": "p", "name": phase, "cat": "phase", "pid": _memory_pid(device),
               "tid": 0, "ts": ts, "args": {"source": source}}


# -- engine run (host side of gpuprof engine) ---------------------------------------------

def _run_tracks(profile: Profile) -> RunTracks:
    """One track per (table, source): timed iterations first, then layers."""
    keys = [("iterations", source) for source in _sources(profile.iterations)]
    keys += [("layer_timings", source) for source in _sources(profile.layer_timings)]
    return {key: tid for tid, key in enumerate(keys, start=1)}


def _sources(table: pd.DataFrame) -> list[str]:
    return sorted(set(_labels(table["source"], "(unknown source)")))


def _run_metadata(profile: Profile, run_tracks: RunTracks) -> Iterator[dict]:
    if not run_tracks and not (profile.memory_events["device_id"] < 0).any():
        return
    label = f"{profile.meta.tool} run" if profile.meta.tool else "run"
    yield meta_event("process_name", RUN_PID, 0, {"name": label})
    # after every real host process, before the GPUs
    yield meta_event("process_sort_index", RUN_PID, 0, {"sort_index": RUN_PID})
    titles = {"iterations": "timed iterations", "layer_timings": "layers"}
    for (table, source), tid in run_tracks.items():
        yield meta_event("thread_name", RUN_PID, tid, {"name": f"{titles[table]} ({source})"})
        yield meta_event("thread_sort_index", RUN_PID, tid, {"sort_index": tid})


def _iteration_events(iterations: pd.DataFrame, run_tracks: RunTracks,
                      clock: _Clock) -> Iterator[dict]:
    """One slice per timed iteration; the stage times it has (-1: not measured) as args."""
    rows = iterations[iterations["start_ns"] >= 0]  # an iteration without a start has no place
    stages = [(f"{col[:-3]}_us", rows[col].tolist())
              for col in ("latency_ns", "h2d_ns", "compute_ns", "d2h_ns")]
    columns = zip(rows["iteration"].tolist(), _labels(rows["source"], "(unknown source)"),
                  clock.us(rows["start_ns"]).tolist(),
                  clock.dur_us(rows["start_ns"], rows["end_ns"]).tolist(), strict=True)
    for index, (iteration, source, ts, dur) in enumerate(columns):
        args = {name: round(values[index] / 1000.0, 3) for name, values in stages
                if values[index] >= 0}
        yield complete_event(f"iteration {iteration}", "iteration", RUN_PID,
                             run_tracks[("iterations", source)], ts, dur, args)


def _layer_events(profile: Profile, run_tracks: RunTracks, clock: _Clock) -> Iterator[dict]:
    """One slice per layer timing, on its source's track."""
    layers = _placed_layers(profile.layer_timings, profile.iterations, clock.origin_ns)
    durations = layers["duration_ns"].clip(lower=0)
    columns = zip(_labels(layers["layer"], "(layer)"), _labels(layers["layer_type"], ""),
                  _labels(layers["source"], "(unknown source)"), layers["iteration"].tolist(),
                  clock.us(layers["placed_ns"]).tolist(), np.round(durations / 1000.0, 3).tolist(),
                  layers["sequential"].tolist(), strict=True)
    for name, layer_type, source, iteration, ts, dur, sequential in columns:
        args = {"iteration": iteration}
        if layer_type:
            args["layer_type"] = layer_type
        if sequential:
            args["placed"] = PLACED_SEQUENTIALLY
        yield complete_event(name, "layer", RUN_PID, run_tracks[("layer_timings", source)], ts,
                             dur, args)


def _placed_layers(layers: pd.DataFrame, iterations: pd.DataFrame, origin_ns: int) -> pd.DataFrame:
    """``layers`` with ``placed_ns`` (where the slice starts) and ``sequential``.

    A row with a start keeps it. Rows without one (a profiler that gives durations only) are
    laid back to back in table order -- the order the profiler reported them -- within their
    (source, iteration): from that iteration's start in ``iterations`` where it has one, else
    right after the previous such iteration of the source, the first at ``origin_ns``.
    """
    out = layers.assign(placed_ns=layers["start_ns"], sequential=layers["start_ns"] < 0)
    loose = out[out["sequential"]]
    if loose.empty:
        return out
    frame = pd.DataFrame({"source": _labels(loose["source"], ""),
                          "iteration": loose["iteration"].to_numpy(),
                          "duration": loose["duration_ns"].clip(lower=0).to_numpy()},
                         index=loose.index)
    keys = ["source", "iteration"]
    before = frame.groupby(keys, sort=False)["duration"].cumsum() - frame["duration"]
    bases = frame[keys].merge(_iteration_bases(frame, iterations, origin_ns), on=keys,
                              how="left", sort=False)["base"]  # a left merge keeps row order
    out.loc[frame.index, "placed_ns"] = bases.to_numpy() + before.to_numpy()
    return out


def _iteration_bases(frame: pd.DataFrame, iterations: pd.DataFrame,
                     origin_ns: int) -> pd.DataFrame:
    """Per (source, iteration) of ``frame``: ``base``, where its first layer goes."""
    totals = frame.groupby(["source", "iteration"], sort=True)["duration"].sum().reset_index()
    timed = iterations[iterations["start_ns"] >= 0].groupby("iteration")["start_ns"].min()
    start = totals["iteration"].map(timed)
    # iterations the timed table lacks follow one another from the first event, per source
    length = totals["duration"].where(start.isna(), 0)
    after_previous = length.groupby(totals["source"]).cumsum() - length
    totals["base"] = start.fillna(origin_ns + after_previous).astype(np.int64)
    return totals[["source", "iteration", "base"]]


def _labels(series: pd.Series, missing: str) -> list[str]:
    """A column of names as Python strings, ``missing`` where absent (one pass, no per-row
    checks: traces hold millions of kernels)."""
    values = series.astype(object)
    return values.where(values.notna(), missing).astype(str).tolist()
