"""Triton trace files (trace mode ``triton``): a JSON list of small objects, parsed into the
``requests`` table plus the raw timestamps.

Triton writes one object per event, so a request's header (model, version, parent) and each of
its timestamps are separate objects, possibly interleaved with other requests' and out of order.
Everything is keyed by ``(source, trace_id)``: ``source`` is the run's base file name, because
ids restart at 1 in every server run and a directory may hold several runs.

With ``log-frequency`` (or ``count``) set, Triton writes numbered parts ``trace.json.0``,
``trace.json.1``, ...; each part is a complete list. A file cut short (server killed) is a list
without its tail: its complete objects are kept and the result is labelled partial.

A timestamp name repeated within one request (decoupled responses, gRPC streams) keeps every
occurrence in the raw table; a stage starts at the earliest occurrence of its start name and ends
at the latest of its end name.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError, GpuprofError, NoDataError
from ..model import SCHEMAS, ClockDomain, Profile, RunMeta, SourceFile
from ..model.triton_stages import (  # noqa: F401  (names the trace's readers use)
    END_TO_END,
    FRONTEND_PREFIXES,
    KNOWN_NAMES,
    NO_MODEL,
    RECEIVE_NAMES,
    SEND_END_NAMES,
    STAGES,
)

_PART = re.compile(r"^(?P<base>.+)\.(?P<index>\d+)$")
_OBJECT_START = re.compile(r'\{\s*"id"\s*:')

TIMESTAMP_COLUMNS = SCHEMAS["triton_timestamps"]
HEADER_COLUMNS = SCHEMAS["triton_headers"]
TENSOR_COLUMNS = SCHEMAS["triton_tensors"]
# the model tables a trace fills, all keyed by (source, trace_id)
TRACE_TABLES = ("requests", "triton_timestamps", "triton_headers", "triton_tensors")


@dataclass
class TritonTrace:
    """A parsed trace: its ``Profile`` holds the requests table and the raw tables it was
    derived from (``triton_timestamps``, ``triton_headers``, ``triton_tensors``), so a saved
    or merged run keeps them; the properties below read and replace those tables."""

    profile: Profile
    partial: bool = False
    issues: list[str] = field(default_factory=list)  # sentences for the report

    @property
    def timestamps(self) -> pd.DataFrame:   # source, trace_id, name, ns
        return self.profile.tables["triton_timestamps"]

    @timestamps.setter
    def timestamps(self, frame: pd.DataFrame) -> None:
        self.profile.tables["triton_timestamps"] = frame

    @property
    def headers(self) -> pd.DataFrame:      # source, trace_id, model, version, request/parent id
        return self.profile.tables["triton_headers"]

    @headers.setter
    def headers(self, frame: pd.DataFrame) -> None:
        self.profile.tables["triton_headers"] = frame

    @property
    def tensors(self) -> pd.DataFrame:      # activity, tensor, dtype, shape (TENSORS level)
        return self.profile.tables["triton_tensors"]

    @tensors.setter
    def tensors(self, frame: pd.DataFrame) -> None:
        self.profile.tables["triton_tensors"] = frame


@dataclass
class PartRecords:
    """The objects read from one trace file, and what was lost reading it."""

    objects: list
    lost_bytes: int = 0
    lost_objects: int = 0
    missing_bracket: bool = False


def read_triton_trace(spec: str | Path | list) -> TritonTrace:
    """Parse a trace file, its numbered parts, a directory of them, a glob, or a list of these."""
    return _trace(find_trace_files(spec), _label(spec), {})


def read_trace_parts(files: list[Path], preread: dict[Path, PartRecords],
                     open_lists: bool = False) -> TritonTrace:
    """The trace of exactly these files, in part order, as ``read_triton_trace`` reads them.

    Nothing else is looked for beside them (Triton restarts part numbers and trace ids in
    every server run, so a stale part next to them is not part of this run). ``preread`` holds
    the records ``parse_trace_part`` already read for some of them; those are used, and taken
    out of it, instead of parsing the file again. Any other file is read here. With
    ``open_lists`` a list without its closing bracket is a live server's file, not damage.
    """
    return _trace(sorted(files, key=_part_order), _label(list(files)), preread, open_lists)


def _trace(files: list[Path], label: str, preread: dict[Path, PartRecords],
           open_lists: bool = False) -> TritonTrace:
    """The trace of these files, in this order."""
    if not files:
        raise BadInputError("no Triton trace file to read",
                            "Pass the trace file itself, or a glob such as 'trace.json*'")
    stamps: list[_Stamps] = []
    headers: list[tuple] = []
    tensors: list[tuple] = []
    issues: list[str] = []
    partial, skipped = False, 0
    for path in files:
        recs, lost = _load_or_skip(path, preread, len(files) > 1, issues)
        partial |= lost
        if recs is None:
            continue
        partial |= _note_damage(path, recs, issues, open_lists)
        stamps.append(_Stamps(_run_name(path)))
        skipped += _collect(recs.objects, stamps[-1], headers, tensors)
    if skipped:
        issues.append(f"{skipped} object(s) were not Triton trace records and were skipped")
    timestamps = _stamp_frame(stamps)
    if not stamps:
        raise BadInputError(f"none of the {len(files)} files is a readable Triton trace ({issues[0]})",
                            "Pass the trace file itself, or a glob such as 'trace.json*'")
    if timestamps.empty and not headers:
        raise NoDataError(f"{label} holds no Triton trace records",
                          "Start tritonserver with --trace-config level=TIMESTAMPS and send requests")
    header_frame = _headers(_frame(headers, HEADER_COLUMNS), timestamps)
    requests, negative = derive_stages(timestamps, header_frame)
    if negative:
        issues.append(f"{negative} stage(s) ended before they started and were left out")
    tables = {"requests": requests, "triton_timestamps": timestamps,
              "triton_headers": header_frame, "triton_tensors": _frame(tensors, TENSOR_COLUMNS)}
    return TritonTrace(Profile(tables=tables, meta=_meta(files, partial, issues)), partial,
                       issues)


# --- finding files -------------------------------------------------------------------------

def find_trace_files(spec: str | Path | list) -> list[Path]:
    """Expand a file, a base name with numbered parts, a directory or a glob into files."""
    if isinstance(spec, (list, tuple)):
        return sorted({f for one in spec for f in find_trace_files(one)}, key=_part_order)
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and _looks_like_trace(p.name)]
        where = f"directory {path.name or text}"
    elif any(ch in text for ch in "*?["):
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
        where = f"pattern {path.name}"
    else:
        files = ([path] if path.is_file() and _PART.match(path.name) else
                 ([path] if path.is_file() else []) + _numbered_parts(path))
        where = path.name
    if not files:
        raise BadInputError(f"no Triton trace file found for {where}",
                            "Pass the trace file, its directory, or a glob such as 'trace.json*'")
    return sorted(set(files), key=_part_order)


def _numbered_parts(base: Path) -> list[Path]:
    parent = base.parent if str(base.parent) else Path(".")
    if not parent.is_dir():
        return []
    pattern = re.compile(re.escape(base.name) + r"\.\d+$")
    return [p for p in parent.iterdir() if pattern.match(p.name) and p.is_file()]


def _looks_like_trace(name: str) -> bool:
    match = _PART.match(name)
    return (match.group("base") if match else name).endswith(".json")


def _part_order(path: Path) -> tuple[str, str, int]:
    # parts in numeric order (.10 after .9); the unnumbered file, written at shutdown, last
    match = _PART.match(path.name)
    if match:
        return (str(path.parent), match.group("base"), int(match.group("index")))
    return (str(path.parent), path.name, 1 << 62)


def _run_name(path: Path) -> str:
    match = _PART.match(path.name)
    return match.group("base") if match else path.name


def _label(spec: str | Path | list) -> str:
    if isinstance(spec, (list, tuple)):
        return f"{len(spec)} paths" if len(spec) != 1 else _label(spec[0])
    return Path(str(spec)).name or str(spec)


# --- reading one file ----------------------------------------------------------------------

class NotATraceError(BadInputError):
    """Valid JSON, but not a Triton trace (e.g. the Chrome trace gpuprof wrote beside it)."""


def _load_or_skip(path: Path, preread: dict[Path, PartRecords], lenient: bool,
                  issues: list[str]) -> tuple[PartRecords | None, bool]:
    """The records of ``path``, read before or now. With several files, one that is damaged
    or not a trace is reported and skipped.

    Returns the records (None when skipped) and whether trace records were lost.
    """
    try:
        return preread.pop(path, None) or _load_records(path), False
    except NotATraceError as exc:
        if not lenient:
            raise
        issues.append(f"left out {path.name}: {exc.message}")
        return None, False
    except BadInputError as exc:
        if not lenient:
            raise
        issues.append(f"skipped {path.name}, its records are lost: {exc.message}")
        return None, True


def _load_records(path: Path) -> PartRecords:
    return parse_trace_part(path)[0]


def parse_trace_part(path: Path, *, salvage: bool = True) -> tuple[PartRecords | None, bool]:
    """One trace file read as ``read_triton_trace`` reads it: its records, and whether it is
    whole JSON.

    Whole JSON that is not a list raises ``NotATraceError``. A file that is empty or not whole
    JSON (cut short, or still being written) is never whole: with ``salvage`` its complete
    objects are kept (``BadInputError`` when it is damaged before its end); without, its
    records are None, which is all that someone waiting for a part to be finished needs.
    """
    # Tensor data of UINT8/BYTES tensors is written raw by Triton: tolerate bad UTF-8 and
    # control characters rather than reject a whole trace for one tensor's bytes.
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text.strip():
        return (PartRecords([]) if salvage else None), False
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        return (_salvage(path, text, exc) if salvage else None), False
    if isinstance(data, dict):
        raise NotATraceError(_not_a_list(path, data), "Pass a file written by --trace-config triton,file=...")
    if not isinstance(data, list):
        raise NotATraceError(f"{path.name} is JSON but not a Triton trace (a list of objects)",
                            "Pass a file written by --trace-config triton,file=...")
    return PartRecords(data), True


def check_part(path: Path) -> tuple[bool, bool, PartRecords | None]:
    """For someone waiting for a part to be finished (``capture.loadgen.tracing``): whether
    ``path`` is whole JSON, whether it is a list still open whose objects are all complete
    (how Triton writes without a log frequency), and its records when it is a trace.

    A part cut inside an object is still being written: no records. One that is whole JSON
    but not a trace is whole, without records: the read of the trace reads it again and
    reports it.
    """
    try:
        records, whole = parse_trace_part(path, salvage=True)
    except NotATraceError:
        return True, False, None
    except (OSError, GpuprofError):
        return False, False, None
    if records is None or (not whole and (records.lost_objects or not records.missing_bracket)):
        return False, False, None   # (with salvage, records is never None)
    return whole, records.missing_bracket, records


def _not_a_list(path: Path, data: dict) -> str:
    if "traceEvents" in data:
        return f"{path.name} is a Chrome trace, not a Triton trace file"
    return f"{path.name} is a JSON object, not a Triton trace (a list of objects)"


def _salvage(path: Path, text: str, error: json.JSONDecodeError) -> PartRecords:
    """Keep the complete objects of a list that was cut short; reject damage anywhere else."""
    body = text.rstrip().rstrip(",")
    if not body.lstrip().startswith("["):
        raise _malformed(path, error)
    closed = _try_list(body + "]")
    if closed is not None:
        return PartRecords(closed, missing_bracket=True)
    starts = [m.start() for m in _OBJECT_START.finditer(body)]
    for cut in reversed(starts[-5:]):
        if _complete_object(body[cut:]):
            break  # the object after the cut is whole: the damage is elsewhere, not a cut tail
        head = body[:cut].rstrip().rstrip(",")
        objects = _try_list(head + "]")
        if objects is not None:
            lost = sum(1 for s in starts if s >= cut)
            return PartRecords(objects, lost_bytes=len(text.encode()) - len(head.encode()),
                                lost_objects=lost)
    raise _malformed(path, error)


def _complete_object(text: str) -> bool:
    try:
        json.JSONDecoder(strict=False).raw_decode(text)
    except json.JSONDecodeError:
        return False
    return True


def _try_list(text: str) -> list | None:
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, list) else None


def _malformed(path: Path, error: json.JSONDecodeError) -> BadInputError:
    return BadInputError(
        f"{path.name} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})",
        "It is damaged before its end, so it cannot be salvaged: capture the trace again")


def _note_damage(path: Path, recs: PartRecords, issues: list[str], open_ok: bool = False) -> bool:
    if recs.lost_objects:
        issues.append(f"{path.name} is truncated: kept {len(recs.objects)} complete objects, "
                      f"lost the last {recs.lost_bytes} bytes (about {recs.lost_objects} object(s))")
        return True
    if recs.missing_bracket and not open_ok:
        issues.append(f"{path.name} is truncated after its last complete object (no closing "
                      "']'): later records may be missing")
        return True
    return False


# --- objects to rows -----------------------------------------------------------------------

@dataclass
class _Stamps:
    """Timestamps of one run as columns: a trace can hold millions, tuples would be slow."""

    source: str
    ids: list = field(default_factory=list)
    names: list = field(default_factory=list)
    ns: list = field(default_factory=list)


def _collect(objects: list, stamps: _Stamps, headers: list, tensors: list) -> int:
    """Append each record's rows; return how many objects were not Triton records."""
    skipped = 0
    for obj in objects:
        trace_id = obj.get("id") if type(obj) is dict else None
        if type(trace_id) is not int:
            skipped += 1
            continue
        known = False
        if "model_name" in obj:
            headers.append(_header_row(stamps.source, trace_id, obj))
            known = True
        items = obj.get("timestamps")
        if type(items) is list:
            known |= _add_stamps(trace_id, items, stamps)
        if "activity" in obj:
            tensors.append(_tensor_row(stamps.source, trace_id, obj))
            known = True
        skipped += not known
    return skipped


