"""Read a bpftrace network capture into the ``network_events`` table.

Two layouts (``gpuprof/bpf/__init__.py`` documents gpuprof's):
- gpuprof's own (``gpuprof net``, ``NetCapture``): the seed's columns plus BYTES, MONO_NS
  (CLOCK_MONOTONIC) and TID; '#' lines name the program, the filters and the start time.
- the seed tracer's text (``TIME PID COMM SADDR:SPORT DADDR:DPORT TIME(ms) SEND/RECV``): no
  bytes and no clock we can align (TIME(ms) counts from bpftrace's start, TIME is wall-clock
  seconds), so ``time_ns`` and ``bytes`` are -1 and the facts say so.

A capture killed mid-write ends inside a line: that line is dropped and counted, never read
as a shorter number. bpftrace's "Lost N events" lines are summed into the facts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import bpf
from ..errors import BadInputError
from ..model.net_facts import NetCaptureFacts
from ..model.tables import conform
from .net_columns import columns_of
from .net_run_maps import COLUMNS as RUN_COLUMNS
from .net_run_maps import MAP_PREFIX, read_run_maps

GPUPROF, SEED = "gpuprof", "seed"
DIRECTIONS = {"SEND": "send", "RECV": "recv"}
# bpftrace's and the seed script's own messages: expected, not unparsed lines
KNOWN_MESSAGES = ("Attaching ", "Tracing tcp", ". . .", "...")
RUN_PREFIX = "RUN "     # a run of calls, from the runs program's first layout
# runs: RUN lines (the runs program's first layout) or map entries (net_run_maps.py)
RUN_PREFIXES = (RUN_PREFIX, MAP_PREFIX)
SEED_CLOCK = ("none: the seed layout has no monotonic time (TIME(ms) counts from bpftrace's "
              "start, TIME is wall-clock seconds); time_ns and bytes are -1")
MONOTONIC_CLOCK = "CLOCK_MONOTONIC (bpftrace nsecs)"


def read_net_capture(path: str | Path) -> tuple[pd.DataFrame, NetCaptureFacts]:
    """The capture's events (``network_events``, sorted by time) and what is known about it."""
    lines, truncated = _read_lines(Path(path))
    facts = NetCaptureFacts(truncated_lines=truncated)
    run_lines = [line for line in lines if line.startswith(RUN_PREFIXES)]
    if run_lines:
        lines = [line for line in lines if not line.startswith(RUN_PREFIXES)]
    event_lines = [line for line in lines if _other_line(line, facts)]
    fast, rest = (columns_of(event_lines) if facts.layout == GPUPROF else (pd.DataFrame(), event_lines))
    rows = [row for line in rest if (row := _event_or_count(line, facts)) is not None]
    if not rows and fast.empty and not run_lines and not facts.layout:
        raise BadInputError(f"'{Path(path).name}' is not a bpftrace network capture (no event lines "
                            "and no TIME ... SEND/RECV header)",
                            "Pass a file written by 'gpuprof net' or by the seed's ebpf_trace.bt")
    facts.layout = facts.layout or _layout_of(rows)
    facts.clock = MONOTONIC_CLOCK if facts.layout == GPUPROF else SEED_CLOCK
    frame = _frame(fast, rows, _all_runs(run_lines, facts))
    facts.events = int(frame["calls"].clip(lower=0).sum())
    return frame, facts


def _all_runs(lines: list[str], facts: NetCaptureFacts) -> pd.DataFrame:
    """The runs of both layouts (a capture holds one of them)."""
    printed = _runs([line for line in lines if line.startswith(RUN_PREFIX)], facts)
    kept = read_run_maps([line for line in lines if line.startswith(MAP_PREFIX)], facts)
    return kept if printed.empty else printed if kept.empty else pd.concat([printed, kept])


def _runs(lines: list[str], facts: NetCaptureFacts) -> pd.DataFrame:
    """``RUN DIR PID TID LADDR:LPORT RADDR:RPORT FIRST_NS LAST_NS CALLS BYTES COMM`` lines (the
    runs program) as rows; COMM, last, may hold spaces. Captures made before the program
    printed addresses have bare ports there (addresses then empty)."""
    rows = []
    for line in lines:
        fields = line.rstrip().split(" ", 10)
        if len(fields) < 10 or fields[1] not in ("SEND", "RECV"):
            _count_unparsed(line.rstrip(), facts)
            continue
        try:
            (laddr, lport), (raddr, rport) = _run_endpoint(fields[4]), _run_endpoint(fields[5])
            pid, tid, first, last, calls, size = (int(f) for f in fields[2:4] + fields[6:10])
        except ValueError:
            _count_unparsed(line.rstrip(), facts)
            continue
        rows.append((first, pid, tid, fields[10] if len(fields) > 10 else "", laddr, lport,
                     raddr, rport, fields[1].lower(), size, last, calls))
    return pd.DataFrame.from_records(rows, columns=RUN_COLUMNS)


