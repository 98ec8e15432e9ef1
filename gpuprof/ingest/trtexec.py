"""trtexec's files, into one run: ``--exportLayerInfo``, ``--exportProfile``, ``--exportTimes``
and the console log.

Layer information is read by ``trt_layer_info.read_layer_info`` (the engine inspector's JSON,
the same as trtexec writes); this module adds what TREx showed and that table does not keep:
each layer's input and output formats. The profile keeps every field trtexec writes (total,
mean and median ms per layer over ``count`` runs); the times file is one row per timed
inference. Fields are checked, not assumed: a file from a trtexec version whose fields differ
is one clear error naming what is missing.

Profile and layer information must describe the same engine: layers are matched by name, and
a profile whose layers the layer information mostly lacks is refused (two engines' files mixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import BadInputError
from ..model import Profile, conform
from ..model.meta import RunMeta, SourceFile
from .trt_layer_info import load_json, read_layer_info
from .trtexec_log import TrtexecLog, read_trtexec_log

PROFILE_FIELDS = ("name", "timeMs", "averageMs")        # medianMs/percentage: TensorRT 8+
TIMES_FIELDS = ("latencyMs", "computeMs", "h2dMs", "d2hMs")
# a profile is refused when fewer than this share of its layers are in the layer information
MIN_MATCHED_SHARE = 0.5
NS_PER_MS = 1_000_000


@dataclass
class TrtexecRun:
    profile: Profile                     # engine_layers, layer_timings (mean per layer), iterations
    layer_profile: pd.DataFrame          # layer, total_ns, mean_ns, median_ns, percent (file order)
    profiled_runs: int                   # trtexec's "count": runs behind each layer's numbers
    formats: pd.DataFrame                # layer, inputs, outputs (Format/Datatype strings)
    log: TrtexecLog | None = None
    unmatched_layers: list[str] = field(default_factory=list)  # profiled, absent from layer info


def read_trtexec(profile: str | Path | None = None, layer_info: str | Path | None = None,
                 times: str | Path | None = None, log: str | Path | None = None) -> TrtexecRun:
    """One trtexec run from whichever of its files exist (at least a profile or a log's
    --dumpProfile table; with a profile, its layer information)."""
    parsed_log = read_trtexec_log(log) if log else None
    if profile is not None and layer_info is None:
        raise BadInputError(f"{Path(profile).name} came without its layer information",
                            "Pass --layer-info L.json (trtexec --profilingVerbosity=detailed "
                            "--exportLayerInfo=L.json) for precision, tactic and formats")
    table, runs = _profile_source(profile, parsed_log)
    raw_info = load_json(layer_info) if layer_info else {"Layers": []}
    engine_layers = read_layer_info(raw_info) if layer_info else None
    unmatched = _check_match(table, engine_layers, profile, layer_info)
    iterations = read_trtexec_times(times) if times else None
    sources = [SourceFile(kind, Path(p).name) for kind, p in
               (("trtexec_profile", profile), ("trtexec_layer_info", layer_info),
                ("trtexec_times", times), ("trtexec_log", log)) if p]
    tables = {"layer_timings": _layer_timings(table)}
    if engine_layers is not None:
        tables["engine_layers"] = engine_layers
    if iterations is not None:
        tables["iterations"] = iterations
    meta = RunMeta(tool="trtexec", tool_version=(parsed_log.facts.get("TensorRT version") if parsed_log else None),
                   sources=sources, extra={"profiled_runs": runs})
    return TrtexecRun(Profile(tables=tables, meta=meta), table, runs, layer_formats(raw_info),
                      parsed_log, unmatched)


def _profile_source(profile, log: TrtexecLog | None) -> tuple[pd.DataFrame, int]:
    if profile is not None:
        return read_profile_table(profile)
    if log is not None and log.profile_rows:
        return _profile_frame(log.profile_rows, log.name), int(log.profile_iterations or 0)
    raise BadInputError("no per-layer profile given",
                        "Pass --profile P.json (trtexec --exportProfile=P.json) or a log of trtexec --dumpProfile")


def read_profile_table(path: str | Path) -> tuple[pd.DataFrame, int]:
    """``--exportProfile``'s layers with every field, and the count of runs behind them."""
    data = load_json(path)
    name = Path(path).name
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "count" not in data[0]:
        raise BadInputError(f"{name} is not a trtexec --exportProfile file (expected [{{\"count\": N}}, ...])",
                            "Write one with: trtexec --loadEngine=E --exportProfile=P.json")
    return _profile_frame(data[1:], name), int(data[0]["count"])


def _profile_frame(entries: list, name: str) -> pd.DataFrame:
    bad = next((e for e in entries if not isinstance(e, dict) or not all(k in e for k in PROFILE_FIELDS)), None)
    if bad is not None:
        have = sorted(bad) if isinstance(bad, dict) else type(bad).__name__
        raise BadInputError(f"{name}: a layer entry lacks {', '.join(PROFILE_FIELDS)} (has {have}); "
                            "a trtexec version whose profile format gpuprof does not know",
                            "Export the profile with TensorRT 8 to 10's trtexec --exportProfile")
    frame = pd.DataFrame({
        "layer": [str(e["name"]) for e in entries],
        "total_ns": [round(float(e["timeMs"]) * NS_PER_MS) for e in entries],
        "mean_ns": [round(float(e["averageMs"]) * NS_PER_MS) for e in entries],
        "median_ns": [round(float(e.get("medianMs", e["averageMs"])) * NS_PER_MS) for e in entries],
        "percent": [float(e.get("percentage", float("nan"))) for e in entries],
    })
    if frame.empty:
        raise BadInputError(f"{name} holds no layer", "Profile a run with trtexec --exportProfile")
    return frame


