"""Reading an ONNX model's true inputs, resolving dynamic dims, --shapes and random feeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gpuprof.capture import onnx_inputs as oi
from gpuprof.errors import BadInputError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


def _model(inputs, ir_version=8, initializers=(), op="Identity"):
    """A one-node model; ``inputs`` are (name, elem_type, dims) and feed an Identity each."""
    values = [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs]
    nodes = [helper.make_node(op, [n], [f"{n}_out"]) for n, _, _ in inputs]
    outputs = [helper.make_tensor_value_info(f"{n}_out", t, None) for n, t, _ in inputs]
    graph = helper.make_graph(nodes, "g", values, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = ir_version
    return model


def _real(name: str) -> Path:
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{name} not fetched (python tools/fetch_models.py --tests)")
    return path


def _spec(dims, dtype="float32", name="x"):
    return oi.InputSpec(name, np.dtype(dtype), dims)


# -- reading inputs -----------------------------------------------------------------------

def test_initializers_listed_as_inputs_are_not_inputs():
    # IR 3 models list every weight among the graph inputs; only "x" must be fed.
    weight = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    model = _model([("x", TensorProto.FLOAT, [1, 2]), ("w", TensorProto.FLOAT, [2, 2])],
                   ir_version=3, initializers=[weight])
    specs = oi.read_inputs(model)
    assert [s.name for s in specs] == ["x"]
    assert specs[0].dims == (1, 2) and specs[0].dtype == np.float32


def test_dims_fixed_symbolic_and_unknown():
    model = _model([("x", TensorProto.INT64, ["batch", None, 7])])
    (spec,) = oi.read_inputs(model)
    assert spec.dims == ("batch", None, 7)
    assert spec.dtype == np.int64
    assert spec.declared == "batchx?x7"


def test_real_ppocr_detector_inputs_match_onnxruntime():
    import onnxruntime as ort

    path = _real("ppocrv4_det.onnx")
    specs = oi.read_inputs(oi.load_onnx(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [s.name for s in specs] == [i.name for i in session.get_inputs()] == ["x"]
    assert specs[0].dims[1] == 3 and all(isinstance(d, str) for d in specs[0].dims[::2])
    (resolved,) = oi.resolve_shapes(specs)
    assert resolved.shape == (1, 3, 640, 640) and resolved.guessed_axes == (0, 2, 3)


# -- default shapes -----------------------------------------------------------------------

@pytest.mark.parametrize("dims, expected, guessed", [
    (("n", 3, "h", "w"), (1, 3, 640, 640), (0, 2, 3)),       # NCHW image
    ((None, "h", "w", 3), (1, 640, 640, 3), (0, 1, 2)),      # NHWC image
    (("batch", "seq"), (1, 128), (0, 1)),                    # token ids
    ((1, 80, "frames"), (1, 80, 128), (2,)),                 # not an image: other rule
    ((2, 3, 4), (2, 3, 4), ()),                              # fully fixed
])
def test_default_rule(dims, expected, guessed):
    (r,) = oi.resolve_shapes([_spec(dims)])
    assert r.shape == expected and r.guessed_axes == guessed


def test_symbol_fixed_by_one_override_applies_to_other_inputs():
    a, b = _spec(("batch", "seq"), "int64", "ids"), _spec(("batch", "seq"), "int64", "mask")
    ra, rb = oi.resolve_shapes([a, b], {"ids": (4, 32)})
    assert ra.shape == (4, 32) and rb.shape == (4, 32) and rb.guessed_axes == ()


def test_no_declared_shape_needs_shapes():
    with pytest.raises(BadInputError, match="declares no shape"):
        oi.resolve_shapes([_spec(None)])
    (r,) = oi.resolve_shapes([_spec(None)], {"x": (2, 5)})
    assert r.shape == (2, 5)


# -- --shapes -----------------------------------------------------------------------------

def test_parse_shapes_forms():
    assert oi.parse_shapes("x:1x3x64x64, y:2x5") == {"x": (1, 3, 64, 64), "y": (2, 5)}
    assert oi.parse_shapes("1x3x64x64") == {"": (1, 3, 64, 64)}
    assert oi.parse_shapes("input:0:1x224x224x3") == {"input:0": (1, 224, 224, 3)}
    assert oi.parse_shapes(None) == {} and oi.parse_shapes("") == {}


@pytest.mark.parametrize("text", ["x:1x3xHx64", "x:", "x:1,,y:2x", "x:1x-3"])
def test_parse_shapes_rejects_garbage(text):
    with pytest.raises(BadInputError, match="cannot read shape"):
        oi.parse_shapes(text)


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 64), "rank 4"),
    ((1, 4, 64, 64), "fixed to 3 on axis 1"),
    ((1, 3, 0, 64), "zero dim"),
])
def test_shapes_that_do_not_fit_the_model(shape, message):
    with pytest.raises(BadInputError, match=message) as info:
        oi.resolve_shapes([_spec(("n", 3, "h", "w"))], {"x": shape})
    assert "\n" not in info.value.one_line() and "--shapes" in info.value.one_line()


def test_unknown_input_name_lists_the_real_ones():
    with pytest.raises(BadInputError, match="model's inputs are: x"):
        oi.resolve_shapes([_spec(("n", 3))], {"images": (1, 3)})


def test_unnamed_shape_needs_a_single_input():
    specs = [_spec(("n",), name="a"), _spec(("n",), name="b")]
    with pytest.raises(BadInputError, match="one input, this one has 2: a, b"):
        oi.resolve_shapes(specs, {"": (1,)})


# -- random feeds -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int64", "int32", "uint8", "bool"])
def test_make_inputs_dtypes_and_shapes(dtype):
    resolved = oi.resolve_shapes([_spec((2, 3), dtype)])
    feeds = oi.make_inputs(resolved)
    assert feeds["x"].dtype == np.dtype(dtype) and feeds["x"].shape == (2, 3)
    np.testing.assert_array_equal(feeds["x"], oi.make_inputs(resolved)["x"])  # seeded


# The same model input seen by both backends: ONNX element type -> numpy dtype (ONNX Runtime
# feeds, via onnx), TensorRT DataType -> numpy dtype (the TensorRT runner's buffers, via nptype).
SAME_INPUT = [(TensorProto.FLOAT, "FLOAT"), (TensorProto.FLOAT16, "HALF"), (TensorProto.INT8, "INT8"),
              (TensorProto.INT32, "INT32"), (TensorProto.INT64, "INT64"),
              (TensorProto.UINT8, "UINT8"), (TensorProto.BOOL, "BOOL")]


def test_tensorrt_runner_fills_inputs_with_the_same_function():
    from gpuprof.capture.trt import cuda_util

    assert cuda_util.random_input is oi.random_input


@pytest.mark.parametrize("onnx_type, trt_type", SAME_INPUT, ids=[t for _, t in SAME_INPUT])
def test_both_backends_draw_the_same_data_for_the_same_input(onnx_type, trt_type):
    from onnx.helper import tensor_dtype_to_np_dtype

    from gpuprof.capture.trt import api, cuda_util

    try:
        trt = api.interface_module()
    except Exception as exc:
        pytest.skip(str(exc))
    shape = (4, 64)
    onnx_spec = oi.InputSpec("x", np.dtype(tensor_dtype_to_np_dtype(onnx_type)), shape)
    ort_feed = oi.make_inputs(oi.resolve_shapes([onnx_spec]), seed=3)["x"]
    # the runner: one generator seeded with --seed, inputs drawn in order (runner.prepare)
    trt_dtype = np.dtype(trt.nptype(getattr(trt.DataType, trt_type)))
    trt_fill = cuda_util.random_input(np.random.default_rng(3), "x", trt_dtype, shape)
    assert trt_fill.dtype == ort_feed.dtype
    np.testing.assert_array_equal(trt_fill, ort_feed)
    _assert_range_rule(ort_feed)


def _assert_range_rule(data: np.ndarray) -> None:
    if data.dtype.kind == "f":
        assert 0 <= data.min() and data.max() < 1
    elif data.dtype.kind in "iu":
        assert 0 <= data.min() and data.max() < 10 and len(np.unique(data)) > 1
    else:
        assert data.dtype == np.bool_ and data.any() and not data.all()


def test_string_inputs_are_refused():
    with pytest.raises(BadInputError, match="cannot generate"):
        oi.make_inputs(oi.resolve_shapes([_spec((1,), "object")]))


def test_describe_resolved_names_guessed_axes():
    text = oi.describe_inputs(oi.resolved_facts(oi.resolve_shapes([_spec(("n", 3, "h", "w"))])))
    assert text == "x: 1x3x640x640 (float32; guessed axes 0,2,3)"


def test_input_facts_are_one_dict_for_every_backend():
    """ONNX Runtime (from resolved inputs) and the TensorRT runner (from the engine, -1 for a
    dynamic dim) build the same dict through ``input_fact``."""
    [fact] = oi.resolved_facts(oi.resolve_shapes([_spec((None, 3, None, None))]))
    assert fact == {"name": "x", "dtype": "float32", "declared": "?x3x?x?",
                    "shape": [1, 3, 640, 640], "guessed_axes": [0, 2, 3]}
    assert oi.input_fact("x", np.float32, oi.format_dims((-1, 3, -1, -1)), (1, 3, 640, 640),
                         (0, 2, 3)) == fact
    assert oi.format_dims(None) == "unknown rank"


# -- bad files ----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        oi.load_onnx(tmp_path / "nope.onnx")


def test_directory(tmp_path):
    with pytest.raises(BadInputError, match="is a directory"):
        oi.load_onnx(tmp_path)


@pytest.mark.parametrize("content", [
    np.random.default_rng(1).bytes(4096),
    b"this is a text file\nnot a model\n",
    b"",
    "\u00e9t\u00e9 \u2603\n".encode(),
])
def test_not_onnx(tmp_path, content):
    path = tmp_path / "fake.onnx"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="not an ONNX model"):
        oi.load_onnx(path)


def test_valid_model_loads(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(_model([("x", TensorProto.FLOAT, [1, 2])]), str(path))
    assert [s.name for s in oi.read_inputs(oi.load_onnx(path))] == ["x"]
