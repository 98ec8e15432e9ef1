"""An ONNX model's true inputs, their concrete shapes for one run, and random data to feed them.

Shared by the ONNX Runtime and TensorRT backends, so it needs only ``onnx`` and ``numpy``.

How dynamic dimensions are resolved (``resolve_shapes``), first rule that applies wins:

1. ``--shapes`` overrides give whole shapes; a symbolic dim name (e.g. ``batch``) fixed by an
   override takes the same value in every other input that uses that name.
2. Axis 0 is the batch axis: 1.
3. Image-like inputs (rank 4 with a fixed 1, 3 or 4 channel dim at axis 1 (NCHW) or axis 3
   (NHWC)): each unknown spatial dim is ``DEFAULT_IMAGE_SIZE`` (640, the usual detector size).
4. Any other unknown dim: ``DEFAULT_OTHER_DIM`` (128, a typical sequence length).

The report lists the resolved shapes and which dims were guessed, so a wrong guess is visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError

DEFAULT_BATCH = 1
DEFAULT_IMAGE_SIZE = 640
DEFAULT_OTHER_DIM = 128
IMAGE_CHANNELS = (1, 3, 4)
SHAPES_HINT = "Pass --shapes NAME:1x3x640x640[,NAME2:...] with one dim per axis"

Dim = int | str | None  # fixed size, symbolic name, or unknown


@dataclass(frozen=True)
class InputSpec:
    """One graph input that is not an initializer: what the model declares."""

    name: str
    dtype: np.dtype
    dims: tuple[Dim, ...] | None  # None: the model declares no shape at all

    @property
    def declared(self) -> str:
        return format_dims(self.dims)


@dataclass(frozen=True)
class ResolvedInput:
    spec: InputSpec
    shape: tuple[int, ...]
    guessed_axes: tuple[int, ...]  # axes filled by a default rule rather than the model/user


def load_onnx(path: str | Path):
    """Load an ONNX model's graph (no external weights) or raise a one-line ``BadInputError``."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    _check_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise _not_onnx(path) from exc
    if model.ir_version <= 0 or not model.graph.node:
        raise _not_onnx(path)
    return model


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BadInputError(f"model file '{path}' does not exist", "Check the path")
    if path.is_dir():
        raise BadInputError(f"'{path}' is a directory, not an ONNX model file",
                            "Pass the .onnx file inside it")


def _not_onnx(path: Path) -> BadInputError:
    return BadInputError(f"'{path.name}' is not an ONNX model (it does not parse as a ModelProto)",
                         "Pass a .onnx file exported by torch.onnx, tf2onnx or paddle2onnx")


