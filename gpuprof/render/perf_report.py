"""perf_analyzer-compatible CSV, the per-window CSV and the terminal report of ``gpuprof perf``.

The CSV's first columns are perf_analyzer's ``-f`` columns, same names, same order, same units
(integer microseconds, truncated like perf_analyzer; Inferences/Second as a float); gpuprof's
extra columns come after them, so tools that read perf_analyzer CSVs by name or position keep
working. Rows are in level order (perf_analyzer sorts them by throughput).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..fsutil import atomic_write
from .report import Report, Section

LEVEL_COLUMN = {"concurrency": "Concurrency", "request_rate": "Request Rate"}
# perf_analyzer's -f columns after the level column, and where each comes from (ns)
PA_COLUMNS = {
    "Inferences/Second": "throughput_infer_s",
    "Client Send": "send_ns",
    "Network+Server Send/Recv": "network_misc_ns",
    "Server Queue": "server_queue_ns",
    "Server Compute Input": "server_compute_input_ns",
    "Server Compute Infer": "server_compute_infer_ns",
    "Server Compute Output": "server_compute_output_ns",
    "Client Recv": "receive_ns",
    "p50 latency": "latency_p50_ns",
    "p90 latency": "latency_p90_ns",
    "p95 latency": "latency_p95_ns",
    "p99 latency": "latency_p99_ns",
}
EXTRA_COLUMNS = {
    "p97 latency": "latency_p97_ns",
    "p99.9 latency": "latency_p99.9_ns",
    "Avg latency": "latency_mean_ns",
    "Samples": "samples",
    "Errors": "errors",
    "Stable": "stable",
}
COUNT_COLUMNS = {"samples", "errors", "stable"}


def perf_analyzer_frame(table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The CSV table: level column, perf_analyzer's columns, then gpuprof's extras."""
    out = pd.DataFrame({LEVEL_COLUMN[mode]: [_level(v) for v in table["level"]]})
    for name, source in {**PA_COLUMNS, **EXTRA_COLUMNS}.items():
        if source == "throughput_infer_s":
            out[name] = table[source].astype("float64").round(4)
        elif source in COUNT_COLUMNS:
            out[name] = table[source].astype("int64")
        else:
            out[name] = [_usec(v) for v in table[source]]
    return out


def _level(value: float):
    return int(value) if float(value).is_integer() else value


