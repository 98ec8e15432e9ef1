"""A stopped ``gpuprof.profile()`` capture as a ``Profile``: records as NVTX ranges (domain
"gpuprof"), inference calls as ``iterations`` (source = the runtime entry point, tid = the
calling thread), ONNX Runtime's per-node profile as ``layer_timings`` and memory samples as
``memory_events``.

ONNX Runtime's profile is matched to the calls by order within each session (the k-th
``model_run`` is the k-th ``run``); a session whose counts differ is reported and its nodes
left out, never guessed. Its node times are put on the host clock by placing each
``model_run`` at its call's start (ORT's own clock is another one); the error is the time
between the wrapper's clock read and ORT starting its run, a few microseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..capture.pyprofile.capture import NVTX_DOMAIN, Captured
from ..capture.pyprofile.ort_hook import PAUSED, NodeSession
from ..errors import GpuprofError
from ..ingest.onnxruntime_profile import parse_events, read_events
from ..model import ClockDomain, Profile, RunMeta

TOOL = "gpuprof.profile"
NVML_SOURCE = "nvml"


def build_profile(captured: Captured, meta_extra: dict | None = None) -> Profile:
    recorder = captured.recorder
    calls = pd.DataFrame(recorder.calls, columns=["runtime", "start_ns", "end_ns", "tid"])
    layers, warnings = _node_layers(captured.node_sessions, calls)
    for message in warnings:
        recorder.warn(message)
    meta = RunMeta(tool=TOOL, clocks={"host": ClockDomain(
        "host", 0, "identity: every source here reads CLOCK_MONOTONIC")})
    meta.extra = {"pid": recorder.pid, "calls_left_out_paused": recorder.left_out,
                  "calls_that_raised": recorder.raised,
                  "warnings": list(recorder.warnings), **(meta_extra or {})}
    meta.absent = _absent(captured, calls, layers)
    tables = {"nvtx_ranges": _records(recorder.spans, recorder.pid),
              "iterations": _iterations(calls, recorder.compute_ns),
              "layer_timings": layers,
              "memory_events": pd.concat([captured.rss, _gpu_memory(captured.gpu_memory,
                                                                    recorder.pid)],
                                         ignore_index=True)}
    return Profile(tables=tables, meta=meta)


def _records(spans, pid: int) -> pd.DataFrame:
    frame = pd.DataFrame(spans, columns=["text", "start_ns", "end_ns", "tid"])
    return frame.assign(pid=pid, global_tid=-1, range_kind="push_pop", domain=NVTX_DOMAIN)


def _iterations(calls: pd.DataFrame, compute_ns: dict[int, int]) -> pd.DataFrame:
    index = np.arange(len(calls), dtype=np.int64)
    return pd.DataFrame({
        "iteration": index, "start_ns": calls["start_ns"], "end_ns": calls["end_ns"],
        "latency_ns": calls["end_ns"] - calls["start_ns"],
        "compute_ns": pd.Series(index).map(compute_ns).fillna(-1).astype("int64"),
        "source": calls["runtime"], "tid": calls["tid"]})


def _gpu_memory(rows: list[tuple[int, int, int]], pid: int) -> pd.DataFrame:
    """NVML readings as memory_events deltas per device (cumsum = used bytes)."""
    frame = pd.DataFrame(rows, columns=["time_ns", "device_id", "used"])
    frame["bytes"] = frame.groupby("device_id")["used"].diff().fillna(frame["used"]).astype("int64")
    frame["kind"] = np.where(frame.groupby("device_id").cumcount() == 0, "baseline", "sample")
    return frame.drop(columns="used").assign(pid=pid, source=NVML_SOURCE, address=-1)


def _node_layers(sessions: list[NodeSession], calls: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    frames, warnings = [], []
    for number, session in enumerate(sessions):
        if session.profile_file is None or not any(c != PAUSED for c in session.calls):
            continue
        try:
            ort = parse_events(read_events(session.profile_file))
        except GpuprofError as exc:
            warnings.append(f"ONNX Runtime session {number}: profile unreadable ({exc})")
            continue
        if len(ort.runs) != len(session.calls):
            warnings.append(f"ONNX Runtime session {number}: {len(ort.runs)} model_run events "
                            f"for {len(session.calls)} run() calls; its nodes are left out")
            continue
        frames.append(_placed(ort.layer_timings, ort.runs, np.asarray(session.calls), calls))
    if not frames:
        return pd.DataFrame(), warnings
    return pd.concat(frames, ignore_index=True), warnings


def _placed(layers: pd.DataFrame, runs: pd.DataFrame, call_of_run: np.ndarray,
            calls: pd.DataFrame) -> pd.DataFrame:
    """Nodes of kept runs, numbered by their call and moved onto the host clock."""
    call = call_of_run[layers["iteration"].to_numpy()]
    kept = call != PAUSED
    layers, call = layers[kept], call[kept]
    run_start = runs["start_ns"].to_numpy()[layers["iteration"].to_numpy()]
    host_start = calls["start_ns"].to_numpy()[call]
    return layers.assign(iteration=call, start_ns=layers["start_ns"].to_numpy() - run_start + host_start)


def _absent(captured: Captured, calls: pd.DataFrame, layers: pd.DataFrame) -> dict[str, str]:
    absent = {name: "gpuprof.profile() alone; run under `gpuprof run --nsys on` for the GPU side"
              for name in ("kernels", "api_calls", "copies")}
    if calls.empty:
        absent["iterations"] = "no inference call of a captured runtime was made while profiling"
    if layers.empty:
        absent["layer_timings"] = ("no per-node profile: ask for it with profile(ort_nodes=True) "
                                   "(ONNX Runtime sessions created inside the profile)")
    absent.update(captured.absent)
    return absent
