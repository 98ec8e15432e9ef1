"""Capture TCP send/recv calls with bpftrace, on CLOCK_MONOTONIC, into a text file.

    cap = NetCapture(ports=[8000], out=Path("net.txt"))
    cap.start()              # returns once the probes are attached
    ... traffic ...
    result = cap.stop()      # NetCaptureResult: path, program, events, lost events, ...

bpftrace runs unbuffered (``-B none``) with its standard output going straight into ``out``,
so every line is on disk as soon as it is printed: Ctrl-C or a kill keeps what was captured,
and nothing in Python sits between the kernel's buffers and the file (a slow reader would
make bpftrace lose events). bpftrace runs in its own process group and never outlives
gpuprof: ``stop()`` (SIGINT, then SIGKILL to the group), an atexit hook, SIGTERM/SIGHUP
handlers, and a parent-death signal that kills it even when gpuprof itself is SIGKILLed.
Start a capture from a thread that lives as long as the capture (the main thread): Linux sends
the parent-death signal when the *thread* that started the child ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import bpf
from ..errors import CaptureError
from . import children
from .net_preflight import choose_program, system_facts

STDERR_NOISE = ("couldn't set RLIMIT_MEMLOCK",)  # bpftrace's harmless start-up warning
BUFFER_PAGES_ENV = "BPFTRACE_PERF_RB_PAGES"


@dataclass
class NetCaptureResult:
    path: Path
    program: str                    # "tracepoint" or "kprobe": which one ran
    lost_events: int                # summed from bpftrace's "Lost N events" lines
    events_written: int             # complete event lines in the file
    started_monotonic_ns: int       # bpftrace's nsecs when its probes were attached
    stopped_monotonic_ns: int       # time.monotonic_ns() when stop() began
    pids: tuple[int, ...]
    ports: tuple[int, ...]
    exit_code: int | None           # bpftrace's exit code (negative: killed by that signal)
    killed: bool                    # it did not stop on SIGINT in time and was SIGKILLed
    truncated_lines: int            # 1 when the file ends inside a line (a killed writer)
    synced: bool                    # bpftrace had written every event up to stop() (see bpf/)
    warnings: list[str] = field(default_factory=list)  # bpftrace's stderr, noise removed
    lost_runs: int = 0              # runs the runs program had no map room for


@dataclass
class NetCapture(children.Child):
    """One bpftrace capture. ``pids``/``ports`` filter in the kernel (empty: everything)."""

    ports: Sequence[int] = ()
    pids: Sequence[int] | None = None
    out: Path = Path("net.txt")
    program: str = "auto"           # auto | tracepoint | kprobe
    runs: bool = False              # one line per run of same-direction calls (net_runs.bt)
    attach_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    sync_timeout_s: float = 10.0    # how long stop() waits for bpftrace to catch up
    buffer_pages: int | None = None  # perf ring pages per CPU (bpftrace's default: 64)
    run_slots: int = bpf.RUN_SLOTS  # runs the runs program keeps per 100 ms tick (tests shrink it)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _err_path: Path | None = field(default=None, init=False, repr=False)
    _ran: str = field(default="", init=False, repr=False)
    _started_ns: int = field(default=-1, init=False, repr=False)
    _offset: int = field(default=0, init=False, repr=False)
    _sync_id: int = field(default=0, init=False, repr=False)
    result: NetCaptureResult | None = field(default=None, init=False)  # set by stop()

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.ports = tuple(self.ports or ())
        self.pids = tuple(self.pids or ())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def program_ran(self) -> str:
        return self._ran

    def start(self) -> None:
        """Start bpftrace and return once its probes are attached (its BEGIN has printed)."""
        if self._proc is not None:
            return
        self._sync_id = bpf.SYNC_ID_MIN + secrets.randbelow(bpf.SYNC_ID_MIN)
        args = bpf.program_args(self.pids or (), self.ports, self._sync_id, self.run_slots)
        self._ran = choose_program(self.program, system_facts())
        self.out.parent.mkdir(parents=True, exist_ok=True)
        # runs are written by the tracepoint program only; the kprobe one prints every call
        name = "runs" if self.runs and self._ran == "tracepoint" else self._ran
        cmd = ["bpftrace", "-B", "none", str(bpf.program_path(name)), *args]
        fd, err = tempfile.mkstemp(prefix="gpuprof-bpftrace-", suffix=".log")
        self._err_path = Path(err)
        with open(self.out, "wb") as out, os.fdopen(fd, "wb") as err_file:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=err_file, stdin=subprocess.DEVNULL, env=self._env(),
                start_new_session=True, preexec_fn=children.die_with_parent(signal.SIGKILL))
        children.register(self)
        self._offset = 0
        try:
            self._started_ns = self._wait_attached()
        except BaseException:
            self.stop()
            raise

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[bpf.MAP_KEYS_ENV] = str(bpf.MAP_KEYS)  # the runs program's maps (default 4096)
        if self.buffer_pages:
            env[BUFFER_PAGES_ENV] = str(self.buffer_pages)
        return env

    def _wait_attached(self) -> int:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.attach_timeout_s
        while time.monotonic() < deadline:
            header = _capture_header(self.out)
            if header is not None:
                return header
            if proc.poll() is not None:
                raise CaptureError(f"bpftrace exited with code {proc.returncode} while starting: "
                                   f"{'; '.join(self._stderr_lines()) or 'no message'}",
                                   "Check the message; run as root with tracefs mounted")
            time.sleep(0.02)
        raise CaptureError(f"bpftrace had not attached its probes after {self.attach_timeout_s:.0f} s",
                           "The machine may be overloaded; try again")

    def new_lines(self) -> list[str]:
        """Complete lines written since the last call (for printing the capture live)."""
        try:
            with open(self.out, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> NetCaptureResult | None:
        """SIGINT bpftrace, SIGKILL its group after ``stop_timeout_s``; the capture's result
        (also kept in ``result``; None when it was never started)."""
        stopped_ns = time.monotonic_ns()
        proc, self._proc = self._proc, None
        children.unregister(self)
        if proc is None:
            return self.result
        killed = synced = False
        if proc.poll() is None:
            try:
                synced = self._sync(proc)
                children.signal_group(proc, signal.SIGINT)
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                killed = True
                children.signal_group(proc, signal.SIGKILL)
                proc.wait(5)
            except BaseException:  # a second Ctrl-C while stopping: bpftrace still goes
                children.signal_group(proc, signal.SIGKILL)
                proc.wait(5)
                raise
        self.result = self._result(proc, stopped_ns, killed, synced)
        return self.result

    def _sync(self, proc: subprocess.Popen) -> bool:
        """Wait until bpftrace has written every event that happened before now: SIGINT makes
        it drop what it has not read from the kernel yet, and it lags under load."""
        with contextlib.suppress(OSError):
            os.getpgid(self._sync_id)  # no such process: only the program's marker probe sees it
        marker = bpf.SYNC_LINE.format(sync_id=self._sync_id).encode()
        deadline = time.monotonic() + self.sync_timeout_s
        position = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with open(self.out, "rb") as handle:
                start = max(0, position - len(marker))  # a marker may straddle two reads
                handle.seek(start)
                data = handle.read()
            if marker in data:
                return True
            position = start + len(data)
            time.sleep(0.01)
        return False

    def _result(self, proc: subprocess.Popen, stopped_ns: int, killed: bool,
                synced: bool) -> NetCaptureResult:
        counts = scan_capture(self.out)
        warnings = self._stderr_lines()
        if not synced:
            warnings.append("bpftrace had not written every event when it was stopped: "
                            "the last events may be missing")
        if self._err_path:
            with contextlib.suppress(OSError):
                self._err_path.unlink()
        return NetCaptureResult(
            path=self.out, program=self._ran, lost_events=counts.lost_events,
            events_written=counts.events, started_monotonic_ns=self._started_ns,
            stopped_monotonic_ns=stopped_ns, pids=tuple(self.pids or ()), ports=tuple(self.ports),
            exit_code=proc.returncode, killed=killed, truncated_lines=counts.truncated_lines,
            synced=synced, warnings=warnings, lost_runs=counts.lost_runs)

    def _stderr_lines(self, keep: int = 10) -> list[str]:
        if not self._err_path or not self._err_path.exists():
            return []
        with open(self._err_path, errors="replace") as handle:
            lines = (line.strip() for line in handle)
            return list(deque((ln for ln in lines if ln and not any(n in ln for n in STDERR_NOISE)),
                              maxlen=keep))


@dataclass
class CaptureCounts:
    events: int = 0
    lost_events: int = 0
    truncated_lines: int = 0
    lost_runs: int = 0


def scan_capture(path: Path) -> CaptureCounts:
    """Count event lines (runs: map entries, a run printed twice counted twice) and lost
    events in a capture file without parsing the events."""
    counts = CaptureCounts()
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                counts.truncated_lines += 1
                break
            line = raw.decode("utf-8", errors="replace")
            if bpf.EVENT_LINE.match(line) or line.startswith("RUN "):
                counts.events += 1
            elif (entry := bpf.RUN_MAP_LINE.match(line)) and entry.group(2) != "0":
                counts.events += 1   # the sentinel's key is (0, 0)
            elif match := bpf.LOST_LINE.match(line):
                counts.lost_events += int(match.group(1))
            elif match := bpf.LOST_RUNS_LINE.match(line):
                counts.lost_runs = max(counts.lost_runs, int(match.group(1)))
    return counts


def _capture_header(path: Path) -> int | None:
    """bpftrace's nsecs at BEGIN once the column header is written (BEGIN runs after every
    probe is attached), else None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = [handle.readline() for _ in range(8)]
    except OSError:
        return None
    start = next((bpf.parse_header(ln) for ln in head if ln.startswith(bpf.HEADER_PREFIX)), None)
    attached = any(ln.startswith(bpf.COLUMNS[0] + " ") and ln.endswith("\n") for ln in head)
    if start is None or not attached:
        return None
    return int(start.get("start_mono_ns", -1))