def _header_row(source: str, trace_id: int, obj: dict) -> tuple:
    parent = obj.get("parent_id")
    parent = parent if isinstance(parent, int) and parent > 0 else -1
    request_id = obj.get("request_id")
    return (source, trace_id, str(obj.get("model_name")), str(obj.get("model_version", "")),
            str(request_id) if request_id not in (None, "") else None, parent)


def _add_stamps(trace_id: int, items: list, stamps: _Stamps) -> bool:
    added = False
    for item in items:
        name = item.get("name") if type(item) is dict else None
        ns = item.get("ns") if name is not None else None
        if type(ns) is not int:
            ns = _as_int(ns)
        if type(name) is str and ns is not None:
            stamps.ids.append(trace_id)
            stamps.names.append(name)
            stamps.ns.append(ns)
            added = True
    return added


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _tensor_row(source: str, trace_id: int, obj: dict) -> tuple:
    tensor = obj.get("tensor")
    if not isinstance(tensor, dict):
        tensor = {}
    # the tensor's data is deliberately not kept: it can be large and it is user data
    return (source, trace_id, str(obj.get("activity")), str(tensor.get("name", "")),
            str(tensor.get("dtype", "")), str(tensor.get("shape", "")))


def _stamp_frame(runs: list[_Stamps]) -> pd.DataFrame:
    parts = [pd.DataFrame({
        "source": pd.Categorical([r.source] * len(r.ids)),
        "trace_id": np.asarray(r.ids, dtype="int64"),
        "name": pd.Categorical(r.names), "ns": np.asarray(r.ns, dtype="int64")}) for r in runs]
    if not parts:
        return _frame([], TIMESTAMP_COLUMNS)
    return pd.concat(parts, ignore_index=True).astype(TIMESTAMP_COLUMNS)


