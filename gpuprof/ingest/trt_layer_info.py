"""TensorRT layer information and trtexec layer profiles, into the data model.

Layer information comes in two shapes:
- the engine inspector's JSON (``get_engine_information(LayerInformationFormat.JSON)``, also
  what ``trtexec --exportLayerInfo`` writes): ``{"Layers": [...], "Bindings": [...]}``, each
  layer a dict (DETAILED verbosity) or only a name (other verbosities);
- gpuprof's record of the parsed network before optimisation, kept when no GPU can load the
  plan: ``{"kind": "network_pre_optimisation", "layers": [...]}``.

``trtexec --exportProfile`` writes ``[{"count": N}, {"name", "timeMs", "averageMs",
"medianMs", "percentage"}, ...]``: per-layer means over N runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BadInputError
from ..model import conform
from ..model.engine_layers import layer_info_by_name

# Datatype words in TensorRT's format descriptions ("Row major linear FP32", "Channel major FP16
# format where channel % 4 == 0", "Float", "Half", "Int8") and in network dtypes ("FLOAT").
PRECISIONS = [
    (re.compile(r"\b(BF16|BFloat16|BFLOAT16)\b"), "BF16"),
    (re.compile(r"\b(FP16|Half|HALF)\b"), "FP16"),
    (re.compile(r"\b(FP32|Float|FLOAT)\b"), "FP32"),
    (re.compile(r"\b(FP8|FP8E4M3|Fp8)\b"), "FP8"),
    (re.compile(r"\b(INT8|Int8)\b"), "INT8"),
    (re.compile(r"\b(INT4|Int4)\b"), "INT4"),
    (re.compile(r"\b(INT32|Int32)\b"), "INT32"),
    (re.compile(r"\b(INT64|Int64)\b"), "INT64"),
    (re.compile(r"\b(BOOL|Bool)\b"), "BOOL"),
]
ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


def precision_of(description: str | None) -> str | None:
    for pattern, name in PRECISIONS:
        if description and pattern.search(description):
            return name
    return None


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path.name} is not readable JSON ({exc.__class__.__name__}: {exc})",
                            "Pass the file trtexec or gpuprof build wrote") from exc


def read_layer_info(source: str | Path | dict) -> pd.DataFrame:
    """The ``engine_layers`` table from layer information (a path or already-loaded JSON)."""
    data = load_json(source) if not isinstance(source, dict) else source
    if not isinstance(data, dict):
        raise BadInputError("layer information must be a JSON object",
                            "Pass trtexec --exportLayerInfo output or a gpuprof engine's .layers.json")
    if data.get("kind") == "network_pre_optimisation":
        rows = [_network_row(i, layer) for i, layer in enumerate(data.get("layers", []))]
        kind = "network_pre_optimisation"
    else:
        engine = data.get("engine", data)  # gpuprof wraps the inspector's JSON in "engine"
        layers = engine.get("Layers")
        if not isinstance(layers, list):
            raise BadInputError("the JSON has no 'Layers' list",
                                "Pass trtexec --exportLayerInfo output or a gpuprof engine's .layers.json")
        rows = [_inspector_row(i, layer) for i, layer in enumerate(layers)]
        kind = "engine_inspector"
    frame = pd.DataFrame(rows, columns=["index", "layer", "layer_type", "precision", "tactic", "onnx_nodes"])
    return conform("engine_layers", frame.assign(info_kind=kind))


def _inspector_row(index: int, layer: Any) -> dict[str, Any]:
    if isinstance(layer, str):  # not DETAILED: names only
        return {"index": index, "layer": layer}
    outputs = layer.get("Outputs") or [{}]
    first = outputs[0] if isinstance(outputs[0], dict) else {}
    nodes = ONNX_LAYER.findall(str(layer.get("Metadata", "")))
    return {
        "index": index, "layer": str(layer.get("Name", f"layer {index}")),
        "layer_type": layer.get("LayerType"),
        "precision": precision_of(first.get("Format/Datatype")),
        "tactic": layer.get("TacticName") or layer.get("TacticValue"),
        "onnx_nodes": ", ".join(nodes) if nodes else None,
    }


def _network_row(index: int, layer: dict[str, Any]) -> dict[str, Any]:
    outputs = layer.get("outputs") or [{}]
    return {"index": index, "layer": str(layer.get("name", f"layer {index}")),
            "layer_type": layer.get("type"),
            "precision": layer.get("precision") or precision_of(str(outputs[0].get("dtype"))),
            "tactic": None, "onnx_nodes": None}


def read_trtexec_profile(source: str | Path | list) -> pd.DataFrame:
    """``layer_timings`` rows from ``trtexec --exportProfile``: one row per layer holding its
    mean time over the profiled runs (iteration -1: the file keeps no per-run times)."""
    data = load_json(source) if not isinstance(source, list) else source
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "count" not in data[0]:
        raise BadInputError("not a trtexec --exportProfile file (expected [{\"count\": N}, ...])",
                            "Write one with: trtexec --loadEngine=E --exportProfile=profile.json")
    rows = [{"iteration": -1, "layer": str(entry["name"]),
             "duration_ns": round(float(entry["averageMs"]) * 1e6), "source": "trtexec"}
            for entry in data[1:] if isinstance(entry, dict) and "name" in entry and "averageMs" in entry]
    return conform("layer_timings", pd.DataFrame(rows))


def with_layer_types(layer_timings: pd.DataFrame, engine_layers: pd.DataFrame) -> pd.DataFrame:
    """``layer_timings`` whose missing layer types are filled from the engine's layers."""
    if engine_layers.empty or layer_timings.empty:
        return layer_timings
    types = layer_info_by_name(engine_layers, ("layer_type",))["layer_type"]
    filled = layer_timings["layer"].astype(object).map(types)
    current = layer_timings["layer_type"].astype(object)
    return layer_timings.assign(layer_type=current.where(current.notna(), filled).astype("category"))
