"""A trtexec console log, into facts about the engine, the device and trtexec's own summary.

trtexec prints ``[date-time] [I] Key: value`` lines. Their wording has been stable from
TensorRT 8.4 to 10.x (the fixtures hold both); what differs between versions is which lines
appear (8.x prints no ``Percentiles:`` option and only p99 in the summary, 10.x prints p90,
p95 and p99 and ``Created engine with size``). Only the lines named below are read: a line
that a version does not print is simply absent from the facts, never guessed.

``--dumpProfile`` adds a table (``=== Profile (N iterations ) ===``) of per-layer total,
average and median ms and share; it is returned as rows, the same fields as
``--exportProfile``'s JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError

_PREFIX = re.compile(r"^\[[^\]]*\]\s*\[[IWEV]\]\s*(?:\[TRT\]\s*)?")
_RUNNING = re.compile(r"^&&&& RUNNING TensorRT\.trtexec \[TensorRT v(?P<v>\d+)\].*?#\s*(?P<cmd>.*)$")

# fact name shown in reports -> pattern on a log line (prefix removed); first match wins
FACT_PATTERNS: dict[str, re.Pattern] = {
    "TensorRT version": re.compile(r"^TensorRT version:\s*(.+)$"),
    "Device": re.compile(r"^Selected Device:\s*(.+)$"),
    "Compute capability": re.compile(r"^Compute Capability:\s*(.+)$"),
    "SMs": re.compile(r"^SMs:\s*(\d+)$"),
    "Device memory": re.compile(r"^Device Global Memory:\s*(.+)$"),
    "Compute clock": re.compile(r"^(?:Application )?Compute Clock Rate:\s*(.+)$"),
    "Memory clock": re.compile(r"^(?:Application )?Memory Clock Rate:\s*(.+)$"),
    "Build precision": re.compile(r"^Precision:\s*(.+)$"),
    "CUDA Graph": re.compile(r"^CUDA Graph:\s*(.+)$"),
    "Data transfers": re.compile(r"^Data transfers:\s*(.+)$"),
    "Spin-wait": re.compile(r"^Spin-wait:\s*(.+)$"),
    "Engine size": re.compile(r"^Created engine with size:\s*(.+)$"),
    "Loaded engine size": re.compile(r"^Loaded engine size:\s*(.+)$"),
    "Engine built in": re.compile(r"^Engine built in\s*(.+?)\.?$"),
    "Throughput": re.compile(r"^Throughput:\s*(.+)$"),
    "Total host walltime": re.compile(r"^Total Host Walltime:\s*(.+)$"),
    "Total GPU compute time": re.compile(r"^Total GPU Compute Time:\s*(.+)$"),
}
# trtexec's performance summary lines: "Latency: min = 0.06 ms, max = ..., percentile(99%) = ..."
SUMMARY_METRICS = ("Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency")
_SUMMARY = re.compile(r"^(?P<metric>" + "|".join(SUMMARY_METRICS) + r"):\s*(?P<body>min = .*)$")
_STAT = re.compile(r"(?P<key>min|max|mean|median|percentile\((?P<q>[\d.]+)%\))\s*=\s*(?P<value>[-\d.e+]+)\s*ms")
_PROFILE_HEAD = re.compile(r"^=== Profile \((?P<n>\d+) iterations\s*\) ===$")
_PROFILE_ROW = re.compile(r"^(?P<time>[\d.]+)\s+(?P<avg>[\d.]+)\s+(?P<median>[\d.]+)\s+(?P<pct>[\d.]+)\s+(?P<name>.+?)\s*$")


@dataclass
class TrtexecLog:
    name: str
    command: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    # metric -> {"min": ms, "max": ms, "mean": ms, "median": ms, "p99": ms, ...}
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    profile_iterations: int | None = None
    # --dumpProfile rows: {"name", "timeMs", "averageMs", "medianMs", "percentage"}; no "Total"
    profile_rows: list[dict] = field(default_factory=list)


def read_trtexec_log(path: str | Path) -> TrtexecLog:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise BadInputError(f"cannot read {path.name} ({exc.strerror})", "Pass trtexec's console log") from exc
    log = TrtexecLog(name=path.name)
    in_profile = False
    for raw in lines:
        running = _RUNNING.match(raw)
        if running and log.command is None:
            log.command = running.group("cmd").strip()
        line = _PREFIX.sub("", raw).strip()
        in_profile = _profile_line(log, line, in_profile)
        if not in_profile:
            _fact_line(log, line)
    if log.command is None and not log.facts:
        raise BadInputError(f"{path.name} is not a trtexec log (no '&&&& RUNNING TensorRT.trtexec' line, "
                            "no device or TensorRT version line)", "Pass the console output of trtexec")
    return log


def _fact_line(log: TrtexecLog, line: str) -> None:
    summary = _SUMMARY.match(line)
    if summary and summary.group("metric") not in log.summary:
        log.summary[summary.group("metric")] = _stats(summary.group("body"))
        return
    for fact, pattern in FACT_PATTERNS.items():
        match = pattern.match(line)
        if match and fact not in log.facts:
            log.facts[fact] = match.group(1).strip()
            return


def _stats(body: str) -> dict[str, float]:
    out = {}
    for match in _STAT.finditer(body):
        key = f"p{float(match.group('q')):g}" if match.group("q") else match.group("key")
        out[key] = float(match.group("value"))
    return out


def _profile_line(log: TrtexecLog, line: str, in_profile: bool) -> bool:
    """Collect --dumpProfile's table; returns whether the next line is still inside it."""
    head = _PROFILE_HEAD.match(line)
    if head:
        log.profile_iterations = int(head.group("n"))
        return True
    if not in_profile:
        return False
    if line.startswith("Time(ms)"):
        return True
    row = _PROFILE_ROW.match(line)
    if row is None:
        return False
    if row.group("name") != "Total":
        log.profile_rows.append({"name": row.group("name"), "timeMs": float(row.group("time")),
                                 "averageMs": float(row.group("avg")), "medianMs": float(row.group("median")),
                                 "percentage": float(row.group("pct"))})
    return True
