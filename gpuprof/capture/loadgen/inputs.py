"""The model's inputs as the server describes them, and the tensors a load test sends.

Shapes follow perf_analyzer: a variable dim (-1) needs ``--shape``; for a batching model
(``max_batch_size > 0``) ``--shape`` and JSON shapes leave out the batch dim, which ``-b`` sets.
Input data is ``random``, ``zero`` or a perf_analyzer JSON file:
``{"data": [{"INPUT": [...] or {"content": [...], "shape": [...]}}, ...]}``; requests cycle
through its entries, and the first entry's ``"shape"`` defines variable dims as --shape does.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import BadInputError

NUMPY_TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}

Payload = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str              # KServe v2 name: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]     # as the metadata reports it (batch dim included when batching)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    max_batch_size: int

    @classmethod
    def from_server(cls, metadata: dict, config: dict) -> ModelInfo:
        def tensors(key):
            return tuple(TensorInfo(t["name"], t["datatype"], tuple(int(d) for d in t["shape"]))
                         for t in metadata.get(key, []))
        versions = metadata.get("versions") or [""]
        return cls(metadata["name"], str(versions[-1]), tensors("inputs"), tensors("outputs"),
                   int(config.get("max_batch_size", 0) or 0))


def request_shapes(info: ModelInfo, overrides: dict[str, tuple[int, ...]],
                   batch_size: int) -> dict[str, tuple[int, ...]]:
    """The full shape each input is sent with (batch dim included)."""
    unknown = set(overrides) - {t.name for t in info.inputs}
    if unknown:
        raise BadInputError(f"--shape names unknown input(s) {sorted(unknown)}",
                            f"The model's inputs are: {', '.join(t.name for t in info.inputs)}")
    if batch_size > 1 and info.max_batch_size == 0:
        raise BadInputError(f"model '{info.name}' does not support batching (max_batch_size 0)",
                            "Use -b 1 and put the batch in --shape")
    if info.max_batch_size and batch_size > info.max_batch_size:
        raise BadInputError(f"batch size {batch_size} exceeds the model's max_batch_size "
                            f"{info.max_batch_size}", "Use a smaller -b")
    return {t.name: _one_shape(t, overrides.get(t.name), info.max_batch_size, batch_size)
            for t in info.inputs}


def _one_shape(tensor: TensorInfo, override, max_batch: int, batch: int) -> tuple[int, ...]:
    model_dims = tensor.shape[1:] if max_batch > 0 else tensor.shape
    dims = tuple(override) if override is not None else model_dims
    if len(dims) != len(model_dims) or any(m not in (-1, d) for m, d in zip(model_dims, dims)):
        raise BadInputError(f"--shape {tensor.name}:{_dims(dims)} does not fit the model's "
                            f"shape [{_dims(model_dims)}]",
                            "Match the rank and every fixed dim" +
                            (" (leave out the batch dim; -b sets it)" if max_batch else ""))
    if any(d < 0 for d in dims):
        raise BadInputError(f'the variable-sized tensor "{tensor.name}" with model shape '
                            f"[{_dims(model_dims)}] needs its shape fully defined",
                            f"Pass --shape {tensor.name}:" + _dims(d if d > 0 else 1 for d in dims))
    return ((batch,) if max_batch > 0 else ()) + dims


def _dims(dims) -> str:
    return ",".join(str(d) for d in dims)


def make_payloads(info: ModelInfo, shapes: dict[str, tuple[int, ...]], source: str,
                  seed: int = 0) -> list[Payload]:
    """The tensors to send: one payload for random/zero, one per JSON entry otherwise."""
    if source in ("random", "zero"):
        rng = np.random.default_rng(seed)
        return [{t.name: _generated(t, shapes[t.name], source, rng) for t in info.inputs}]
    return read_input_json(source, info, shapes)


def _generated(tensor: TensorInfo, shape, source: str, rng) -> np.ndarray:
    dtype = numpy_type(tensor)
    if dtype is np.object_:
        fill = (lambda: b"") if source == "zero" else (lambda: rng.bytes(8).hex().encode())
        return np.array([fill() for _ in range(math.prod(shape))], dtype=np.object_).reshape(shape)
    if source == "zero":
        return np.zeros(shape, dtype=dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype is np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    return rng.integers(0, 100, shape).astype(dtype)


def numpy_type(tensor: TensorInfo):
    if tensor.datatype not in NUMPY_TYPES:
        raise BadInputError(f"input '{tensor.name}' has datatype {tensor.datatype}, which "
                            "gpuprof perf cannot generate", "Use a model with standard types")
    return NUMPY_TYPES[tensor.datatype]


def data_shapes(source: str) -> dict[str, tuple[int, ...]]:
    """The shapes the first entry of an ``--input-data`` JSON gives its inputs (``"shape"``):
    as in perf_analyzer, they define the variable dims that --shape would (which wins)."""
    if source in ("random", "zero"):
        return {}
    first = _entries(source)[0]
    if not isinstance(first, dict):
        return {}
    return {name: tuple(int(d) for d in value["shape"]) for name, value in first.items()
            if isinstance(value, dict) and isinstance(value.get("shape"), list)}


def read_input_json(path: str | Path, info: ModelInfo,
                    shapes: dict[str, tuple[int, ...]]) -> list[Payload]:
    """Parse perf_analyzer's ``--input-data`` JSON into payloads, checking names and sizes."""
    return [_payload(i, e, info, shapes) for i, e in enumerate(_entries(path))]


