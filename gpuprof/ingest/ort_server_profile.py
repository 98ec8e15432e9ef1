"""Read the ONNX Runtime profile folder of a model ``gpuprof triton serve --ort-profile`` served.

The model (``capture/triton_onnx_model.py``) writes, per python-stub process ``pid``:

- ``runs-<pid>.jsonl``: ``{"session", "request_id", "before_ns", "after_ns"}`` per
  ``session.run`` (CLOCK_MONOTONIC stamps around it, Triton's request id), and
  ``{"session", "profile"}`` when a session's profile was written (the session is complete);
- ``anchor-<pid>-<n>.json``: session ``n``'s profiling start (realtime epoch ns,
  ``get_profiling_start_time_ns``) and CLOCK_REALTIME - CLOCK_MONOTONIC with its error;
- ``ort-<pid>-<n>_<date>.json``: ONNX Runtime's profile, ``ts`` in µs from that start.

So an event's monotonic time is ``profiling_start + ts * 1000 - (realtime - monotonic)``.
The k-th ``model_run`` event of a session is its k-th run line (one stub thread runs them in
turn); a session whose counts differ is reported and its nodes left out, never matched by
guess. Only sessions that ran requests with the asked-for id prefix are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError, GpuprofError
from .onnxruntime_profile import parse_events, read_events

RUN_COLUMNS = ["request_id", "pid", "session", "before_ns", "after_ns", "ort_start_ns",
               "ort_end_ns"]
NODE_COLUMNS = ["request_id", "pid", "session", "layer", "layer_type", "start_ns",
                "duration_ns"]
US = 1000


@dataclass
class OrtServerProfile:
    runs: pd.DataFrame          # one row per session.run: python stamps, ORT's model_run
    nodes: pd.DataFrame         # one row per node execution, monotonic ns by the anchors
    anchors: pd.DataFrame       # pid, session, profiling_start_ns, realtime_minus_monotonic_ns, ...
    issues: list[str] = field(default_factory=list)


@dataclass
class _Session:
    pid: int
    number: int
    runs: list[dict] = field(default_factory=list)
    profile: str | None = None


def read_profile_dir(folder: str | Path, request_prefix: str = "") -> OrtServerProfile:
    """Node events and run stamps of the complete sessions that ran ``request_prefix`` ids."""
    folder = _folder(folder)
    sessions, issues = scan_sessions(folder, request_prefix)
    runs, nodes, anchors = [], [], []
    for session in sessions.values():
        if session.profile is None:
            issues.append(f"session {session.number} of pid {session.pid} has not written its "
                          f"profile yet: its {len(session.runs)} runs have no node times")
            runs.append(_run_frame(session, None))
            continue
        part = _read_session(folder, session, issues)
        if part is None:
            runs.append(_run_frame(session, None))
            continue
        runs.append(part[0])
        nodes.append(part[1])
        anchors.append(part[2])
    return OrtServerProfile(_concat(runs, RUN_COLUMNS), _concat(nodes, NODE_COLUMNS),
                            pd.DataFrame(anchors), issues)


def scan_sessions(folder: str | Path, request_prefix: str = "") -> tuple[dict, list[str]]:
    """{(pid, session): _Session} of the sessions that ran a request id with the prefix,
    from the run files alone (cheap: the composer polls it while the profiles are written)."""
    sessions: dict[tuple[int, int], _Session] = {}
    issues: list[str] = []
    for path in sorted(_folder(folder).glob("runs-*.jsonl")):
        pid = int(path.stem.split("-", 1)[1])
        for line in _lines(path, issues):
            key = (pid, int(line.get("session", -1)))
            session = sessions.setdefault(key, _Session(pid, key[1]))
            if "profile" in line:
                session.profile = str(line["profile"])
            elif "request_id" in line:
                session.runs.append(line)
    wanted = {key: s for key, s in sessions.items()
              if any(str(r["request_id"]).startswith(request_prefix) for r in s.runs)}
    return wanted, issues


def _folder(folder: str | Path) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise BadInputError(f"ONNX Runtime profile folder '{path}' not found",
                            "Serve the model with gpuprof triton serve --ort-profile DIR")
    return path


def _lines(path: Path, issues: list[str]) -> list[dict]:
    out, bad = [], 0
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            bad += 1      # a line cut off by a killed stub
    if bad:
        issues.append(f"{path.name}: {bad} unreadable line(s) skipped")
    return out


def _read_session(folder: Path, session: _Session, issues: list[str]):
    where = f"session {session.number} of pid {session.pid}"
    try:
        anchor = json.loads((folder / f"anchor-{session.pid}-{session.number}.json").read_text())
        events = read_events(folder / session.profile)
        offset = int(anchor["profiling_start_ns"]) - int(anchor["realtime_minus_monotonic_ns"])
        ort = parse_events(events, offset_ns=offset)
    except (OSError, ValueError, KeyError, GpuprofError) as exc:
        issues.append(f"{where}: profile or anchor unreadable ({_why(exc)}); its "
                      f"{len(session.runs)} runs have no node times")
        return None
    if len(ort.runs) != len(session.runs):
        cap = (" (ONNX Runtime stops recording at its 1,000,000-event cap: shorten the "
               "test)" if len(ort.runs) < len(session.runs) else "")
        issues.append(f"{where}: ONNX Runtime recorded {len(ort.runs)} runs, the model "
                      f"{len(session.runs)}: not matched, its runs have no node times{cap}")
        return None
    return (_run_frame(session, ort.runs), _node_frame(session, ort.layer_timings),
            {"pid": session.pid, "session": session.number, "profile": session.profile,
             **{k: int(anchor[k]) for k in ("profiling_start_ns", "realtime_minus_monotonic_ns",
                                            "offset_error_ns")}})


def _why(exc: BaseException) -> str:
    return exc.message if isinstance(exc, GpuprofError) else f"{type(exc).__name__}: {exc}"


def _run_frame(session: _Session, ort_runs: pd.DataFrame | None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "request_id": [str(r["request_id"]) for r in session.runs],
        "pid": session.pid, "session": session.number,
        "before_ns": np.array([r["before_ns"] for r in session.runs], dtype=np.int64),
        "after_ns": np.array([r["after_ns"] for r in session.runs], dtype=np.int64)})
    has = ort_runs is not None
    frame["ort_start_ns"] = pd.array(ort_runs["start_ns"] if has else [None] * len(frame),
                                     dtype="Int64")
    frame["ort_end_ns"] = pd.array(ort_runs["end_ns"] if has else [None] * len(frame),
                                   dtype="Int64")
    return frame


def _node_frame(session: _Session, layers: pd.DataFrame) -> pd.DataFrame:
    ids = np.array([str(r["request_id"]) for r in session.runs], dtype=object)
    return pd.DataFrame({
        "request_id": ids[layers["iteration"].to_numpy()], "pid": session.pid,
        "session": session.number, "layer": layers["layer"].to_numpy(),
        "layer_type": layers["layer_type"].to_numpy(),
        "start_ns": layers["start_ns"].to_numpy(dtype=np.int64),
        "duration_ns": layers["duration_ns"].to_numpy(dtype=np.int64)})


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