def _usec(ns) -> int | str:
    """Whole microseconds, truncated as perf_analyzer does; empty when unknown. Means and
    interpolated percentiles are floats a few ulps from their exact value; rounding to
    1e-6 ns first keeps one that is exactly on a µs (10,733,000 ns) from reading 10732."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return ""
    return int(round(float(ns), 6) // 1000)


def write_perf_csv(table: pd.DataFrame, mode: str, path: str | Path) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        perf_analyzer_frame(table, mode).to_csv(handle, index=False)
    return Path(path)


def windows_frame(windows: pd.DataFrame) -> pd.DataFrame:
    """The per-window time series with display units (seconds from the run start, µs)."""
    out = windows[["level", "trial", "counted"]].copy()
    out["start_s"] = (windows["start_ns"] - windows["run_start_ns"]) / 1e9
    out["duration_ms"] = windows["duration_ns"] / 1e6
    for col in ("requests", "errors", "samples"):
        out[col] = windows[col].astype("int64")
    out["throughput_infer_s"] = windows["throughput_infer_s"]
    for col in ("latency_mean_ns", "latency_p50_ns", "latency_p90_ns", "latency_p95_ns",
                "latency_p97_ns", "latency_p99_ns", "latency_p99.9_ns", "send_ns", "receive_ns", "server_queue_ns",
                "server_compute_input_ns", "server_compute_infer_ns", "server_compute_output_ns"):
        # machine keys: snake_case with the unit (latency_p99_9_us)
        out[col.replace("_ns", "_us").replace(".", "_")] = windows[col] / 1e3
    out["server_requests"] = windows["server_requests"]
    return out


def write_windows_csv(windows: pd.DataFrame, path: str | Path) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        windows_frame(windows).to_csv(handle, index=False)  # full precision, for programs
    return Path(path)


def perf_report(table: pd.DataFrame, facts: dict[str, str], notes: list[str],
                mode: str, joined: pd.DataFrame | None = None) -> Report:
    """The terminal/Markdown report: one row per level, latencies in ms."""
    report = Report("gpuprof perf: Triton load test", facts=facts, kind="perf")
    if table.empty:
        notes = ["no load level was measured", *notes]
    report.add(Section("levels", "Throughput and latency per load level", _display(table, mode),
                       notes=notes, data=None if table.empty else table.rename(
                           columns={"level": mode})))  # JSON: every metric, raw ns
    if joined is not None and not joined.empty:
        report.add(Section("trace", "Where a request's time goes (client + server trace, ms)",
                           _trace_display(joined), data=_trace_means_ns(joined), notes=[
                               "per-request means over the traced requests of all windows of "
                               "each level; the segments add up "
                               "to the client latency (to server, server receive, queue, compute "
                               "input, compute infer, server output, from server = response "
                               "send + wire + client read)", *batching_notes(joined)]))
        executions = execution_section(joined)
        if executions is not None:
            report.add(executions)
    return report


def execution_section(joined: pd.DataFrame) -> Section | None:
    """Model executions by how many traced requests shared them (dynamic batching)."""
    from ..analyze.executions import by_size, execution_table

    table = execution_table(joined)
    if table.empty or int(table["requests"].max()) < 2:
        return None
    sizes = by_size(table)
    shown = pd.DataFrame({"requests per execution": sizes["requests"].astype("int64"),
                          "executions": sizes["executions"].astype("int64"),
                          "requests": sizes["total_requests"].astype("int64"),
                          "rows (mean)": sizes["rows"],
                          "compute ms (mean)": sizes["compute_ns"] / 1e6})
    data = pd.DataFrame({"requests_per_execution": sizes["requests"].astype("int64"),
                         "executions": sizes["executions"].astype("int64"),
                         "requests": sizes["total_requests"].astype("int64"),
                         "rows_mean": sizes["rows"].astype("float64"),
                         "compute_mean_ns": sizes["compute_ns"].astype("float64")})
    return Section("executions", "Model executions shared by requests (dynamic batching)",
                   shown, data=data, notes=[
                       "requests with the same COMPUTE_START and COMPUTE_END (to the ns) ran "
                       "in one model execution; compute = COMPUTE_START to COMPUTE_END of the "
                       "execution; rows = the batch rows of its traced requests (first dim of "
                       "each request's input as sent); compute_share = a request's rows / its "
                       "execution's rows",
                       "traced requests only: with a sampled trace (--trace-rate > 1) an "
                       "execution's untraced requests are not counted"])


def batching_notes(joined: pd.DataFrame) -> list[str]:
    """How many requests shared a model execution (dynamic batching), from the trace."""
    known = joined.dropna(subset=["execution_id"])
    if known.empty:
        return []
    shared = known[known["execution_requests"] > 1]
    if shared.empty:
        return [f"each of the {len(known)} traced requests ran in its own model execution"]
    return [f"{len(shared)} of {len(known)} traced requests shared a model execution with "
            f"others (dynamic batching; up to {int(shared['execution_requests'].max())} per "
            f"execution, {known['execution_id'].nunique()} executions); each request's "
            "compute_share in the per-request CSV is its batch rows over all rows of its "
            "execution (table 'executions')"]


def _display(table: pd.DataFrame, mode: str) -> pd.DataFrame | None:
    if table.empty:
        return None
    out = pd.DataFrame({LEVEL_COLUMN[mode]: [_level(v) for v in table["level"]]})
    out["infer/s"] = table["throughput_infer_s"]
    for label in ("p50", "p90", "p95", "p97", "p99", "p99.9"):
        out[f"{label} ms"] = table[f"latency_{label}_ns"] / 1e6
    out["samples"] = table["samples"].astype("int64")
    out["client ms"] = (table["send_ns"] + table["receive_ns"]) / 1e6
    out["net+srv ms"] = table["network_misc_ns"] / 1e6
    out["queue ms"] = table["server_queue_ns"] / 1e6
    out["compute ms"] = (table["server_compute_input_ns"] + table["server_compute_infer_ns"]
                         + table["server_compute_output_ns"]) / 1e6
    out["stable"] = ["yes" if s else "no" for s in table["stable"]]
    return out


def _trace_means_ns(joined: pd.DataFrame) -> pd.DataFrame:
    """The trace section for programs: per level, requests and mean segment times in ns."""
    from ..analyze.perf_trace import SEGMENTS

    cols = ["client_latency_ns", *SEGMENTS]
    means = joined.groupby("level", sort=True)[cols].mean().astype("float64")
    means.columns = [f"mean_{c}" for c in cols]
    means.insert(0, "requests", joined.groupby("level", sort=True).size())
    return means.reset_index()


def _trace_display(joined: pd.DataFrame) -> pd.DataFrame:
    from ..analyze.perf_trace import SEGMENTS

    cols = ["client_latency_ns", *SEGMENTS]
    summary = joined.groupby("level", sort=True)[cols].mean().astype("float64") / 1e6
    summary.columns = [c.removesuffix("_ns").replace("_", " ") for c in cols]
    summary.insert(0, "requests", joined.groupby("level", sort=True).size())
    return summary.reset_index()
