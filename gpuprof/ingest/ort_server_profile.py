"""Read the ONNX Runtime profile folder of a model ``gpuprof triton serve --ort-profile`` served.

The model (``capture/triton_onnx_model.py``) writes, per python-stub process ``pid``:

- ``runs-<pid>.jsonl``: ``{"session", "request_id", "before_ns", "after_ns"}`` per
  ``session.run`` (CLOCK_MONOTONIC stamps around it, Triton's request id; a dynamic batch's
  run names ``request_ids`` and their ``rows`` instead), and ``{"session", "profile"}`` when
  a session's profile was written (the session is complete);
- ``anchor-<pid>-<n>.json``: session ``n``'s profiling start (realtime epoch ns,
  ``get_profiling_start_time_ns``) and CLOCK_REALTIME - CLOCK_MONOTONIC with its error;
- ``ort-<pid>-<n>_<date>.json``: ONNX Runtime's profile, ``ts`` in µs from that start.

So an event's monotonic time is ``profiling_start + ts * 1000 - (realtime - monotonic)``.
The k-th ``model_run`` event of a session is its k-th run line (one stub thread runs them in
turn); a session whose counts differ is reported and its nodes left out, never matched by
guess. Only sessions that ran requests with the asked-for id prefix are read.

A batch's requests share its run: each gets a row in ``runs`` (``run`` numbers the session's
runs, ``run_requests`` counts the requests in it, ``share`` is the request's rows over the
batch's) and the run's node events under its own id, so a node execution appears once per
request that shared it (``analyze.request_nodes`` counts executions once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError, GpuprofError
from .onnxruntime_profile import parse_events, read_events

RUN_COLUMNS = ["request_id", "pid", "session", "run", "run_requests", "share", "before_ns",
               "after_ns", "ort_start_ns", "ort_end_ns"]
NODE_COLUMNS = ["request_id", "pid", "session", "run", "layer", "layer_type", "start_ns",
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
            elif "request_id" in line or "request_ids" in line:
                session.runs.append(line)
    wanted = {key: s for key, s in sessions.items()
              if any(rid.startswith(request_prefix) for r in s.runs for rid in _ids(r))}
    return wanted, issues


def _ids(line: dict) -> list[str]:
    """The request ids one run line names (one, or a batch's)."""
    if "request_ids" in line:
        return [str(rid) for rid in line["request_ids"]]
    return [str(line["request_id"])]


def _shares(line: dict) -> list[float]:
    """Each request's share of its run: its rows over the batch's (equal when not logged)."""
    ids = _ids(line)
    rows = [int(r) for r in line.get("rows", [])]
    if len(rows) != len(ids) or sum(rows) <= 0:
        return [1.0 / len(ids)] * len(ids)
    return [r / sum(rows) for r in rows]


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
    """One row per (run, request it ran)."""
    per_run = np.array([len(_ids(r)) for r in session.runs], dtype=np.int64)
    run = np.repeat(np.arange(len(session.runs), dtype=np.int64), per_run)
    frame = pd.DataFrame({
        "request_id": [rid for r in session.runs for rid in _ids(r)],
        "pid": session.pid, "session": session.number, "run": run,
        "run_requests": per_run[run],
        "share": np.array([s for r in session.runs for s in _shares(r)], dtype=np.float64),
        "before_ns": np.array([r["before_ns"] for r in session.runs], dtype=np.int64)[run],
        "after_ns": np.array([r["after_ns"] for r in session.runs], dtype=np.int64)[run]})
    has = ort_runs is not None
    frame["ort_start_ns"] = pd.array(ort_runs["start_ns"].to_numpy()[run] if has
                                     else [None] * len(frame), dtype="Int64")
    frame["ort_end_ns"] = pd.array(ort_runs["end_ns"].to_numpy()[run] if has
                                   else [None] * len(frame), dtype="Int64")
    return frame


def _node_frame(session: _Session, layers: pd.DataFrame) -> pd.DataFrame:
    """The node events, once per request of the run they belong to."""
    ids = [_ids(r) for r in session.runs]
    per_run = np.array([len(i) for i in ids], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(per_run)[:-1]]).astype(np.int64)
    flat = np.array([rid for i in ids for rid in i], dtype=object)
    iteration = layers["iteration"].to_numpy()
    copies = per_run[iteration]
    event = np.repeat(np.arange(len(layers)), copies)
    # the k-th copy of an event goes to the k-th request of its run
    nth = np.arange(len(event)) - np.repeat(np.cumsum(copies) - copies, copies)
    run = iteration[event]
    return pd.DataFrame({
        "request_id": flat[first[run] + nth], "pid": session.pid,
        "session": session.number, "run": run.astype(np.int64),
        "layer": layers["layer"].to_numpy()[event],
        "layer_type": layers["layer_type"].to_numpy()[event],
        "start_ns": layers["start_ns"].to_numpy(dtype=np.int64)[event],
        "duration_ns": layers["duration_ns"].to_numpy(dtype=np.int64)[event]})


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
