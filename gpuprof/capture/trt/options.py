"""Build options (trtexec-like) and input-shape profiles.

Shapes use trtexec's syntax: ``name:1x3x640x640``, several joined by commas (parsed by the
shared ``gpuprof.capture.onnx_inputs.parse_shapes``; a lone ``1x3x640x640`` names the only
input). ``--shapes`` fixes an input (min = opt = max); ``--min-shapes/--opt-shapes/--max-shapes``
give a range, a missing end filled from the others as trtexec does.

Default profile: a dynamic input with no shapes given is built for ONE fixed shape, the one
``onnx_inputs.resolve_shapes`` picks for every gpuprof backend (batch 1, 640 for the spatial dims
of NCHW/NHWC images, 128 for other dims), so ``gpuprof build`` and ``gpuprof engine`` agree.
(trtexec sets every dynamic dimension to 1 instead, which for image models builds an engine for
1x1 images that profiles nothing useful.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...errors import BadInputError

PRECISIONS = ("fp16", "bf16", "int8")
# Run defaults of the TensorRT backend (pipeline and runner child alike), where a command gives none.
RUN_ITERATIONS = 50
RUN_WARMUP = 10
RUN_PROFILE_ITERATIONS = 10

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    min: Shape
    opt: Shape
    max: Shape

    def is_fixed(self) -> bool:
        return self.min == self.opt == self.max


@dataclass(frozen=True)
class BuildOptions:
    """Everything that changes the plan, and so everything the cache key is made of."""

    fp16: bool = False
    bf16: bool = False
    int8: bool = False
    best: bool = False
    shapes: dict[str, Shape] = field(default_factory=dict)
    min_shapes: dict[str, Shape] = field(default_factory=dict)
    opt_shapes: dict[str, Shape] = field(default_factory=dict)
    max_shapes: dict[str, Shape] = field(default_factory=dict)
    workspace_mib: int | None = None

    def precisions(self) -> list[str]:
        """Requested reduced precisions; ``best`` means all of them, as in trtexec."""
        if self.best:
            return list(PRECISIONS)
        return [p for p in PRECISIONS if getattr(self, p)]

    def key_dict(self) -> dict[str, Any]:
        """A JSON-able, order-independent form for hashing and the sidecar."""
        data = asdict(self)
        for name in ("shapes", "min_shapes", "opt_shapes", "max_shapes"):
            data[name] = {k: list(v) for k, v in sorted(data[name].items())}
        return data


def parse_shapes(text: str | Sequence[str] | None) -> dict[str, Shape]:
    """``"x:1x3x640x640,y:1x4"`` (or several such strings) -> ``{"x": (1, 3, 640, 640), ...}``."""
    from ..onnx_inputs import parse_shapes as parse_one

    items = [text] if isinstance(text, str) else list(text or ())
    shapes: dict[str, Shape] = {}
    for item in items:
        shapes.update(parse_one(item))
    return shapes


def resolve_profile(inputs: dict[str, Shape], options: BuildOptions, defaults: dict[str, Shape]
                    ) -> tuple[dict[str, ShapeRange], str, list[str]]:
    """Shape ranges for the dynamic inputs, where they came from, and the inputs built for their
    default shape.

    ``inputs`` maps each network input to its shape with -1 for dynamic dimensions;
    ``defaults`` holds the shared default shape of each input. The source is "given",
    "default" (at least one input fell back to its default) or "static" (nothing dynamic).
    """
    options = name_unnamed(list(inputs), options)
    _check_names(inputs, options)
    ranges: dict[str, ShapeRange] = {}
    defaulted: list[str] = []
    for name, dims in inputs.items():
        given = _given_range(name, options)
        if given is None and -1 not in dims:
            continue
        if given is None:
            shape = defaults.get(name) or _no_default(name, dims)
            given = ShapeRange(shape, shape, shape)
            defaulted.append(name)
        _check_rank(name, dims, given)
        ranges[name] = given
    source = "static" if not ranges else "default" if defaulted else "given"
    return ranges, source, defaulted


def _no_default(name: str, dims: Shape) -> Shape:
    raise BadInputError(f"no default shape is known for dynamic input '{name}' {_fmt(dims)}",
                        f"Give one with --shapes {name}:DIMS")


def name_unnamed(inputs: Sequence[str], o: BuildOptions) -> BuildOptions:
    """A lone shape without a name (key "") belongs to the model's only input."""
    maps = (o.shapes, o.min_shapes, o.opt_shapes, o.max_shapes)
    if not any("" in m for m in maps):
        return o
    if len(inputs) != 1:
        raise BadInputError(f"a shape without a name needs a model with one input, this one has "
                            f"{len(inputs)}: {', '.join(inputs)}", "Write NAME:DIMS")
    (only,) = inputs
    renamed = [{(only if k == "" else k): v for k, v in m.items()} for m in maps]
    return replace(o, shapes=renamed[0], min_shapes=renamed[1], opt_shapes=renamed[2],
                   max_shapes=renamed[3])


def _given_range(name: str, o: BuildOptions) -> ShapeRange | None:
    if name in o.shapes:
        shape = o.shapes[name]
        return ShapeRange(shape, shape, shape)
    parts = [o.min_shapes.get(name), o.opt_shapes.get(name), o.max_shapes.get(name)]
    if not any(parts):
        return None
    known = [p for p in parts if p]
    # trtexec fills a missing end of the range from the given ones.
    lo = parts[0] or parts[1] or known[0]
    opt = parts[1] or parts[2] or lo
    hi = parts[2] or opt
    return ShapeRange(lo, opt, hi)


def run_shapes(given: dict[str, Shape], inputs: Sequence[str]) -> dict[str, Shape]:
    """--shapes for a run, keyed by the engine's input names: the same rules as the build (a
    lone shape belongs to the only input; a name the engine lacks is an error, not ignored)."""
    named = name_unnamed(inputs, BuildOptions(shapes=dict(given))).shapes
    _check_names({name: () for name in inputs}, BuildOptions(shapes=named))
    return named


def _check_names(inputs: dict[str, Shape], o: BuildOptions) -> None:
    named = set(o.shapes) | set(o.min_shapes) | set(o.opt_shapes) | set(o.max_shapes)
    unknown = sorted(named - set(inputs))
    if unknown:
        raise BadInputError(f"shapes given for unknown input(s) {', '.join(unknown)}",
                            f"The model's inputs are: {', '.join(inputs) or '(none)'}")


def _check_rank(name: str, dims: Shape, r: ShapeRange) -> None:
    for shape in (r.min, r.opt, r.max):
        if min(shape, default=0) <= 0:
            raise BadInputError(f"shape {_fmt(shape)} for input '{name}' has a zero dimension",
                                "Every dimension must be at least 1")
        fixed_ok = all(d < 0 or d == s for d, s in zip(dims, shape, strict=False))
        if len(shape) != len(dims) or not fixed_ok:
            raise BadInputError(f"shape {_fmt(shape)} does not fit input '{name}' {_fmt(dims)}",
                                "Give one size per dimension; fixed dimensions must match the model")
    if not all(a <= b <= c for a, b, c in zip(r.min, r.opt, r.max, strict=True)):
        raise BadInputError(f"input '{name}': min {_fmt(r.min)} <= opt {_fmt(r.opt)} <= max "
                            f"{_fmt(r.max)} does not hold", "Order the shapes min <= opt <= max")


def _fmt(shape: Sequence[int]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in shape)
