"""Real TensorRT builds (TensorRT-RTX builds on a CPU-only machine) of real pretrained models."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from gpuprof.errors import BadInputError, MissingDependencyError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
pytestmark = pytest.mark.trt


def model(name: str) -> Path:
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"models/{name} not found (run tools/fetch_models.py --tests)")
    return path


@pytest.fixture(scope="module")
def trt():
    from gpuprof.capture.trt import api

    try:
        return api.builder_module()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def det320(trt, tmp_path_factory):
    """PP-OCRv4 det built once for a small fixed shape, with its progress events."""
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import BuildOptions, parse_shapes

    events: list[tuple] = []
    options = BuildOptions(shapes=parse_shapes("x:1x3x320x320"))
    cache = tmp_path_factory.mktemp("engines")
    result = build_engine(model("ppocrv4_det.onnx"), options, cache_dir=cache,
                          progress=lambda *e: events.append(e))
    return result, events


def test_det_build_writes_plan_sidecar_and_layers(det320):
    result, _ = det320
    side = result.sidecar
    assert not result.cache_hit
    assert result.plan.stat().st_size == side["plan_bytes"] > 1_000_000
    assert side["profiling_verbosity"] == "DETAILED"
    assert side["profile"] == {"x": {"min": [1, 3, 320, 320], "opt": [1, 3, 320, 320],
                                     "max": [1, 3, 320, 320]}}
    assert side["profile_source"] == "given"
    assert side["guessed_axes"] == {} and side["precisions"] == []
    assert side["inputs"] == {"x": [-1, 3, -1, -1]}
    assert side["model"]["name"] == "ppocrv4_det.onnx" and len(side["model"]["sha256"]) == 64
    layers = json.loads(result.entry.layers.read_text())
    assert layers["kind"] in ("engine_inspector", "network_pre_optimisation")
    if layers["kind"] == "network_pre_optimisation":
        assert "BEFORE" in layers["note"]
        assert len(layers["layers"]) == side["layer_count"] > 100
        first = layers["layers"][0]
        assert first["type"] == "CONVOLUTION" and first["inputs"] == ["x"]


def test_progress_callbacks_report_phases(det320):
    result, events = det320
    kinds = {e[0] for e in events}
    assert kinds == {"start", "step", "finish"}
    starts = [e for e in events if e[0] == "start"]
    assert starts[0][2] is None  # the first phase is a top-level one
    assert any(e[2] is not None for e in starts)  # and it has child phases
    assert [p["name"] for p in result.sidecar["build_phases"]] == [starts[0][1]]


def test_config_has_detailed_verbosity(trt):
    from gpuprof.capture.trt.build import make_config, network_inputs, parse_onnx
    from gpuprof.capture.trt.options import ShapeRange
    from gpuprof.capture.trt.progress import ProgressState, progress_monitor

    parsed = parse_onnx(trt, model("ppocr_mobile_v2_cls.onnx"))
    assert network_inputs(parsed.network) == {"x": (-1, 3, -1, -1)}
    shape = (1, 3, 64, 64)
    config = make_config(trt, parsed, _options(), {"x": ShapeRange(shape, shape, shape)},
                         progress_monitor(trt, ProgressState()))
    assert config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED
    assert config.num_optimization_profiles == 1


def _options(**kwargs):
    from gpuprof.capture.trt.options import BuildOptions

    return BuildOptions(**kwargs)


def test_det_min_opt_max_profile(trt, tmp_path):
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import parse_shapes

    options = _options(min_shapes=parse_shapes("x:1x3x160x160"), opt_shapes=parse_shapes("x:1x3x320x320"),
                       max_shapes=parse_shapes("x:1x3x480x480"))
    result = build_engine(model("ppocrv4_det.onnx"), options, cache_dir=tmp_path)
    assert result.sidecar["profile"]["x"] == {"min": [1, 3, 160, 160], "opt": [1, 3, 320, 320],
                                              "max": [1, 3, 480, 480]}


def test_cls_default_profile_is_documented_and_noted(trt, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    result = build_engine(model("ppocr_mobile_v2_cls.onnx"), _options(), cache_dir=tmp_path)
    assert result.sidecar["profile_source"] == "default"
    # onnx_inputs' shared rule: batch 1, 640 for the spatial dims of an NCHW image input.
    assert result.sidecar["profile"]["x"]["opt"] == [1, 3, 640, 640]
    assert result.sidecar["guessed_axes"] == {"x": [0, 2, 3]}  # what a run reports as guessed
    assert any("default profile" in note for note in result.notes)


def test_yolov8n_builds(trt, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    result = build_engine(model("yolov8n_320.onnx"), _options(shapes={"images": (1, 3, 320, 320)}),
                          cache_dir=tmp_path)
    assert result.sidecar["layer_count"] > 300
    assert result.sidecar["tensorrt"]["module"] == trt.__name__


def test_cancel_from_monitor_leaves_no_plan(trt, tmp_path):
    from gpuprof.capture.trt.build import BuildCancelledError, build_engine
    from gpuprof.capture.trt.progress import ProgressState

    state = ProgressState()
    state.listener = lambda event, *rest: state.cancel() if event == "step" else None
    with pytest.raises(BuildCancelledError):
        build_engine(model("ppocr_mobile_v2_cls.onnx"), _options(), cache_dir=tmp_path, state=state)
    assert state.phases, "TensorRT reported no phase before the cancel"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ctrl_c_during_build_cancels_cleanly(trt, tmp_path):
    from gpuprof.capture.trt.build import BuildCancelledError, build_engine

    sent = []

    def press_ctrl_c(event, *rest):
        if event == "step" and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(BuildCancelledError):
        build_engine(model("ppocr_mobile_v2_cls.onnx"), _options(), cache_dir=tmp_path,
                     progress=press_ctrl_c)
    assert signal.getsignal(signal.SIGINT) is handler
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def broken_model(tmp_path) -> Path:
    """Relu -> an op of an unknown domain -> Abs: TensorRT must reject the middle node."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["t"], name="ok_relu"),
             helper.make_node("Frobnicate", ["t"], ["y"], name="bad_node", domain="com.example.nope"),
             helper.make_node("Abs", ["y"], ["z"], name="abs")]
    graph = helper.make_graph(nodes, "broken", [x], [z])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                         helper.make_opsetid("com.example.nope", 1)])
    path = tmp_path / "broken.onnx"
    onnx.save(onnx_model, str(path))
    return path


