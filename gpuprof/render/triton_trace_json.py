"""Triton request stages as a Chrome/Perfetto trace (Trace Event Format, JSON).

One process per model, slices (``ph: "X"``, microseconds as floats on Triton's CLOCK_MONOTONIC,
so they line up with other monotonic sources) per stage. Concurrent requests of a model go to
separate lanes; each lane has a "network" thread (END_TO_END, HTTP/gRPC receive and send) and a
"server" thread (REQUEST, QUEUE, COMPUTE...), because REQUEST_END can fall after the send
starts and overlapping slices on one thread do not nest. Flow arrows link each ensemble/BLS
parent request to its children.

Events are built and written with ``chrome_trace``'s Trace Event Format primitives.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import pandas as pd

from ..model.triton_stages import END_TO_END, FRONTEND_PREFIXES, STAGES
from .chrome_trace import (
    complete_event,
    flow_events,
    meta_event,
    trace_document,
    write_trace_events,
)

THREADS_PER_LANE = 3   # network, server, other (unknown timestamp pairs)
NETWORK, SERVER, OTHER = range(THREADS_PER_LANE)
DISPLAY_TIME_UNIT = "ms"
OTHER_DATA = {"source": "gpuprof triton", "clock": "CLOCK_MONOTONIC"}


def chrome_trace(requests: pd.DataFrame) -> dict:
    """The Trace Event Format document for a ``requests`` table."""
    return trace_document(trace_events(requests), DISPLAY_TIME_UNIT, OTHER_DATA)


def write_chrome_trace(path: str | Path, requests: pd.DataFrame) -> Path:
    return write_trace_events(path, trace_events(requests), DISPLAY_TIME_UNIT, OTHER_DATA)


def trace_events(requests: pd.DataFrame) -> list[dict]:
    """Every event of the trace: per model, its metadata and slices; then the flow arrows."""
    events: list[dict] = []
    spans = requests.astype({"source": "object", "model": "object", "stage": "object"})
    placed = []
    for pid, (model, group) in enumerate(spans.groupby("model", sort=True), start=1):
        events.append(meta_event("process_name", pid, 0, {"name": f"triton: {model}"}))
        events.append(meta_event("process_sort_index", pid, 0, {"sort_index": pid}))
        group = group.merge(_lanes(group), on=["source", "trace_id"]).assign(pid=pid)
        events += _model_events(pid, group)
        placed.append(group)
    if placed:
        events += _flows(pd.concat(placed, ignore_index=True))
    return events


def _model_events(pid: int, spans: pd.DataFrame) -> list[dict]:
    spans = spans.sort_values(["start_ns", "end_ns"], ascending=[True, False], kind="stable")
    kinds = {stage: _thread_kind(stage) for stage in spans["stage"].unique()}
    tids = _tid(spans["lane"], spans["stage"].map(kinds).astype("int64"))
    events = [meta_event("thread_name", pid, int(tid), {"name": _thread_name(int(tid))})
              for tid in sorted(tids.unique())]
    args = _args(spans)
    # plain loops over columns: building a dict per slice is the cost, so keep it to that
    for name, tid, start, end, arg in zip(spans["stage"].tolist(), tids.tolist(),
                                          spans["start_ns"].tolist(), spans["end_ns"].tolist(), args):
        events.append(complete_event(name, "triton", pid, tid, start / 1000.0,
                                     (end - start) / 1000.0, arg))
    return events


def _flows(spans: pd.DataFrame) -> list[dict]:
    """An arrow from each parent request (its server thread) to each child's first stage."""
    key = ["source", "trace_id"]
    first = spans.groupby(key).agg(start=("start_ns", "min"), pid=("pid", "first"),
                                   lane=("lane", "first"), parent_id=("parent_id", "first"))
    first = first.reset_index()
    parents = first[key + ["pid", "lane"]].rename(
        columns={"trace_id": "parent_id", "pid": "parent_pid", "lane": "parent_lane"})
    links = first.merge(parents, on=["source", "parent_id"])
    events: list[dict] = []
    for n, link in enumerate(links.itertuples(index=False), start=1):
        ts = link.start / 1000.0
        events += flow_events(n, "child request", "triton",
                              (int(link.parent_pid), int(_tid(link.parent_lane, SERVER)), ts),
                              (int(link.pid), int(_tid(link.lane, SERVER)), ts))
    return events


def _args(spans: pd.DataFrame) -> list[dict]:
    out = []
    for trace_id, parent, version, request_id in zip(
            spans["trace_id"].tolist(), spans["parent_id"].tolist(),
            spans["model_version"].astype(str).tolist(), spans["request_id"].tolist()):
        arg = {"trace_id": trace_id, "model_version": version}
        if parent >= 0:
            arg["parent_id"] = parent
        if isinstance(request_id, str):
            arg["request_id"] = request_id
        out.append(arg)
    return out


def _lanes(spans: pd.DataFrame) -> pd.DataFrame:
    """Greedy interval partitioning: a request takes the first lane that is free when it starts."""
    extent = spans.groupby(["source", "trace_id"]).agg(start=("start_ns", "min"), end=("end_ns", "max"))
    extent = extent.sort_values(["start", "end"]).reset_index()
    free: list[tuple[int, int]] = []   # (end_ns, lane)
    lanes, count = [], 0
    for start, end in zip(extent["start"].tolist(), extent["end"].tolist()):
        if free and free[0][0] <= start:
            _, lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        heapq.heappush(free, (end, lane))
        lanes.append(lane)
    return extent[["source", "trace_id"]].assign(lane=lanes)


def _tid(lane, kind):
    # thread ids start at 1: some viewers treat tid 0 as the process itself
    return lane * THREADS_PER_LANE + kind + 1


def _thread_kind(stage: str) -> int:
    if stage == END_TO_END or stage.startswith(FRONTEND_PREFIXES):
        return NETWORK
    return SERVER if stage in STAGES else OTHER


def _thread_name(tid: int) -> str:
    lane, kind = divmod(tid - 1, THREADS_PER_LANE)
    return f"lane {lane} {('network', 'server', 'other')[kind]}"
