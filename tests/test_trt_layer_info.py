"""TensorRT layer information and trtexec profiles, on real trtexec outputs and a real
TensorRT-RTX build; their use in the engine report's layer reconciliation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gpuprof.errors import BadInputError
from gpuprof.ingest.trt_layer_info import (
    precision_of,
    read_layer_info,
    read_trtexec_profile,
    with_layer_types,
)
from gpuprof.model import conform
from gpuprof.model.engine_layers import layer_info_by_name

from .conftest import fixture_path

TREX = "NVIDIA__TensorRT__tools__experimental__trt-engine-explorer__examples__pytorch__resnet__A100__fp16__resnet.onnx.engine"
COOKBOOK = "NVIDIA__trt-samples-for-hackathon-cn__cookbook__07-Tool__trtexec__model-trained-exportLayerInfo.log"
MODELS = Path(__file__).resolve().parents[1] / "models"


def test_inspector_json_from_trtexec():
    path = fixture_path("trtexec", f"{TREX}.graph.json")
    layers = read_layer_info(path)
    raw = json.loads(path.read_text())["Layers"]
    assert len(layers) == len(raw) == 36
    assert list(layers["layer"]) == [layer["Name"] for layer in raw]
    assert layers["precision"].value_counts().to_dict() == {"FP16": 35, "FP32": 1}
    conv = layers.set_index("layer").loc["Conv_0 + Relu_1"]
    assert conv["layer_type"] == "CaskConvolution"
    assert conv["tactic"].startswith("trt_turing_cutlass_image_network_first_layer")
    assert set(layers["info_kind"]) == {"engine_inspector"}


def test_inspector_json_with_onnx_origins():
    layers = read_layer_info(fixture_path("trtexec", COOKBOOK)).set_index("layer")
    assert layers.loc["node_conv2d + node_relu", "onnx_nodes"] == "node_conv2d, node_relu"
    assert layers.loc["node_conv2d + node_relu", "precision"] == "FP32"
    assert layers.loc["__myl_CastReshCast_myl4_4", "precision"] == "INT64"


def test_trtexec_profile_matches_its_file():
    path = fixture_path("trtexec", f"{TREX}.profile.json")
    timings = read_trtexec_profile(path)
    raw = json.loads(path.read_text())[1:]
    assert len(timings) == len(raw)
    assert timings["duration_ns"].sum() == pytest.approx(sum(e["averageMs"] for e in raw) * 1e6, abs=len(raw))
    assert set(timings["source"]) == {"trtexec"}
    # the same engine's layer info gives every profiled layer its type
    typed = with_layer_types(timings, read_layer_info(fixture_path("trtexec", f"{TREX}.graph.json")))
    assert typed["layer_type"].notna().all()


def test_layer_info_by_name_keeps_one_whole_row_per_name():
    """A repeated name keeps its most complete row (the first on a tie), for every join."""
    engine = conform("engine_layers", pd.DataFrame({
        "index": [0, 1, 2, 3], "layer": ["a", "b", "a", "b"],
        "layer_type": [None, "Reformat", "CaskConvolution", "Other"],
        "precision": ["FP16", None, "FP32", None], "tactic": [None, None, "t1", None],
        "onnx_nodes": [None] * 4, "info_kind": ["engine_inspector"] * 4}))
    info = layer_info_by_name(engine)
    assert info.loc["a"].tolist() == ["CaskConvolution", "FP32", "t1"]
    assert info.loc["b", "layer_type"] == "Reformat"
    timings = conform("layer_timings", pd.DataFrame({"iteration": [0, 0], "layer": ["a", "c"],
                                                     "duration_ns": [5, 6], "source": "iprofiler"}))
    typed = with_layer_types(timings, engine).set_index("layer")["layer_type"]
    assert typed["a"] == "CaskConvolution" and pd.isna(typed["c"])


@pytest.mark.parametrize("text, precision", [("Row major linear FP32", "FP32"), ("Half", "FP16"),
                                             ("Channel major FP16 format where channel % 4 == 0", "FP16"),
                                             ("Int8", "INT8"), ("BFloat16", "BF16"), ("FLOAT", "FP32"),
                                             (None, None), ("Unknown thing", None)])
def test_precision_words(text, precision):
    assert precision_of(text) == precision


def test_bad_layer_info(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BadInputError, match="not readable JSON"):
        read_layer_info(bad)
    with pytest.raises(BadInputError, match="no 'Layers'"):
        read_layer_info({"Bindings": []})
    with pytest.raises(BadInputError, match="exportProfile"):
        read_trtexec_profile([{"name": "x"}])


@pytest.mark.trt
def test_network_layers_from_a_real_rtx_build(tmp_path):
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import BuildOptions

    model = MODELS / "ppocr_mobile_v2_cls.onnx"
    if not model.exists():
        pytest.skip("models not fetched (python tools/fetch_models.py)")
    built = build_engine(model, BuildOptions(shapes={"x": (1, 3, 64, 64)}), cache_dir=tmp_path)
    layers = read_layer_info(built.entry.layers)
    assert len(layers) == json.loads(Path(built.entry.layers).read_text())["layers"].__len__() > 100
    assert set(layers["info_kind"]) == {"network_pre_optimisation"}
    assert layers["layer_type"].notna().all() and layers["precision"].notna().any()


def test_reconcile_section_shows_precision_and_tactic():
    from gpuprof.render.reconcile_section import _with_layer_info

    table = pd.DataFrame({"layer": ["Conv_0 + Relu_1", "not in engine"], "iprofiler_ns": [1.0, 2.0]})
    engine = read_layer_info(fixture_path("trtexec", f"{TREX}.graph.json"))
    joined = _with_layer_info(table, engine).set_index("layer")
    assert joined.loc["Conv_0 + Relu_1", "precision"] == "FP16"
    assert pd.isna(joined.loc["not in engine", "tactic"])
    assert conform("engine_layers", engine).equals(engine)
