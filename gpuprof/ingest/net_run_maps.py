"""The runs program's map entries (``gpuprof/bpf/net_runs.bt``) back into one row per run.

The program keeps finished runs in kernel maps and prints a map at a time, as bpftrace's
``print()`` writes it (``bpf.RUN_MAP_LINE``). The same run can be printed twice (the
program writes a run to both maps when the 100 ms tick switched them under it, and the stop
marker prints both maps), so one row is kept per key (socket, first time); the sentinel entry
(``bpf.RUN_SENTINEL``) only tells the program a map is not cleared yet. The rows are those of
the older ``RUN`` lines, which ``net_capture`` reads into the same ``COLUMNS``.

Two entry layouts: numbers only (``bpf.RUN_NUMBERS``: packed direction and ports, packed pid
and tid, last time, calls, bytes), with the process names and addresses in ``NAME`` and
``CONN`` lines printed once per thread and per connection; and the first one, every entry
carrying its name and addresses (``FULL_NUMBERS`` numbers, then COMM LADDR RADDR).
"""

from __future__ import annotations

import pandas as pd

from .. import bpf
from ..model.net_facts import NetCaptureFacts

MAP_PREFIX = "@"
# the lines of names and addresses that go with numbers-only entries
PREFIXES = (MAP_PREFIX, bpf.NAME_PREFIX, bpf.CONN_PREFIX)
DIRECTIONS = {1: "send", 2: "recv"}
FULL_NUMBERS = 9  # DIR PID TID LPORT RPORT FIRST_NS LAST_NS CALLS BYTES, then COMM LADDR RADDR
COLUMNS = ["time_ns", "pid", "tid", "comm", "local_addr", "local_port", "remote_addr",
           "remote_port", "direction", "bytes", "last_ns", "calls"]
U64 = 1 << 64   # bpftrace prints a socket address as signed in a key, as unsigned elsewhere


class _Strings:
    """The names (per pid, tid) and addresses (per socket, ports) of NAME and CONN lines."""

    def __init__(self) -> None:
        self.names: dict[tuple[int, int], str] = {}
        self.addrs: dict[tuple[int, int, int], tuple[str, str]] = {}

    def read(self, text: str) -> bool:
        """Takes a NAME or CONN line; False for anything else or a malformed one."""
        try:
            if text.startswith(bpf.NAME_PREFIX):
                _, pid, tid, comm = text.split(" ", 3)   # COMM may hold spaces
                self.names[(int(pid), int(tid))] = comm
                return True
            if text.startswith(bpf.CONN_PREFIX):
                _, sock, lport, rport, laddr, raddr = text.split(" ")
                self.addrs[(int(sock) % U64, int(lport), int(rport))] = (laddr, raddr)
                return True
        except ValueError:
            pass
        return False


def read_run_maps(lines: list[str], facts: NetCaptureFacts) -> pd.DataFrame:
    """One row per run (``COLUMNS``) from the ``@fin``/``@lost_runs``/NAME/CONN lines; the
    largest ``@lost_runs`` total goes to ``facts.lost_runs``; other lines count as unparsed."""
    strings, entries = _Strings(), []
    for line in lines:
        text = line.rstrip()
        if lost := bpf.LOST_RUNS_LINE.match(text):
            facts.lost_runs = max(facts.lost_runs, int(lost.group(1)))
        elif entry := bpf.RUN_MAP_LINE.match(text):
            entries.append((int(entry.group(1)) % U64, int(entry.group(2)), text, entry.group(3)))
        elif not strings.read(text):
            _unparsed(text, facts)
    # the strings may print after the entries that need them: entries are read second
    rows: dict[tuple[int, int], tuple] = {}
    for sock, first, text, values in entries:
        row = _run(sock, first, values, strings)
        if row is None:
            _unparsed(text, facts)
        elif row != ():
            rows.setdefault((sock, first), row)
    return pd.DataFrame.from_records(list(rows.values()), columns=COLUMNS)


def _run(sock: int, first: int, values: str, strings: _Strings) -> tuple | None:
    """The row of one entry's value, () for the sentinel, None when unreadable."""
    fields = values.split(", ")
    if len(fields) == bpf.RUN_NUMBERS:
        return _packed_run(sock, first, fields, strings)
    return _full_run(fields)


def _packed_run(sock: int, first: int, fields: list[str], strings: _Strings) -> tuple | None:
    """A numbers-only entry: its strings from the NAME and CONN lines ('' if none printed)."""
    try:
        kind_ports, pid_tid, last, calls, size = (int(f) for f in fields)
    except ValueError:
        return None
    kind, lport, rport = kind_ports >> 32, (kind_ports >> 16) & 0xFFFF, kind_ports & 0xFFFF
    if kind == bpf.RUN_SENTINEL:
        return ()
    if kind not in DIRECTIONS:
        return None
    pid, tid = pid_tid >> 32, pid_tid & 0xFFFFFFFF
    laddr, raddr = strings.addrs.get((sock, lport, rport), ("", ""))
    return (first, pid, tid, strings.names.get((pid, tid), ""), laddr, lport, raddr, rport,
            DIRECTIONS[kind], size, last, calls)


def _full_run(fields: list[str]) -> tuple | None:
    """An entry of the first layout. COMM, between the numbers and the two addresses, may
    hold ', '."""
    if len(fields) < FULL_NUMBERS + 3:
        return None
    try:
        kind, pid, tid, lport, rport, first, last, calls, size = (int(f) for f in fields[:FULL_NUMBERS])
    except ValueError:
        return None
    if kind == bpf.RUN_SENTINEL:
        return ()
    if kind not in DIRECTIONS:
        return None
    comm = ", ".join(fields[FULL_NUMBERS:-2])
    return (first, pid, tid, comm, fields[-2], lport, fields[-1], rport, DIRECTIONS[kind],
            size, last, calls)


def _unparsed(text: str, facts: NetCaptureFacts) -> None:
    facts.unparsed_lines += 1
    facts.unparsed_example = facts.unparsed_example or text[:120]