def _entries(path: str | Path) -> list:
    """The ``data`` list of a perf_analyzer input JSON."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise BadInputError(f"--input-data file '{path}' not found",
                            "Use random, zero or a JSON file path") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read --input-data '{path}': {exc}",
                            "Give perf_analyzer's JSON format: {\"data\": [{...}]}") from exc
    entries = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadInputError(f"'{path}' has no \"data\" list", 'Use {"data": [{"INPUT": [...]}]}')
    return entries


def _payload(index: int, entry, info: ModelInfo, shapes) -> Payload:
    if isinstance(entry, list):
        raise BadInputError("sequence (nested list) input data is not supported",
                            "Give one object per request in \"data\"")
    missing = [t.name for t in info.inputs if t.name not in entry]
    if missing:
        raise BadInputError(f"input data entry {index} lacks input(s) {missing}",
                            "Give every model input in each entry")
    return {t.name: _tensor(t, entry[t.name], shapes[t.name], info.max_batch_size, index)
            for t in info.inputs}


def _tensor(tensor: TensorInfo, value, shape, max_batch: int, index: int) -> np.ndarray:
    dtype = numpy_type(tensor)
    batch = shape[0] if max_batch > 0 else 1
    sample_shape = shape[1:] if max_batch > 0 else shape
    if isinstance(value, dict) and "shape" in value:
        sample_shape = tuple(int(d) for d in value["shape"])
        _one_shape(tensor, sample_shape, max_batch, batch)  # it must fit the model's dims
    flat = _content(value, dtype)
    if flat.size != math.prod(sample_shape):
        raise BadInputError(f"input data entry {index}: '{tensor.name}' has {flat.size} values "
                            f"but shape [{_dims(sample_shape)}] needs {math.prod(sample_shape)}",
                            "Fix the data or give its \"shape\" (or --shape)")
    sample = flat.reshape(sample_shape)
    # A batch repeats the entry: perf_analyzer's JSON gives one sample per entry.
    return np.stack([sample] * batch) if max_batch > 0 else sample


def _content(value, dtype) -> np.ndarray:
    if isinstance(value, dict) and "b64" in value:
        raw = base64.b64decode(value["b64"])
        return np.frombuffer(raw, dtype=dtype) if dtype is not np.object_ else \
            np.array([raw], dtype=np.object_)
    content = value.get("content") if isinstance(value, dict) else value
    if content is None:
        raise BadInputError("an input data object has no \"content\" (or \"b64\")",
                            'Use {"content": [...], "shape": [...]}')
    if dtype is np.object_:
        return np.array([v.encode() if isinstance(v, str) else v
                         for v in np.ravel(content)], dtype=np.object_)
    try:
        return np.asarray(content, dtype=dtype).ravel()
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"input data value cannot be read as {dtype.__name__}: {exc}",
                            "Give numbers of the input's datatype") from exc
