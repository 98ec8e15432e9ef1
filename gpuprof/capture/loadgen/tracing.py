"""Switch a server's request tracing on for one run, then collect the files it wrote.

Uses the trace extension (``/v2/models/M/trace/setting``). The server must have been started
with a trace file (``--trace-config triton,file=PATH``; Triton no longer lets clients choose
the file at run time). We set level TIMESTAMPS, rate 1 and a log frequency, so Triton writes
``PATH.0``, ``PATH.1``, ... while we run; putting the original settings back at the end makes
it flush the remaining traces. The files are on this machine: gpuprof only talks to loopback.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from ...errors import BadInputError
from .server_api import ServerAPI

LOG_FREQUENCY = 1000
RESTORED_KEYS = ("trace_level", "trace_rate", "log_frequency")
FLUSH_WAIT_S = 5.0


class TraceSession:
    def __init__(self, api: ServerAPI, model: str):
        self.api, self.model = api, model
        self.original: dict = {}
        self.file: Path | None = None
        self.before: dict[Path, tuple[int, int]] = {}   # trace files as they were at start
        # per part, the (mtime ns, size) it was last parsed at and whether it was whole JSON
        self.checked: dict[Path, tuple[tuple[int, int], bool]] = {}

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

    def finish(self) -> list[Path]:
        """Restore the settings and wait for the flush of the traces Triton still holds.

        Restoring replaces our trace setting; Triton writes its remaining traces to a new part
        ``PATH.<n>`` once the last request using it is released, so we wait for a part that was
        not there before the restore (up to ``FLUSH_WAIT_S``: a run whose trace count was an
        exact multiple of ``LOG_FREQUENCY`` has nothing left to flush) and for every new part
        to be whole. Each part is parsed while waiting only when it changed since its last
        check, so a whole part is parsed once here, not on every poll.
        """
        at_restore = set(self._stamps())  # the flush goes to a part that does not exist yet
        self.api.update_trace_settings(dict(self.original) or {"trace_level": ["OFF"]},
                                       self.model)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            stamps = self._new_stamps()
            flushed = any(path not in at_restore for path in stamps)
            if flushed and all(self._whole(p, s) for p, s in stamps.items()):
                return sorted(stamps, key=_index)
            if time.monotonic() > deadline:
                return sorted((p for p, s in stamps.items() if self._whole(p, s)), key=_index)
            time.sleep(0.05)

    def _whole(self, path: Path, stamp: tuple[int, int]) -> bool:
        """Whether ``path`` is whole JSON, parsing it only if its ``stamp`` is new.

        The stamp is taken before the parse, so a part that grows during the parse has a new
        stamp at the next poll and is parsed again.
        """
        seen = self.checked.get(path)
        if seen is None or seen[0] != stamp:
            seen = (stamp, _complete_json(path))
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


def _complete_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def read_trace_requests(files: list[Path]) -> pd.DataFrame:
    """The ``requests`` table of exactly these trace files (gpuprof.ingest.triton_trace).

    They are copied into a fresh folder first: Triton restarts part numbers and trace ids in
    every server run, so stale parts beside them must not be read as part of this run.
    """
    from ...ingest.triton_trace import read_triton_trace

    if not files:
        return pd.DataFrame(columns=["request_id", "stage", "start_ns", "end_ns"])
    with tempfile.TemporaryDirectory(prefix="gpuprof-trace-") as tmp:
        for path in files:
            suffix = path.name.rsplit(".", 1)[-1]
            name = f"trace.json.{suffix}" if suffix.isdigit() else "trace.json"
            shutil.copyfile(path, Path(tmp) / name)
        return read_triton_trace(tmp).profile.tables["requests"]
