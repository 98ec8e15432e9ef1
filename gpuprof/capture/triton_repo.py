"""Write a Triton model repository that serves an ONNX file through the python backend.

The bundled tritonserver (nvidia-pytriton) has no ONNX Runtime backend, so the model is a
python-backend model (``triton_onnx_model.py``) that runs the ONNX file with ONNX Runtime.
Input and output names, datatypes and dims come from the ONNX graph; dynamic dims become -1 and
``max_batch_size`` is 0, so clients send full shapes (the batch dim included). With
``Batching`` the first dim of every tensor is Triton's batch dim instead (it must be free in the
graph): the config gets ``max_batch_size`` and ``dynamic_batching``, and the model runs the
requests Triton batches together as one ONNX Runtime call.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError

MODEL_TEMPLATE = Path(__file__).with_name("triton_onnx_model.py")

# ONNX TensorProto element type -> Triton config data type
ONNX_TO_TRITON = {
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16",
    6: "TYPE_INT32", 7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16",
    11: "TYPE_FP64", 12: "TYPE_UINT32", 13: "TYPE_UINT64", 16: "TYPE_BF16",
}

@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str          # Triton config type, e.g. "TYPE_FP32"
    dims: tuple[int, ...]   # -1 for a dynamic dim


@dataclass(frozen=True)
class Batching:
    """Triton's dynamic batcher: up to ``max_batch_size`` rows per execution, a request waiting
    at most ``max_queue_delay_us`` for others to join it."""

    max_batch_size: int = 8
    max_queue_delay_us: int = 0

    def check(self) -> Batching:
        if self.max_batch_size < 1:
            raise BadInputError(f"--max-batch-size must be at least 1, not {self.max_batch_size}",
                                "E.g. --max-batch-size 8")
        if self.max_queue_delay_us < 0:
            raise BadInputError("--max-queue-delay-us cannot be negative",
                                "0 batches only requests already queued")
        return self


def model_name_for(model_path: str | Path) -> str:
    """A Triton model name (a directory name) from the file name: safe characters only."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(model_path).stem).strip("._") or "model"
    return stem


def onnx_io(model_path: str | Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's real inputs (initializers excluded) and outputs as Triton tensor specs."""
    import onnx

    try:
        graph = onnx.load(str(model_path), load_external_data=False).graph
    except Exception as exc:
        raise BadInputError(f"cannot read ONNX model '{model_path}': {exc}",
                            "Pass a valid .onnx file") from exc
    initializers = {init.name for init in graph.initializer}
    inputs = [_spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [_spec(v) for v in graph.output]


def _spec(value_info) -> TensorSpec:
    tensor = value_info.type.tensor_type
    if tensor.elem_type not in ONNX_TO_TRITON:
        raise BadInputError(f"tensor '{value_info.name}' has ONNX element type "
                            f"{tensor.elem_type}, which Triton cannot serve",
                            "Convert the model's inputs/outputs to a standard numeric type")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                 for d in tensor.shape.dim)
    return TensorSpec(value_info.name, ONNX_TO_TRITON[tensor.elem_type], dims)


def batched_specs(specs: list[TensorSpec], model_path: str | Path) -> list[TensorSpec]:
    """``specs`` without their first dim, which must be free (-1) in the graph: Triton's batch
    dim is then the graph's dim 0, so requests can be stacked along it."""
    fixed = [s for s in specs if not s.dims or s.dims[0] != -1]
    if fixed:
        shown = ", ".join(f"'{s.name}' {list(s.dims)}" for s in fixed)
        raise BadInputError(f"'{Path(model_path).name}' cannot be batched: the first dim of "
                            f"{shown} is not a free batch dim",
                            "Serve it without --dynamic-batching, or export the ONNX model "
                            "with a dynamic first (batch) dim")
    return [TensorSpec(s.name, s.data_type, s.dims[1:]) for s in specs]


def config_pbtxt(name: str, onnx_path: Path, inputs: list[TensorSpec],
                 outputs: list[TensorSpec], instances: int = 1, intra_op_threads: int = 1,
                 profile_dir: Path | None = None, batching: Batching | None = None) -> str:
    """The model's config.pbtxt; strings are JSON-quoted, which protobuf text format accepts.
    ``profile_dir``: the model profiles ONNX Runtime into that folder (``triton_onnx_model``).
    ``batching``: ``inputs``/``outputs`` are already without their batch dim
    (``batched_specs``)."""
    max_batch = batching.max_batch_size if batching else 0
    lines = [f"name: {json.dumps(name)}", 'backend: "python"', f"max_batch_size: {max_batch}"]
    lines += (_tensor_block("input", inputs, bool(batching))
              + _tensor_block("output", outputs, bool(batching)))
    if batching:
        lines.append("dynamic_batching { max_queue_delay_microseconds: "
                     f"{batching.max_queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]")
    lines += [_parameter("onnx_path", str(onnx_path)),
              _parameter("intra_op_threads", str(intra_op_threads))]
    if profile_dir:
        lines.append(_parameter("profile_dir", str(profile_dir)))
    return "\n".join(lines) + "\n"


def _tensor_block(kind: str, specs: list[TensorSpec], batched: bool = False) -> list[str]:
    body = ",\n".join(
        f"  {{ name: {json.dumps(s.name)} data_type: {s.data_type} "
        f"dims: [ {', '.join(str(d) for d in s.dims) or '1'} ]"
        f"{' reshape: { shape: [ ] }' if batched and not s.dims else ''} }}" for s in specs)
    # A scalar tensor has no dims; Triton wants at least one, so it is served as shape [1]
    # (batched: a graph tensor [batch] is [batch, 1] on the wire, reshaped back by Triton).
    return [f"{kind} [", body, "]"]


def _parameter(key: str, value: str) -> str:
    quoted = json.dumps(value)
    return f"parameters: {{ key: {json.dumps(key)} value: {{ string_value: {quoted} }} }}"


def write_repository(model_path: str | Path, repo_dir: str | Path, name: str | None = None,
                     instances: int = 1, intra_op_threads: int = 1,
                     profile_dir: str | Path | None = None,
                     batching: Batching | None = None) -> str:
    """Write ``repo_dir/<name>/{config.pbtxt, 1/model.py}``; returns the model name.
    With ``profile_dir`` the model writes ONNX Runtime profiles there (created, absolute);
    with ``batching`` Triton batches requests and the model runs each batch once."""
    onnx_path = Path(model_path).resolve()
    if not onnx_path.is_file():
        raise BadInputError(f"ONNX model '{model_path}' not found", "Check the path")
    name = name or model_name_for(onnx_path)
    inputs, outputs = onnx_io(onnx_path)
    if batching:
        inputs = batched_specs(inputs, onnx_path)
        outputs = batched_specs(outputs, onnx_path)
    model_dir = Path(repo_dir) / name
    if profile_dir:
        profile_dir = Path(profile_dir).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(
        config_pbtxt(name, onnx_path, inputs, outputs, instances, intra_op_threads,
                     profile_dir, batching))
    shutil.copyfile(MODEL_TEMPLATE, model_dir / "1" / "model.py")
    return name