def _run_endpoint(text: str) -> tuple[str, int]:
    """'ADDR:PORT' (``_endpoint``) or, in captures older than the addresses, a bare port;
    ValueError for anything else."""
    if text.isdigit():
        return "", int(text)
    found = _endpoint(text)
    if found is None:
        raise ValueError(text)
    return found


def _read_lines(path: Path) -> tuple[list[str], int]:
    if not path.exists():
        raise BadInputError(f"capture file '{path}' not found", "Check the path")
    if path.is_dir():
        raise BadInputError(f"'{path}' is a directory, not a capture file", "Pass the capture's text file")
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    # the text after the last newline is a line cut off by a killed writer (or nothing)
    truncated = 1 if lines[-1].strip() else 0
    return lines[:-1], truncated


def _other_line(line: str, facts: NetCaptureFacts) -> bool:
    """True for a line that looks like an event (read later, in bulk); any other line is
    read into ``facts`` here (header, filters, lost events) or counted as unparsed."""
    text = line.rstrip()
    if not text:
        return False
    if bpf.EVENT_LINE.match(text):
        return True
    if text.startswith("#"):
        _comment(text, facts)
    elif text.startswith(bpf.COLUMNS[0] + " ") and "SEND/RECV" in text:
        facts.layout = GPUPROF if "MONO_NS" in text.split() else SEED
    elif match := bpf.LOST_LINE.match(text):
        facts.lost_events += int(match.group(1))
    elif not text.startswith(KNOWN_MESSAGES):
        _count_unparsed(text, facts)
    return False


def _event_or_count(line: str, facts: NetCaptureFacts) -> tuple | None:
    row = _event(line.rstrip(), facts.layout)
    if row is None:
        _count_unparsed(line.rstrip(), facts)
    return row


def _count_unparsed(text: str, facts: NetCaptureFacts) -> None:
    facts.unparsed_lines += 1
    facts.unparsed_example = facts.unparsed_example or text[:120]


def _comment(text: str, facts: NetCaptureFacts) -> None:
    values = bpf.parse_header(text)
    if text.startswith(bpf.HEADER_PREFIX):
        facts.program = values.get("program", facts.program)
        facts.start_monotonic_ns = _int(values.get("start_mono_ns"), -1)
        facts.start_wall = values.get("start_wall", "")
        facts.layout = GPUPROF
    elif "pids" in values:
        facts.pids = bpf.filter_values(values["pids"])
    elif "ports" in values:
        facts.ports = bpf.filter_values(values["ports"])


def _event(text: str, layout: str) -> tuple | None:
    """(time_ns, pid, tid, comm, laddr, lport, raddr, rport, direction, bytes) or None.

    Split from both ends: COMM is the only column that can hold spaces."""
    fields = text.split()
    if layout != SEED and len(fields) >= 10 and fields[-4].lstrip("*").upper() in DIRECTIONS:
        head, tail = fields[:2], fields[-7:]
        comm = " ".join(fields[2:-7])
        time_ns, nbytes, tid = _int(tail[5]), _int(tail[4]), _int(tail[6])
    elif layout != GPUPROF and len(fields) >= 7:
        head, tail = fields[:2], fields[-4:]
        comm = " ".join(fields[2:-4])
        time_ns, nbytes, tid = -1, -1, -1
    else:
        return None
    local, remote = _endpoint(tail[0]), _endpoint(tail[1])
    direction = DIRECTIONS.get(tail[3].lstrip("*").upper())
    pid = _int(head[1])
    if None in (local, remote, direction, pid, time_ns, nbytes, tid) or not comm:
        return None
    return (time_ns, pid, tid, comm, *local, *remote, direction, nbytes)


def _endpoint(text: str) -> tuple[str, int] | None:
    """'127.0.0.1:8000' -> ('127.0.0.1', 8000); IPv6 '::1:8000' splits at the last colon."""
    addr, sep, port = text.rpartition(":")
    number = _int(port)
    if not sep or not addr or number is None or not 0 <= number < 65536:
        return None
    return addr, number


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _layout_of(rows: list[tuple]) -> str:
    # no header line at all: the events themselves tell (the seed's carry no time)
    return SEED if rows and rows[0][0] == -1 else GPUPROF


COLUMNS = ["time_ns", "pid", "tid", "comm", "local_addr", "local_port", "remote_addr",
           "remote_port", "direction", "bytes"]


def _frame(fast: pd.DataFrame, rows: list[tuple], runs: pd.DataFrame) -> pd.DataFrame:
    slow = pd.DataFrame.from_records(rows, columns=COLUMNS) if rows else None
    calls = [p for p in (fast, slow) if p is not None and len(p)]
    # one call per row: its run is itself
    calls = [p.assign(last_ns=p["time_ns"], calls=1) for p in calls]
    parts = calls + ([runs] if len(runs) else [])
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else (
        parts[0] if parts else pd.DataFrame(columns=[*COLUMNS, "last_ns", "calls"]))
    # bpftrace drains one buffer per CPU, so lines from different CPUs arrive out of time order
    if len(frame) and (frame["time_ns"] >= 0).all():
        order = np.argsort(frame["time_ns"].to_numpy(), kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
    return conform("network_events", frame)
