"""Process memory over time: a background thread samples this process's RSS.

Rows go into the ``memory_events`` table with ``source="process_rss"`` and ``device_id=-1``
(host). ``bytes`` holds the change since the previous row, so a cumulative sum over the rows
of this source is the RSS at each ``time_ns``: the first row (kind ``"baseline"``) carries the
whole RSS at start, later rows (kind ``"sample"``) the deltas. Phase changes are recorded as
zero-byte rows (kind ``"phase"``, ``detail`` = the phase name) so they never disturb the sum.
Every row carries the phase current when it was taken. Times are ``time.perf_counter_ns``
(CLOCK_MONOTONIC on Linux), the clock of the run's ``iterations`` table.

The interval can change per phase (``set_phase(phase, interval_s)``): the runner samples
every 10 ms while loading and warming up but only every 100 ms during the timed pass, because
on a small machine each wake-up of this thread can preempt one of ONNX Runtime's spinning
worker threads (measured: +3% latency at 10 ms on 2 cores, within noise at 100 ms).

On Linux RSS is read from ``/proc/<pid>/statm`` through a descriptor kept open (resident pages
x page size: exactly what ``psutil.Process.memory_info().rss`` returns, at ~4 us per sample
instead of ~40 us); elsewhere psutil is used.
"""

from __future__ import annotations

import os
import threading
import time

import pandas as pd

SOURCE = "process_rss"
DEFAULT_INTERVAL_S = 0.01
QUIET_INTERVAL_S = 0.1  # during timed passes: see the module docstring


class RssSampler:
    """Use as a context manager; ``set_phase`` between phases; ``table()`` after stopping.

    The thread only reads /proc (via psutil) and appends to a list, and it is always joined on
    exit -- including on KeyboardInterrupt -- so no thread outlives the run.
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, pid: int | None = None):
        self.interval_s = interval_s
        self.pid = pid or os.getpid()
        self._read_rss = _rss_reader(self.pid)
        self._rows: list[tuple[int, int, str, str, str]] = []  # time, rss, kind, phase, detail
        self._phase = "baseline"
        self._interval = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="gpuprof-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._record("baseline")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        close = getattr(getattr(self, "_read_rss", None), "close", None)
        if close:
            close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._record("sample")

    def set_phase(self, phase: str, interval_s: float | None = None) -> None:
        """Start ``phase``; sample every ``interval_s`` from now on (default: the initial one)."""
        with self._lock:
            self._phase = phase
            self._interval = interval_s or self.interval_s
        self._record("phase", detail=phase)
        self._record("sample")

    def sample(self) -> None:
        """Take one reading now, on the caller's thread, in the current phase."""
        self._record("sample")

    @property
    def phase(self) -> str:
        return self._phase

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._record("sample")

    def _record(self, kind: str, detail: str = "") -> None:
        rss = self._read_rss()
        with self._lock:
            self._rows.append((time.perf_counter_ns(), rss, kind, self._phase, detail))

    def table(self) -> pd.DataFrame:
        """The samples as ``memory_events`` rows (deltas; see the module docstring)."""
        with self._lock:
            rows = sorted(self._rows, key=lambda r: r[0])
        frame = pd.DataFrame(rows, columns=["time_ns", "rss", "kind", "phase", "detail"])
        # Phase rows are markers: they keep the previous RSS so their delta is exactly zero.
        level = frame["rss"].where(frame["kind"] != "phase").ffill().fillna(0).astype("int64")
        frame["bytes"] = level.diff().fillna(level).astype("int64")
        frame["device_id"], frame["pid"], frame["source"], frame["address"] = -1, self.pid, SOURCE, -1
        frame["detail"] = frame["detail"].replace("", pd.NA)
        return frame.drop(columns="rss")


class _StatmReader:
    """RSS from /proc/<pid>/statm (Linux): resident pages x page size, one pread per call."""

    def __init__(self, pid: int):
        self._fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def __call__(self) -> int:
        return int(os.pread(self._fd, 256, 0).split()[1]) * self._page

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _rss_reader(pid: int):
    try:
        return _StatmReader(pid)
    except (OSError, ValueError, AttributeError):  # not Linux, or /proc not mounted
        import psutil

        process = psutil.Process(pid)
        return lambda: process.memory_info().rss
