"""Switch a server's request tracing on for one run, then collect the files it wrote.

Uses the trace extension (``/v2/models/M/trace/setting``). The server must have been started
with a trace file (``--trace-config triton,file=PATH``; Triton no longer lets clients choose
the file at run time). We set level TIMESTAMPS, rate 1 and a log frequency, so Triton writes
``PATH.0``, ``PATH.1``, ... while we run; putting the original settings back at the end makes
it flush the remaining traces. The files are on this machine: gpuprof only talks to loopback.
"""

from __future__ import annotations

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
        self.started_at = 0.0

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
        self.started_at = time.time()
        self.api.update_trace_settings({"trace_level": ["TIMESTAMPS"], "trace_rate": "1",
                                        "log_frequency": str(LOG_FREQUENCY)}, self.model)
        return self

    def finish(self) -> list[Path]:
        """Restore the settings (which flushes the traces held in memory) and list the files."""
        restore = dict(self.original) or {"trace_level": ["OFF"]}
        self.api.update_trace_settings(restore, self.model)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            files = self.files()
            if (files and all(_complete_json(f) for f in files)) or time.monotonic() > deadline:
                return files
            time.sleep(0.1)

    def files(self) -> list[Path]:
        """Trace files written since the run started: ``PATH`` and ``PATH.<n>``."""
        assert self.file is not None
        candidates = [self.file, *self.file.parent.glob(self.file.name + ".*")]
        return sorted((p for p in candidates
                       if p.is_file() and p.stat().st_mtime >= self.started_at - 1),
                      key=_index)


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