def test_parser_error_lists_failing_node(trt, broken_model, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    with pytest.raises(BadInputError) as info:
        build_engine(broken_model, _options(), cache_dir=tmp_path / "cache")
    text = info.value.one_line()
    assert "node 1 'bad_node' (Frobnicate)" in text
    assert "INVALID_NODE" in text
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("flag", ["fp16", "bf16", "int8", "best"])
def test_precision_flags_missing_in_flavour_give_clear_error(trt, flag, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    options = _options(**{flag: True})
    if all(hasattr(trt.BuilderFlag, p.upper()) for p in options.precisions()):
        pytest.skip(f"{trt.__name__} has the builder flags for --{flag}")
    with pytest.raises(BadInputError, match="strongly typed"):
        build_engine(model("ppocr_mobile_v2_cls.onnx"), options, cache_dir=tmp_path)


def test_int8_without_qdq_nodes_is_noted(trt):
    from gpuprof.capture.trt.build import _int8_notes, parse_onnx

    parsed = parse_onnx(trt, model("ppocr_mobile_v2_cls.onnx"))
    assert _int8_notes(trt, parsed, _options()) == []
    assert "no Q/DQ nodes" in _int8_notes(trt, parsed, _options(best=True))[0]


def test_bad_shapes_are_user_errors(trt, tmp_path):
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import parse_shapes

    det = model("ppocrv4_det.onnx")
    for text, message in [("y:1x3x32x32", "unknown input"), ("x:1x4x32x32", "does not fit"),
                          ("x:1x3x32", "does not fit")]:
        with pytest.raises(BadInputError, match=message):
            build_engine(det, _options(shapes=parse_shapes(text)), cache_dir=tmp_path)
    with pytest.raises(BadInputError, match="min"):
        build_engine(det, _options(min_shapes=parse_shapes("x:1x3x64x64"),
                                   max_shapes=parse_shapes("x:1x3x32x32")), cache_dir=tmp_path)


def test_one_name_on_two_axes_is_split_so_48x192_builds(trt, tmp_path):
    """The cls model names both spatial dims "?", which TensorRT holds equal: gpuprof gives each
    axis its own name, so the classifier's real 48x192 input builds (README example)."""
    from gpuprof.capture.trt.build import build_engine

    result = build_engine(model("ppocr_mobile_v2_cls.onnx"),
                          _options(shapes={"x": (1, 3, 48, 192)}), cache_dir=tmp_path)
    assert result.sidecar["profile"]["x"]["opt"] == [1, 3, 48, 192]
    assert result.plan.stat().st_size > 0


def test_names_shared_across_inputs_still_tie_them():
    from onnx import TensorProto, helper

    from gpuprof.capture.onnx_inputs import distinct_dim_params

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "?", "?"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([], "g", [a, b], [])
    proto = helper.make_model(graph)
    assert distinct_dim_params(proto) == ["a: ? -> a_dim1, a_dim2"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in proto.graph.input]
    assert dims == [["batch", "a_dim1", "a_dim2"], ["batch", 4]]


def test_missing_model_is_a_user_error(trt, tmp_path):
    from gpuprof.capture.trt.build import build_engine

    with pytest.raises(BadInputError, match="not found"):
        build_engine(tmp_path / "nope.onnx", _options(), cache_dir=tmp_path)


def test_cli_build_then_cache_hit(trt, tmp_path):
    from gpuprof.cli.main import main

    args = ["build", str(model("ppocr_mobile_v2_cls.onnx")), "--shapes", "x:1x3x64x64",
            "--cache-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0
    assert len(list(tmp_path.glob("*.plan"))) == 1


def test_cli_output_lines(trt, tmp_path):
    from click.testing import CliRunner

    from gpuprof.cli.build import build_command

    args = [str(model("ppocr_mobile_v2_cls.onnx")), "--shapes", "1x3x64x64", "--cache-dir", str(tmp_path)]
    first = CliRunner().invoke(build_command, args)
    second = CliRunner().invoke(build_command, args)
    assert first.exit_code == 0, first.output
    assert "Built in" in first.output and ".plan" in first.output
    assert "Cache hit" in second.output