def read_inputs(model) -> list[InputSpec]:
    """The graph inputs a caller must feed: initializers listed as inputs (IR < 4) excluded."""
    from onnx.helper import tensor_dtype_to_np_dtype

    weights = {init.name for init in model.graph.initializer}
    weights |= {init.name for init in model.graph.sparse_initializer}
    specs = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        if not value.type.HasField("tensor_type"):
            raise BadInputError(f"input '{value.name}' is not a tensor (sequence, map or optional)",
                                "gpuprof can only feed tensor inputs")
        tensor = value.type.tensor_type
        dims = tuple(_dim(d) for d in tensor.shape.dim) if tensor.HasField("shape") else None
        specs.append(InputSpec(value.name, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return specs


def _dim(d) -> Dim:
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    return d.dim_param or None


def distinct_dim_params(model) -> list[str]:
    """Rename, in place, a symbolic dim name that one input uses on several axes.

    Some exporters name every dynamic dim the same (PP-OCR's classifier: ``x [-1, 3, ?, ?]``)
    and TensorRT holds dims of one name equal, so 48x192 could not be built. A name repeated
    within one input is such a placeholder: each of its axes gets its own name there
    (``x_dim2``). Names shared across inputs (``batch``) keep tying them. Returns the renames
    as ``"x: ? -> x_dim2, x_dim3"`` for notes.
    """
    renames = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        params = [d.dim_param for d in dims if d.dim_param]
        for param in sorted({p for p in params if params.count(p) > 1}):
            axes = [i for i, d in enumerate(dims) if d.dim_param == param]
            for axis in axes:
                dims[axis].dim_param = f"{value.name}_dim{axis}"
            renames.append(f"{value.name}: {param} -> "
                           + ", ".join(f"{value.name}_dim{a}" for a in axes))
    return renames


def parse_shapes(text: str | None) -> dict[str, tuple[int, ...]]:
    """Parse ``name:1x3x640x640,name2:1x10``; a lone ``1x3x640x640`` is keyed by ``""``.

    The name is everything before the last ``:`` so TensorFlow names such as ``input:0`` work.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, dims = item.rpartition(":")
        if not re.fullmatch(r"\d+(x\d+)*", dims.strip().lower()):
            raise BadInputError(f"cannot read shape '{item}'", SHAPES_HINT)
        shapes[name.strip()] = tuple(int(v) for v in dims.strip().lower().split("x"))
    return shapes


def resolve_shapes(specs: list[InputSpec], overrides: dict[str, tuple[int, ...]] | None = None
                   ) -> list[ResolvedInput]:
    """Concrete shapes for every input (module docstring: the rules), validated against the model."""
    overrides = _name_overrides(specs, dict(overrides or {}))
    symbols: dict[str, int] = {}
    for spec in specs:
        if spec.name in overrides:
            validate_shape(spec, overrides[spec.name])
            symbols |= {d: v for d, v in zip(spec.dims or (), overrides[spec.name], strict=False) if isinstance(d, str)}
    return [ResolvedInput(spec, overrides[spec.name], ()) if spec.name in overrides
            else _default_shape(spec, symbols) for spec in specs]


def _name_overrides(specs: list[InputSpec], overrides: dict[str, tuple[int, ...]]):
    names = [s.name for s in specs]
    if "" in overrides:
        if len(specs) != 1:
            raise BadInputError(f"an unnamed --shapes value needs a model with one input, this one has "
                                f"{len(specs)}: {', '.join(names)}", SHAPES_HINT)
        overrides[names[0]] = overrides.pop("")
    unknown = [n for n in overrides if n not in names]
    if unknown:
        raise BadInputError(f"--shapes names input '{unknown[0]}' but the model's inputs are: "
                            f"{', '.join(names)}", SHAPES_HINT)
    return overrides


def _default_shape(spec: InputSpec, symbols: dict[str, int]) -> ResolvedInput:
    if spec.dims is None:
        raise BadInputError(f"input '{spec.name}' declares no shape, so gpuprof cannot guess one",
                            SHAPES_HINT)
    image_axes = _spatial_axes(spec.dims)
    shape, guessed = [], []
    for axis, dim in enumerate(spec.dims):
        if isinstance(dim, int):
            shape.append(dim)
            continue
        if isinstance(dim, str) and dim in symbols:
            shape.append(symbols[dim])
            continue
        guessed.append(axis)
        shape.append(DEFAULT_BATCH if axis == 0 else
                     DEFAULT_IMAGE_SIZE if axis in image_axes else DEFAULT_OTHER_DIM)
    return ResolvedInput(spec, tuple(shape), tuple(guessed))


def _spatial_axes(dims: tuple[Dim, ...]) -> tuple[int, ...]:
    if len(dims) != 4:
        return ()
    if dims[1] in IMAGE_CHANNELS:
        return (2, 3)
    if dims[3] in IMAGE_CHANNELS:
        return (1, 2)
    return ()


def validate_shape(spec: InputSpec, shape: tuple[int, ...]) -> None:
    """Rank and fixed dims must match the model; every dim must be positive."""
    given = "x".join(map(str, shape))
    if any(v <= 0 for v in shape):
        raise BadInputError(f"shape {given} for input '{spec.name}' has a zero dim", SHAPES_HINT)
    if spec.dims is None:
        return
    if len(shape) != len(spec.dims):
        raise BadInputError(f"input '{spec.name}' has rank {len(spec.dims)} ({spec.declared}) but "
                            f"--shapes gave rank {len(shape)} ({given})", SHAPES_HINT)
    for axis, (dim, value) in enumerate(zip(spec.dims, shape, strict=True)):
        if isinstance(dim, int) and dim != value:
            raise BadInputError(f"input '{spec.name}' is fixed to {dim} on axis {axis} "
                                f"({spec.declared}) but --shapes gave {given}", SHAPES_HINT)


def make_inputs(resolved: list[ResolvedInput], seed: int = 0) -> dict[str, np.ndarray]:
    """Random data of each input's dtype and shape (``random_input``), drawn in input order."""
    rng = np.random.default_rng(seed)
    return {r.spec.name: random_input(rng, r.spec.name, r.spec.dtype, r.shape) for r in resolved}


def random_input(rng: np.random.Generator, name: str, dtype: np.dtype,
                 shape: tuple[int, ...]) -> np.ndarray:
    """Random data for one input, the same rules on every backend (the TensorRT runner fills its
    pinned buffers with this too): floats in [0, 1), integers in [0, 10), bools 50/50."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        # drawn as float32 and cast, so float16/float64 inputs see the same values
        return rng.random(shape, dtype=np.float32).astype(dtype, copy=False)
    if dtype.kind in "iu":
        # Small non-negative values: valid token ids, class indices and gather indices alike.
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise BadInputError(f"input '{name}' has dtype {dtype}, which gpuprof cannot generate",
                        "Only numeric and bool inputs are supported")


def format_dims(dims) -> str:
    """Declared dims as ``batchx3x?x?``: a symbolic name as itself, an unknown dim (None, or -1
    as TensorRT writes it) as ``?``; ``unknown rank`` when there are no dims at all (None)."""
    if dims is None:
        return "unknown rank"
    return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in dims)


def input_fact(name: str, dtype, declared: str, shape, guessed_axes) -> dict:
    """One input as a run used it, for ``RunMeta.extra["inputs"]``: the same dict on every
    backend (``declared`` as ``format_dims`` writes it; ``guessed_axes``: axes gpuprof's default
    rule chose rather than the model or --shapes)."""
    return {"name": name, "dtype": str(np.dtype(dtype)), "declared": declared,
            "shape": [int(v) for v in shape], "guessed_axes": [int(a) for a in guessed_axes]}


def resolved_facts(resolved: list[ResolvedInput]) -> list[dict]:
    """``input_fact`` of each resolved input."""
    return [input_fact(r.spec.name, r.spec.dtype, r.spec.declared, r.shape, r.guessed_axes)
            for r in resolved]


def describe_inputs(inputs: list[dict]) -> str:
    """``x: 1x3x640x640 (float32; guessed axes 0,2,3)`` joined by ``; `` for report facts, from
    ``input_fact`` dicts."""
    parts = []
    for i in inputs:
        axes = i.get("guessed_axes") or []
        note = f"; guessed axes {','.join(map(str, axes))}" if axes else ""
        parts.append(f"{i['name']}: {'x'.join(map(str, i['shape']))} ({i['dtype']}{note})")
    return "; ".join(parts)
