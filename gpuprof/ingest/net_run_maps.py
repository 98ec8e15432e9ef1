"""The runs program's map entries (``gpuprof/bpf/net_runs.bt``) back into one row per run.

The program keeps finished runs in kernel maps and prints a map at a time, as bpftrace's
``print()`` writes it (``bpf.RUN_MAP_LINE``). The same run can be printed twice (the
program writes a run to both maps when the 100 ms tick switched them under it, and the stop
marker prints both maps), so one row is kept per key (socket, first time); the sentinel entry
(``bpf.RUN_SENTINEL``) only tells the program a map is not cleared yet. The rows are those of
the older ``RUN`` lines, which ``net_capture`` reads into the same ``COLUMNS``.
"""

from __future__ import annotations

import pandas as pd

from .. import bpf
from ..model.net_facts import NetCaptureFacts

MAP_PREFIX = "@"
DIRECTIONS = {1: "send", 2: "recv"}
NUMBERS = 9  # DIR PID TID LPORT RPORT FIRST_NS LAST_NS CALLS BYTES, then COMM LADDR RADDR
COLUMNS = ["time_ns", "pid", "tid", "comm", "local_addr", "local_port", "remote_addr",
           "remote_port", "direction", "bytes", "last_ns", "calls"]


def read_run_maps(lines: list[str], facts: NetCaptureFacts) -> pd.DataFrame:
    """One row per run (``COLUMNS``) from the ``@fin``/``@lost_runs`` lines; the largest
    ``@lost_runs`` total goes to ``facts.lost_runs``; other lines count as unparsed."""
    rows: dict[tuple[int, int], tuple] = {}
    for line in lines:
        text = line.rstrip()
        if lost := bpf.LOST_RUNS_LINE.match(text):
            facts.lost_runs = max(facts.lost_runs, int(lost.group(1)))
            continue
        entry = bpf.RUN_MAP_LINE.match(text)
        row = _run(entry.group(3)) if entry else None
        if row is None:
            _unparsed(text, facts)
        elif row != ():
            rows.setdefault((int(entry.group(1)), int(entry.group(2))), row)
    return pd.DataFrame.from_records(list(rows.values()), columns=COLUMNS)


def _run(values: str) -> tuple | None:
    """The row of one entry's value, () for the sentinel, None when unreadable. COMM, between
    the numbers and the two addresses, may hold ', '."""
    fields = values.split(", ")
    if len(fields) < NUMBERS + 3:
        return None
    try:
        kind, pid, tid, lport, rport, first, last, calls, size = (int(f) for f in fields[:NUMBERS])
    except ValueError:
        return None
    if kind == bpf.RUN_SENTINEL:
        return ()
    if kind not in DIRECTIONS:
        return None
    comm = ", ".join(fields[NUMBERS:-2])
    return (first, pid, tid, comm, fields[-2], lport, fields[-1], rport, DIRECTIONS[kind],
            size, last, calls)


def _unparsed(text: str, facts: NetCaptureFacts) -> None:
    facts.unparsed_lines += 1
    facts.unparsed_example = facts.unparsed_example or text[:120]
