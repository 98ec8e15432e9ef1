"""Switch a server's request tracing on for one run, then collect the files it wrote.

Uses the trace extension (``/v2/models/M/trace/setting``). The server must have been started
with a trace file (``--trace-config triton,file=PATH``; Triton no longer lets clients choose
the file at run time). We set level TIMESTAMPS, rate 1 and a log frequency, so Triton writes
``PATH.0``, ``PATH.1``, ... while we run; putting the original settings back at the end makes
it flush the remaining traces. The files are on this machine: gpuprof only talks to loopback.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd

from ...errors import BadInputError
from ...ingest import triton_trace
from .server_api import ServerAPI

LOG_FREQUENCY = 1000
RESTORED_KEYS = ("trace_level", "trace_rate", "log_frequency")
FLUSH_WAIT_S = 5.0
# what a part was read as: its records, why it is not a trace, or nothing (not whole)
_Records = triton_trace.PartRecords | BadInputError | None


class TraceSession:
    def __init__(self, api: ServerAPI, model: str):
        self.api, self.model = api, model
        self.original: dict = {}
        self.file: Path | None = None
        self.before: dict[Path, tuple[int, int]] = {}   # trace files as they were at start
        # per part, the (mtime ns, size) it was last parsed at, whether it was whole JSON and,
        # when it was, its records (or why it is not a trace) for ingest
        self.checked: dict[Path, tuple[tuple[int, int], bool, _Records]] = {}

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
        self.api.update_trace_settings({"trace_level": ["TIMESTAMPS"], "trace_rate": "1",
                                        "log_frequency": str(LOG_FREQUENCY)}, self.model)
        return self

    def finish(self) -> TraceParts:
        """Restore the settings and wait for the flush of the traces Triton still holds.

        Restoring replaces our trace setting; Triton writes its remaining traces to a new part
        ``PATH.<n>`` once the last request using it is released, so we wait for a part that was
        not there before the restore (up to ``FLUSH_WAIT_S``: a run whose trace count was an
        exact multiple of ``LOG_FREQUENCY`` has nothing left to flush) and for every new part
        to be whole. Each part is parsed while waiting only when it changed since its last
        check, so a whole part is parsed once here, not on every poll; the parts come back with
        their records, so ``read_trace_requests`` does not parse them again.
        """
        at_restore = set(self._stamps())  # the flush goes to a part that does not exist yet
        self.api.update_trace_settings(dict(self.original) or {"trace_level": ["OFF"]},
                                       self.model)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            stamps = self._new_stamps()
            flushed = any(path not in at_restore for path in stamps)
            if flushed and all(self._whole(p, s) for p, s in stamps.items()):
                return self._parts(stamps)
            if time.monotonic() > deadline:
                return self._parts([p for p, s in stamps.items() if self._whole(p, s)])
            time.sleep(0.05)

    def _parts(self, paths) -> TraceParts:
        """These whole parts in index order, with the stamp and records of their last parse."""
        ordered = sorted(paths, key=_index)
        return TraceParts(ordered, {p: (self.checked[p][0], self.checked[p][2]) for p in ordered})

    def _whole(self, path: Path, stamp: tuple[int, int]) -> bool:
        """Whether ``path`` is whole JSON, parsing it only if its ``stamp`` is new.

        The stamp is taken before the parse, so a part that grows during the parse has a new
        stamp at the next poll and is parsed again.
        """
        seen = self.checked.get(path)
        if seen is None or seen[0] != stamp:
            seen = (stamp, *_parse_part(path))
            self.checked[path] = seen
        return seen[1]

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


class TraceParts(list):
    """The trace part files of one run (a list of paths, in index order) with the records read
    from each while waiting for it: ``{path: ((mtime ns, size) when read, records)}``."""

    def __init__(self, paths=(), parsed: dict | None = None):
        super().__init__(paths)
        self.parsed: dict[Path, tuple[tuple[int, int], _Records]] = dict(parsed or {})


def _parse_part(path: Path) -> tuple[bool, _Records]:
    """Whether ``path`` is whole JSON, read as ingest reads it, and then its records.

    A part still being written is not whole (it is not salvaged here); one that is whole JSON
    but not a trace is whole, and keeps the error ingest reports for it.
    """
    try:
        records, whole = triton_trace.parse_trace_part(path, salvage=False)
    except triton_trace.NotATraceError as exc:
        return True, exc
    except OSError:
        return False, None
    return whole, records


def read_trace_requests(files: list[Path]) -> pd.DataFrame:
    """The ``requests`` table of exactly these trace files (gpuprof.ingest.triton_trace).

    Triton restarts part numbers and trace ids in every server run, so only these parts are
    read, never stale parts beside them. Each is named as a part of one trace
    (``trace.json.<n>``, or ``trace.json`` without a number) and used in part order. The records
    ``TraceSession.finish`` read are used for a part unchanged since; any other is read here.
    """
    if not files:
        return pd.DataFrame(columns=["request_id", "stage", "start_ns", "end_ns"])
    parsed = getattr(files, "parsed", {})
    parts: dict[str, _Records] = {}
    for path in files:
        suffix = path.name.rsplit(".", 1)[-1]
        name = f"trace.json.{suffix}" if suffix.isdigit() else "trace.json"
        parts[name] = _records_of(path, parsed.get(path))  # a later file of one name wins
    return triton_trace.trace_from_records(list(parts.items())).profile.tables["requests"]


def _records_of(path: Path, seen: tuple[tuple[int, int], _Records] | None) -> _Records:
    stat = path.stat()  # a part that is gone is an error, as it always was
    if seen is not None and seen[1] is not None and seen[0] == (stat.st_mtime_ns, stat.st_size):
        return seen[1]
    try:
        return triton_trace.parse_trace_part(path)[0]
    except BadInputError as exc:
        return exc
