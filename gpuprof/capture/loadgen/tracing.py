"""Switch a server's request tracing on for one run, then collect the files it wrote.

Uses the trace extension (``/v2/models/M/trace/setting``). The server must have been started
with a trace file (``--trace-config triton,file=PATH``; Triton no longer lets clients choose
the file at run time). We set level TIMESTAMPS, a sampling rate and no log frequency, so
Triton holds the traces while the load runs; putting the original settings back at the end
makes it write them. The files are on this machine: gpuprof only talks to loopback.

Why no log frequency: with tracing switched on through this API, tritonserver 2.51 writing
trace parts while thousands of HTTP requests a second go on crashed it in 4 of 14 runs even
at 1 in 15 or 1 in 150 requests traced; with no log frequency, 0 of 5
(tools/repro/triton_http_trace_crash.py --api model, docs/BENCHMARKS.md).

Whether a part is finished is told by parsing it; the parser is handed in (``check_part``,
``ingest.triton_trace.check_part`` through the composer), so capture imports no ingest. The
records it parses while waiting are kept and handed over (``take_parsed``), so the composer's
read of the trace parses each part once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import BadInputError
from .server_api import ServerAPI

LOG_FREQUENCY = 0   # write only when our setting is replaced (see the module's docstring)
# tritonserver 2.51 crashes or hangs now and then while it traces (upstream
# triton-inference-server/server#7795). The cause, read in its src/tracer.cc: TraceRelease
# holds a lock on a trace's own mutex while it may drop the last reference to that trace, then
# unlocks freed memory. Whether its reference is the last is a race each traced request runs
# (the HTTP reply against the backend's release), so the risk grows with the number of traced
# requests; no client setting avoids it. Each level therefore traces 1 in N requests, N chosen
# from the warm-up's rate to stay under this many traced requests a second (400 before: a
# traced 1:4 sweep of the fast `double` model then crashed the server 4 times in 8;
# docs/BENCHMARKS.md, tools/repro/perf_trace_soak.py).
TRACED_PER_S_CAP = 100
QUIET_RATE = 1_000_000          # during warm-ups: trace next to nothing
MIN_TRACE_WARMUP_S = 0.3        # long enough to measure the level's rate before tracing it
OPEN_STABLE_S = 0.3             # an open trace list unchanged this long is written out
RESTORED_KEYS = ("trace_level", "trace_rate", "log_frequency")
FLUSH_WAIT_S = 5.0


# path -> (whole JSON?, a list the server keeps open?, its records or None)
PartCheck = Callable[[Path], tuple[bool, bool, Any]]


class TraceSession:
    def __init__(self, api: ServerAPI, model: str, check_part: PartCheck, rate: int | None = None,
                 level: tuple[str, ...] = ("TIMESTAMPS",)):
        self.api, self.model, self.rate, self.level = api, model, rate, list(level)
        self.check_part = check_part
        self.original: dict = {}
        self.file: Path | None = None
        self.before: dict[Path, tuple[int, int]] = {}   # trace files as they were at start
        # per part, the (mtime ns, size) it was last parsed at and whether it was whole JSON
        # per part: the stamp last parsed, whole JSON?, an open list?, when that stamp was seen
        self.checked: dict[Path, tuple[tuple[int, int], bool, bool, float]] = {}
        self.parsed: dict[Path, Any] = {}  # whole parts' records, for the composer's read

    def start(self) -> TraceSession:
        current = _plain(self.api.trace_settings(self.model))
        trace_file = current.get("trace_file")
        if not trace_file:
            raise BadInputError(
                f"the server at {self.api.url} writes no trace file, so --trace cannot collect one",
                "Start it with --trace-config triton,file=PATH "
                "(gpuprof triton serve MODEL --trace-file PATH does this)")
        self.file = Path(trace_file)
        self.original = {k: current[k] for k in RESTORED_KEYS if k in current}
        self.before = self._stamps()
        self.api.update_trace_settings({"trace_level": self.level,
                                        # auto: next to none until a level's warm-up picks N
                                        "trace_rate": str(self.rate or QUIET_RATE),
                                        "log_frequency": str(LOG_FREQUENCY)}, self.model)
        return self

    def set_rate(self, rate: int | None) -> None:
        """Trace 1 in ``rate`` requests from now on (None: next to none, for warm-ups)."""
        self.api.update_trace_settings({"trace_rate": str(rate or QUIET_RATE)}, self.model)

    def finish(self) -> list[Path]:
        """Restore the settings, wait for the flush of the traces Triton still holds, and
        return this run's parts in index order.

        Restoring replaces our trace setting; Triton writes the traces it holds to a new part
        once the last request using it is released, so we wait for a part that was not there
        before the restore and for every new part to be whole, up to ``FLUSH_WAIT_S``.
        At that deadline every part is returned, whole or not: the composer's read keeps the
        complete objects of one cut short and reports the damage. A part is parsed while waiting
        only when it changed since its last check, and the records of each whole part are kept
        for ``take_parsed``, so each part is parsed once.
        """
        at_restore = set(self._stamps())  # the flush goes to a part that does not exist yet
        self.api.update_trace_settings(dict(self.original) or {"trace_level": ["OFF"]},
                                       self.model)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            stamps = self._new_stamps()
            flushed = any(path not in at_restore for path in stamps)
            # every part is checked (no short cut), so the records kept are those of its last stamp
            whole = [self._whole(p, s) for p, s in stamps.items()] if flushed else [False]
            if all(whole) or time.monotonic() > deadline:
                return sorted(stamps, key=_index)
            time.sleep(0.05)

    def take_parsed(self) -> dict[Path, Any]:
        """The records ``finish`` parsed, per part; the session lets go of them."""
        parsed, self.parsed = self.parsed, {}
        return parsed

    def _whole(self, path: Path, stamp: tuple[int, int]) -> bool:
        """Whether ``path`` is finished, parsing it only if its ``stamp`` is new: whole JSON,
        or a list the server keeps open (it closes it at shutdown) that holds only complete
        objects and has not changed for ``OPEN_STABLE_S``.

        The stamp is taken before the parse, so a part that grows during the parse has a new
        stamp at the next poll and is parsed again.
        """
        seen = self.checked.get(path)
        if seen is None or seen[0] != stamp:
            whole, open_list, records = self.check_part(path)
            self.checked[path] = seen = (stamp, whole, open_list, time.monotonic())
            if records is None:
                self.parsed.pop(path, None)
            else:
                self.parsed[path] = records
        _, whole, open_list, since = seen
        return whole or (open_list and time.monotonic() - since >= OPEN_STABLE_S)

    def _stamps(self) -> dict[Path, tuple[int, int]]:
        """``PATH`` and ``PATH.<n>`` with their (mtime ns, size)."""
        assert self.file is not None
        candidates = [self.file, *self.file.parent.glob(self.file.name + ".*")]
        out = {}
        for path in candidates:
            with contextlib.suppress(OSError):
                stat = path.stat()
                out[path] = (stat.st_mtime_ns, stat.st_size)
        return out

    def _new_stamps(self) -> dict[Path, tuple[int, int]]:
        """Files written or rewritten since ``start``: this run's traces (and maybe others')."""
        return {p: s for p, s in self._stamps().items() if self.before.get(p) != s}


def sample_rate(requests_per_s: float, cap: float = TRACED_PER_S_CAP) -> int:
    """1 in how many requests to trace so the server traces at most ``cap`` a second."""
    return max(1, math.ceil(requests_per_s / cap))


def _index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def _plain(settings: dict) -> dict:
    """HTTP returns {"k": "v" | [..]}; gRPC {"settings": {"k": {"value": [..]}}}: unify."""
    if "settings" in settings:
        settings = {k: v.get("value", []) for k, v in settings["settings"].items()}
    out = {}
    for key, value in settings.items():
        if key == "trace_level":
            out[key] = list(value) if isinstance(value, list) else [value]
        else:
            out[key] = value[0] if isinstance(value, list) and value else value
    return out