def _frame(rows: list, columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns)) if rows else \
        pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return frame.astype(columns)


def _headers(headers: pd.DataFrame, timestamps: pd.DataFrame) -> pd.DataFrame:
    """One row per request seen anywhere; requests without a header object get NO_MODEL."""
    headers = headers.drop_duplicates(["source", "trace_id"], keep="first")
    ids = timestamps[["source", "trace_id"]].drop_duplicates()
    ids = ids.astype({"source": "object"})
    frame = ids.merge(headers.astype({"source": "object"}), on=["source", "trace_id"], how="outer")
    frame["model"] = frame["model"].astype("object").fillna(NO_MODEL)
    frame["model_version"] = frame["model_version"].astype("object").fillna("")
    frame["parent_id"] = frame["parent_id"].fillna(-1)
    frame = frame.sort_values(["source", "trace_id"], kind="stable").reset_index(drop=True)
    return frame.astype(HEADER_COLUMNS)


# --- stages --------------------------------------------------------------------------------

def derive_stages(timestamps: pd.DataFrame, headers: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The ``requests`` table (one row per request and stage) and the count of negative spans."""
    if timestamps.empty:
        return pd.DataFrame(columns=["trace_id"]), 0
    grouped = timestamps.groupby(["source", "trace_id", "name"], observed=True)["ns"]
    first = grouped.min().unstack("name")
    last = grouped.max().unstack("name")
    spans = [_span(first, last, stage, start, end) for stage, (start, end) in _stage_pairs(first)]
    spans.append(_end_to_end(first, last))
    rows = pd.concat([s for s in spans if len(s)], ignore_index=True) if any(
        len(s) for s in spans) else pd.DataFrame(columns=["source", "trace_id", "stage"])
    negative = int((rows["end_ns"] < rows["start_ns"]).sum()) if len(rows) else 0
    if negative:
        rows = rows[rows["end_ns"] >= rows["start_ns"]]
    return _with_headers(rows, headers), negative


def _stage_pairs(first: pd.DataFrame) -> list[tuple[str, tuple[str, str]]]:
    """Known stages, then any unknown ``X_START``/``X_END`` pair as stage ``X``."""
    pairs = list(STAGES.items())
    names = set(first.columns)
    for name in sorted(names - KNOWN_NAMES):
        if name.endswith("_START") and name[:-6] + "_END" in names:
            pairs.append((name[:-6], (name, name[:-6] + "_END")))
    return pairs


def _span(first: pd.DataFrame, last: pd.DataFrame, stage: str, start: str, end: str) -> pd.DataFrame:
    if start not in first.columns or end not in last.columns:
        return pd.DataFrame()
    both = pd.DataFrame({"start_ns": first[start], "end_ns": last[end]}).dropna()
    return both.assign(stage=stage).reset_index()


def _end_to_end(first: pd.DataFrame, last: pd.DataFrame) -> pd.DataFrame:
    recv = [n for n in RECEIVE_NAMES if n in first.columns]
    send = [n for n in SEND_END_NAMES if n in last.columns]
    if not recv or not send:
        return pd.DataFrame()
    both = pd.DataFrame({"start_ns": first[recv].min(axis=1), "end_ns": last[send].max(axis=1)})
    return both.dropna().assign(stage=END_TO_END).reset_index()


def _with_headers(rows: pd.DataFrame, headers: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows
    rows = rows.astype({"source": "object", "start_ns": "int64", "end_ns": "int64"})
    info = headers.astype({"source": "object"})
    rows = rows.merge(info, on=["source", "trace_id"], how="left")
    order = {name: i for i, name in enumerate([END_TO_END, *STAGES])}
    rows["_order"] = rows["stage"].map(order).fillna(len(order))
    rows = rows.sort_values(["source", "trace_id", "_order", "start_ns"], kind="stable")
    return rows.drop(columns="_order").reset_index(drop=True)


# --- metadata ------------------------------------------------------------------------------

def _meta(files: list[Path], partial: bool, issues: list[str]) -> RunMeta:
    sources = [SourceFile(kind="triton-trace", name=p.name, size_bytes=p.stat().st_size,
                          sha256=_sha256(p)) for p in files]
    return RunMeta(
        tool="triton", sources=sources,
        clocks={"triton": ClockDomain("triton", method="CLOCK_MONOTONIC")},
        absent={name: "a Triton trace holds only request stages" for name in
                ("kernels", "api_calls", "copies", "nvtx_ranges", "memory_events",
                 "layer_timings", "iterations", "network_events")},
        extra={"partial": partial, "issues": list(issues)},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
