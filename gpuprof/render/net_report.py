"""The ``gpuprof net`` report: per-connection traffic of a bpftrace capture.

Times are shown in milliseconds from the capture's start (bpftrace's BEGIN, once its probes
were attached), or from the first event where the capture does not record its start.
"""

from __future__ import annotations

import pandas as pd

from ..model.net_facts import NetCaptureFacts
from .report import Report, Section

NS_PER_MS = 1_000_000


def build_net_report(traffic: pd.DataFrame, facts: NetCaptureFacts, source: str,
                     title: str | None = None) -> Report:
    report = Report(title=title or f"Network capture: {source}", facts=net_facts(facts, source, traffic),
                    kind="net")
    warnings = _warnings(facts)
    if warnings:
        report.add(Section("warnings", "Warnings", notes=warnings))
    report.add(_connections_section(traffic, facts))
    return report


def net_facts(facts: NetCaptureFacts, source: str, traffic: pd.DataFrame) -> dict[str, str]:
    out = {
        "File": source,
        "Layout": facts.layout + (" (seed tracer: no bytes, no monotonic time)" if facts.layout == "seed" else ""),
        "Program": facts.program,
        "Clock": facts.clock,
        "Kernel filter": _filters(facts),
        "Events": f"{facts.events:,}",
        "Connections": f"{len(traffic):,}",
        "Lost events": f"{facts.lost_events:,}",
    }
    if facts.lost_runs:
        out["Lost runs"] = f"{facts.lost_runs:,}"
    if facts.truncated_lines or facts.unparsed_lines:
        out["Dropped lines"] = (f"{facts.truncated_lines} cut off at the end, "
                                f"{facts.unparsed_lines} unreadable")
    if facts.partial:
        out["Status"] = "PARTIAL: events are missing (see Warnings)"
    return out


def _filters(facts: NetCaptureFacts) -> str:
    parts = []
    if facts.ports:
        parts.append("ports " + ", ".join(map(str, facts.ports)))
    if facts.pids:
        parts.append("pids " + ", ".join(map(str, facts.pids)))
    if facts.layout == "seed":
        return "unknown (seed layout)"
    return "; ".join(parts) or "none (every TCP connection)"


def lost_runs_text(lost_runs: int) -> str:
    """What a runs capture that ran out of map room lost (this report's and perf --net's)."""
    return (f"the capture had no room for {lost_runs:,} runs of calls (more than its map "
            "holds in 100 ms)")


def _warnings(facts: NetCaptureFacts) -> list[str]:
    out = []
    if facts.lost_events:
        out.append(f"bpftrace lost {facts.lost_events:,} events (its buffers overflowed): calls and "
                   "bytes below are lower bounds. Filter by --port/--pid, or raise "
                   "BPFTRACE_PERF_RB_PAGES.")
    if facts.lost_runs:
        out.append(f"{lost_runs_text(facts.lost_runs)}: calls and bytes below are lower bounds.")
    if facts.truncated_lines:
        out.append("the file ends inside a line (the capture was killed while writing): "
                   "that line was dropped.")
    if facts.unparsed_lines:
        out.append(f"{facts.unparsed_lines:,} lines were neither events nor bpftrace messages and "
                   f"were skipped, e.g. {facts.unparsed_example!r}")
    return out


def _connections_section(traffic: pd.DataFrame, facts: NetCaptureFacts) -> Section:
    zero = _time_zero(traffic, facts)
    table = pd.DataFrame({
        "connection": [f"{la}:{lp} -> {ra}:{rp}" for la, lp, ra, rp in zip(
            traffic["local_addr"].astype(str), traffic["local_port"], traffic["remote_addr"].astype(str),
            traffic["remote_port"], strict=True)],
        # "comm (pid)": a pid is an id, not a quantity (no thousands separator)
        "process": [f"{comm} ({pid})" for comm, pid in zip(
            traffic["comm"].astype(str), traffic["pid"], strict=True)],
        "sends": traffic["sends"].astype("int64"),
        "recvs": traffic["recvs"].astype("int64"),
        "bytes sent": traffic["bytes_sent"],
        "bytes received": traffic["bytes_received"],
        "first (ms)": (traffic["first_ns"] - zero).astype("Float64") / NS_PER_MS,
        "last (ms)": (traffic["last_ns"] - zero).astype("Float64") / NS_PER_MS,
    })
    notes = ["One row per socket as one process saw it: a loopback connection shows from both ends."]
    if facts.layout == "seed":
        notes.append("The seed layout records no bytes and no monotonic time: those columns are empty.")
    else:
        notes.append("Times are ms from the capture's start" if facts.start_monotonic_ns >= 0
                     else "Times are ms from the first event")
    return Section("connections", "Traffic per connection", table=table, notes=notes)


def _time_zero(traffic: pd.DataFrame, facts: NetCaptureFacts) -> int:
    if facts.start_monotonic_ns >= 0:
        return facts.start_monotonic_ns
    first = traffic["first_ns"].dropna() if len(traffic) else pd.Series(dtype="Int64")
    return int(first.min()) if len(first) else 0
