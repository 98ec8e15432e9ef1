"""The report of a profiled program (``gpuprof run``, or a saved ``gpuprof.profile()`` run):
the inference summary as the FuriosaAI profiler prints it (ns, with n and the percentile
method), latency per record, the slowest operator types and the memory peaks."""

from __future__ import annotations

import pandas as pd

from ..analyze.memory import memory_timeline
from ..units import MIB, MICROSECONDS, NS_PER_US
from .report import Report, Section

TOP_OPERATORS = 15


def profile_report(run, facts: dict[str, str] | None = None) -> Report:
    report = Report("gpuprof run: inference profile", facts=dict(facts or {}))
    report.add(_summary_section(run))
    report.add(_records_section(run))
    if not run.layer_timings.empty:
        report.add(_operators_section(run))
    if run.num_rows("kernels"):
        report.add(_gpu_section(run))
    memory = _memory_section(run)
    if memory is not None:
        report.add(memory)
    return report


def _summary_section(run) -> Section:
    summary = run.summary("ns")
    attrs = summary.attrs
    table = pd.DataFrame({"statistic": summary.index,
                          "latency (ns)": [_whole(v) for v in summary["latency_ns"]]})
    notes = [f"n = {attrs['n']} inference calls; percentiles by numpy's "
             f"'{attrs['percentile_method']}' interpolation."]
    if attrs["unreliable"]:
        notes.append(f"Fewer than 10 samples lie beyond {', '.join(attrs['unreliable'])}: "
                     "read those as rough.")
    left_out = run.meta.extra.get("calls_left_out_paused", 0)
    if left_out:
        notes.append(f"{left_out} calls made while paused are left out.")
    if not len(run.iterations):
        notes.append(run.meta.absent.get("iterations", "No inference call was captured."))
    data = pd.DataFrame({"statistic": summary.index,
                         "latency_ns": summary["latency_ns"].astype("float64")})
    return Section("summary", "Inference summary", table, notes, data=data)


def _records_section(run) -> Section:
    stats = run.by_record()
    table = pd.DataFrame({"record": stats["record"], "inferences": stats["count"]})
    for column, label in [("mean", "mean"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99")]:
        table[f"{label} ({MICROSECONDS})"] = (stats[column] / NS_PER_US).round(1)
    return Section("records", "Latency per record", table,
                   ["Each inference belongs to the innermost record open on its thread."])


def _operators_section(run) -> Section:
    ops = run.operators()
    table = pd.DataFrame({"operator": ops["name"],
                          f"average ({MICROSECONDS})": (ops["average_elapsed_ns"] / NS_PER_US).round(2),
                          "count": ops["count"],
                          "total (ms)": (ops["total_ns"] / 1e6).round(3)})
    return Section("operators", "Operators (ONNX Runtime's per-node profile)", table,
                   ["Slowest average first."], max_rows=TOP_OPERATORS)


def _gpu_section(run) -> Section:
    """GPU kernels launched inside each record (an nsys capture joined with the run)."""
    from ..analyze.inference_reports import RECORD_DOMAIN

    ranges = run.gpu_time_by_range(RECORD_DOMAIN)
    table = pd.DataFrame({"record": ranges["name"], "calls": ranges["calls"],
                          "GPU total (ms)": (ranges["total_ns"] / 1e6).round(3),
                          f"GPU per call ({MICROSECONDS})": (ranges["mean_ns"] / NS_PER_US).round(1),
                          "kernels per call": ranges["kernels_per_call"].round(1),
                          "share": (ranges["share"] * 100).round(1)})
    return Section("gpu", "GPU time per record (nsys)", table,
                   ["Kernels count for the innermost record open on the thread that launched them."])


def _memory_section(run) -> Section | None:
    timeline = memory_timeline(run.memory_events)
    if timeline.empty:
        return None
    peaks = timeline.groupby(["source", "device_id"], observed=True)["used_bytes"].max().reset_index()
    table = pd.DataFrame({"memory": [_memory_name(s, d) for s, d in zip(peaks["source"], peaks["device_id"])],
                          "peak (MiB)": (peaks["used_bytes"] / MIB).round(1)})
    notes = [] if "gpu_memory" not in run.meta.absent else \
        [f"GPU memory: {run.meta.absent['gpu_memory']}."]
    return Section("memory", "Memory peaks", table, notes)


def _memory_name(source: str, device: int) -> str:
    if device < 0:
        return f"host ({source})"
    return f"GPU {device} ({source}, whole device)" if source == "nvml" else f"GPU {device} ({source})"


def _whole(value) -> object:
    return int(round(value)) if pd.notna(value) else value