def _layer_timings(table: pd.DataFrame) -> pd.DataFrame:
    # iteration -1: trtexec keeps no per-run times, only each layer's mean over the runs
    return conform("layer_timings", pd.DataFrame({
        "iteration": -1, "layer": table["layer"], "duration_ns": table["mean_ns"], "source": "trtexec"}))


def _check_match(table: pd.DataFrame, engine_layers: pd.DataFrame | None, profile, layer_info) -> list[str]:
    if engine_layers is None:
        return []
    known = set(engine_layers["layer"])
    unmatched = [name for name in table["layer"] if name not in known]
    if len(table) and (len(table) - len(unmatched)) / len(table) < MIN_MATCHED_SHARE:
        raise BadInputError(
            f"{Path(layer_info).name} and {Path(profile).name if profile else 'the log profile'} describe "
            f"different engines ({len(unmatched)} of {len(table)} profiled layers are not in the layer information)",
            "Export both from the same engine: trtexec --loadEngine=E --exportLayerInfo=L.json --exportProfile=P.json")
    return unmatched


def layer_formats(raw_info: dict) -> pd.DataFrame:
    """Each layer's input and output formats ("Row major linear FP32", ...) as written."""
    engine = raw_info.get("engine", raw_info) if isinstance(raw_info, dict) else {}
    rows = []
    for layer in engine.get("Layers") or []:
        if isinstance(layer, dict):
            rows.append({"layer": str(layer.get("Name", "")),
                         "inputs": _formats(layer.get("Inputs")), "outputs": _formats(layer.get("Outputs"))})
    return pd.DataFrame(rows, columns=["layer", "inputs", "outputs"]).drop_duplicates("layer")


def _formats(tensors) -> str | None:
    found = [t.get("Format/Datatype") for t in tensors or [] if isinstance(t, dict) and t.get("Format/Datatype")]
    return "; ".join(dict.fromkeys(found)) if found else None


def read_trtexec_times(path: str | Path) -> pd.DataFrame:
    """``--exportTimes``: one ``iterations`` row per timed inference (start: the H2D start)."""
    data = load_json(path)
    name = Path(path).name
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise BadInputError(f"{name} is not a trtexec --exportTimes file (expected a list of iterations)",
                            "Write one with: trtexec --loadEngine=E --exportTimes=T.json")
    missing = [k for k in TIMES_FIELDS if k not in data[0]]
    if missing:
        raise BadInputError(f"{name}: iterations lack {', '.join(missing)} (have {', '.join(sorted(data[0]))}); "
                            "a trtexec version whose times format gpuprof does not know",
                            "Export the times with TensorRT 8 to 10's trtexec --exportTimes")
    frame = pd.DataFrame(data)

    def ns(column: str) -> pd.Series:
        return (frame[column].astype(float) * NS_PER_MS).round().astype("int64")

    start = ns("startH2dMs") if "startH2dMs" in frame else pd.Series(-1, index=frame.index)
    return conform("iterations", pd.DataFrame({
        "iteration": range(len(frame)), "start_ns": start,
        "end_ns": ns("endD2hMs") if "endD2hMs" in frame else start + ns("latencyMs"),
        "latency_ns": ns("latencyMs"), "h2d_ns": ns("h2dMs"), "compute_ns": ns("computeMs"),
        "d2h_ns": ns("d2hMs"), "source": "trtexec"}))


def find_trtexec_files(spec: str | Path) -> dict[str, Path]:
    """A trtexec run's files from a folder, or from its profile JSON and the files beside it
    named like it (``X.profile.json`` with ``X.graph.json``/``X.layers.json``, ``X.timing.json``
    or ``X.times.json``, ``X.log``)."""
    spec = Path(spec)
    if spec.is_dir():
        candidates = sorted(p for p in spec.iterdir() if p.is_file())
        stem_filter = None
    else:
        candidates = sorted(p for p in spec.parent.iterdir() if p.is_file())
        stem_filter = _stem(spec.name)
    found: dict[str, Path] = {}
    for path in candidates:
        if stem_filter is not None and not path.name.startswith(stem_filter):
            continue
        kind = _kind_by_name(path.name)
        if kind and kind not in found:
            found[kind] = path
    if not spec.is_dir():
        found["profile"] = spec
    if "profile" not in found:
        raise BadInputError(f"no trtexec profile (*profile*.json) in {spec.name}",
                            "Put the files of trtexec --exportProfile/--exportLayerInfo/--exportTimes there")
    return found


def _stem(name: str) -> str:
    for marker in (".profile.json", "-exportProfile.json", "_profile.json", ".json"):
        if name.endswith(marker):
            return name[: -len(marker)]
    return name


_NAME_KINDS = (("profile.metadata", None), ("build.metadata", None), ("metadata", None),
               ("profile", "profile"), ("exportprofile", "profile"),
               ("graph", "layer_info"), ("layerinfo", "layer_info"), ("layers", "layer_info"),
               ("timing", "times"), ("times", "times"))


def _kind_by_name(name: str) -> str | None:
    lower = name.lower()
    if "layerinfo" in lower:  # trtexec writes what --exportLayerInfo names, .log included
        return "layer_info"
    if lower.endswith(".log"):
        return "log"
    if not lower.endswith(".json"):
        return None
    for marker, kind in _NAME_KINDS:
        if marker in lower:
            return kind
    return None
