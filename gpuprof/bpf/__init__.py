"""The bpftrace programs gpuprof ships, their parameters and the layout of what they print.

Both programs (``net_tracepoint.bt``, the default; ``net_kprobe.bt`` for kernels with kprobes
but without the ``sock:sock_*_length`` tracepoints) print the same thing:

    Attaching 4 probes...                      (bpftrace itself)
    # gpuprof-net program=tracepoint layout=1 start_mono_ns=... start_wall=...
    # filter pids=0,0,0,0
    # filter ports=8000,0,0,0,0,0,0,0
    TIME     PID     COMM  SADDR:SPORT  DADDR:DPORT  TIME(ms)  SEND/RECV  BYTES  MONO_NS  TID
    17:59:47 54643   image_client   127.0.0.1:33782   127.0.0.1:8000  2033  SEND  120  5426105980587  54650
    Lost 12 events                             (bpftrace, when its buffers overflowed)
    # sync 1073741999 5426205980587            (gpuprof's stop marker, see below)

The first seven columns are the seed tracer's (``TIME`` wall clock, ``TIME(ms)`` since bpftrace
started); ``BYTES`` is what the call moved and ``MONO_NS`` is bpftrace's ``nsecs``
(CLOCK_MONOTONIC, the clock of Python's ``time.monotonic_ns()`` and of Triton's traces).
``COMM`` may hold spaces, so a line is split from both ends. bpftrace drops the events it has
not yet read from the kernel when it is stopped, so before stopping it gpuprof calls
``getpgid(sync id)`` and waits for the program's ``# sync`` line: everything before that call
is then in the file. The capture (``capture/net.py``)
and the parser (``ingest/net_capture.py``) both read this module, so the layout is written once.

The runs program (``net_runs.bt``, what ``gpuprof perf --net`` runs) prints the same '#'
lines and header, then finished runs of calls as bpftrace prints its maps (``RUN_MAP_LINE``,
read by ``ingest/net_run_maps.py``) every 100 ms and at the sync marker; its header comment
says why and how a run is never lost unseen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import BadInputError

PROGRAMS = {"tracepoint": "net_tracepoint.bt", "kprobe": "net_kprobe.bt",
            # one line per run of same-direction calls on a socket (gpuprof perf --net)
            "runs": "net_runs.bt"}
MAX_PIDS = 4    # positional parameters $1..$4
MAX_PORTS = 8   # positional parameters $5..$12
# $13: the sync id, a number above any pid (pid_max is at most 2**22), so getpgid(id) fails
SYNC_ID_MIN = 1 << 30
SYNC_TRACEPOINT = "syscalls/sys_enter_getpgid"

HEADER_PREFIX = "# gpuprof-net "
COLUMNS = ("TIME", "PID", "COMM", "SADDR:SPORT", "DADDR:DPORT", "TIME(ms)", "SEND/RECV",
           "BYTES", "MONO_NS", "TID")
SEED_COLUMNS = COLUMNS[:7]
# an event line starts with the wall-clock time (what the seed's time("%H:%M:%S") prints)
EVENT_LINE = re.compile(r"^\d{2}:\d{2}:\d{2}\s")
LOST_LINE = re.compile(r"^Lost (\d+) events")
SYNC_LINE = "# sync {sync_id} "
# the runs program (net_runs.bt): finished runs as print() writes its maps' entries,
#   @fin0[SOCKET, FIRST_NS]: (DIR, PID, TID, LPORT, RPORT, FIRST_NS, LAST_NS, CALLS, BYTES, COMM, LADDR, RADDR)
# and its running total of runs it had no room for
RUN_MAP_LINE = re.compile(r"^@fin[01]\[(-?\d+), (\d+)\]: \((.*)\)$")
LOST_RUNS_LINE = re.compile(r"^@lost_runs: (\d+)$")
RUN_SENTINEL = 9         # DIR of the entry that marks a printed map bpftrace has not cleared
RUN_SLOTS = 60_000       # runs one map holds between two ticks ($14)
# bpftrace's size for every map (its default is 4096): room for RUN_SLOTS, the sentinel and
# the few runs that two CPUs can add past the check at once
MAP_KEYS_ENV, MAP_KEYS = "BPFTRACE_MAP_KEYS_MAX", 65_536


def program_path(name: str) -> Path:
    """The shipped program file for ``name`` ("tracepoint" or "kprobe")."""
    return Path(__file__).with_name(PROGRAMS[name])


def program_args(pids: Sequence[int] = (), ports: Sequence[int] = (), sync_id: int = 0,
                 run_slots: int = RUN_SLOTS) -> list[str]:
    """The programs' positional parameters: pids in $1..$4, ports in $5..$12 (0 = unused),
    the sync id in $13 (0 = none), the runs program's map size in $14 (the others ignore it)."""
    pids, ports = list(pids), list(ports)
    if len(pids) > MAX_PIDS:
        raise BadInputError(f"at most {MAX_PIDS} pids can be filtered in the kernel, got {len(pids)}",
                            "Filter by port instead, or capture everything and filter afterwards")
    if len(ports) > MAX_PORTS:
        raise BadInputError(f"at most {MAX_PORTS} ports can be filtered in the kernel, got {len(ports)}",
                            "Capture fewer ports at a time")
    for pid in pids:
        if not (isinstance(pid, int) and pid > 0):
            raise BadInputError(f"'{pid}' is not a process id", "Pass a positive integer")
    for port in ports:
        if not (isinstance(port, int) and 0 < port < 65536):
            raise BadInputError(f"'{port}' is not a TCP port", "Pass an integer from 1 to 65535")
    if sync_id and not SYNC_ID_MIN <= sync_id < 1 << 31:
        raise ValueError(f"sync id {sync_id} is not in [2**30, 2**31)")
    if not 0 < run_slots <= RUN_SLOTS:
        raise ValueError(f"run_slots {run_slots} is not in [1, {RUN_SLOTS}]")
    slots = (pids + [0] * (MAX_PIDS - len(pids)) + ports + [0] * (MAX_PORTS - len(ports))
             + [sync_id, run_slots])
    return [str(value) for value in slots]


def parse_header(line: str) -> dict[str, str]:
    """``key=value`` pairs of a ``# gpuprof-net`` or ``# filter`` line."""
    return dict(part.split("=", 1) for part in line.lstrip("#").split() if "=" in part)


def filter_values(text: str) -> list[int]:
    """'8000,0,0' -> [8000]: the used slots of a ``# filter`` value."""
    return [int(v) for v in text.split(",") if v.strip().isdigit() and int(v) != 0]
