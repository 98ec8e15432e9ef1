"""ONNX model -> TensorRT network -> builder config -> serialized plan, cached.

A chain of small steps (as in Polygraphy) shared by the CLI and the Python API:
``parse_onnx`` -> ``make_config`` -> ``serialize`` -> ``layer_info``, driven by ``build_engine``
which looks the plan up in the cache first. Plans are always built with
``ProfilingVerbosity.DETAILED`` so NVTX ranges and the engine inspector carry layer details.

Flavours: full TensorRT takes ``--fp16/--bf16/--int8/--best`` as builder flags. TensorRT-RTX
(and TensorRT releases without those flags) is strongly typed: precisions come from the ONNX
model, so these options raise ``BadInputError`` saying so instead of being silently ignored.
TensorRT-RTX's timing cache is a no-op; ``--timing-cache`` is then ignored with a note.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...errors import BadInputError, CaptureError
from ...fsutil import atomic_write
from . import api, device
from .cache import CacheEntry, cache_key, default_cache_dir, file_sha256
from .logger import LogCallback, LogRecords, collecting_logger
from .options import BuildOptions, Shape, ShapeRange, name_unnamed, resolve_profile
from .progress import Listener, ProgressState, cancel_on_sigint, progress_monitor

if TYPE_CHECKING:
    import tensorrt as trt_types

    from ..onnx_inputs import ResolvedInput

NETWORK_LAYERS_NOTE = ("Layers of the parsed network BEFORE TensorRT's optimisation (fusion, "
                       "reformatting, tactic choice): no GPU was available to deserialize the "
                       "engine for the engine inspector.")


class BuildCancelledError(CaptureError):
    """The build was cancelled (Ctrl-C); no plan was written."""

    exit_code = 130


@dataclass
class BuildResult:
    entry: CacheEntry
    sidecar: dict[str, Any]
    cache_hit: bool
    seconds: float                       # this call: lookup only on a hit, whole build on a miss
    notes: list[str] = field(default_factory=list)

    @property
    def plan(self) -> Path:
        return self.entry.plan


@dataclass
class Parsed:
    """Objects that must stay alive together: TensorRT keeps raw pointers between them."""

    builder: trt_types.Builder
    network: trt_types.INetworkDefinition
    parser: trt_types.OnnxParser
    logger: Any
    records: LogRecords


def build_engine(model: str | os.PathLike, options: BuildOptions | None = None,
                 cache_dir: str | os.PathLike | None = None, force: bool = False,
                 timing_cache: str | os.PathLike | None = None, progress: Listener | None = None,
                 log: LogCallback | None = None, module: str | None = None,
                 state: ProgressState | None = None) -> BuildResult:
    """Build ``model`` (or find it in the cache) and return where the plan is."""
    started = time.perf_counter()
    model = _check_model(model)
    options = _name_lone_shapes(model, options or BuildOptions())
    trt = api.builder_module(module)
    check_precisions(trt, options)
    target = build_target(trt)
    model_sha = file_sha256(model)
    key = cache_key(model_sha, options.key_dict(), api.describe(trt), target)
    directory = cache_dir or default_cache_dir()
    entry = CacheEntry.for_key(directory, model.name, key)
    if force:
        entry.remove()
    else:
        found = CacheEntry.find(directory, model.name, key)
        if (sidecar := found.read_sidecar()) is not None:
            return BuildResult(found, sidecar, True, time.perf_counter() - started)
    state = state or ProgressState(progress)
    sidecar, notes = _build_into(trt, entry, model, options, timing_cache, state, log)
    sidecar.update(key=key, target=target, model={"name": model.name, "sha256": model_sha,
                                                   "bytes": model.stat().st_size})
    entry.write_sidecar(sidecar)
    return BuildResult(entry, entry.read_sidecar() or sidecar, False,
                       time.perf_counter() - started, notes)


def _check_model(model: str | os.PathLike) -> Path:
    path = Path(model)
    if not path.is_file():
        raise BadInputError(f"model file {path.name} not found", "Give the path to an .onnx file")
    return path


def _name_lone_shapes(model: Path, options: BuildOptions) -> BuildOptions:
    """Give a lone ``--shapes 1x3x640x640`` its input's name before it becomes part of the key."""
    if not any("" in m for m in (options.shapes, options.min_shapes, options.opt_shapes,
                                 options.max_shapes)):
        return options
    from .. import onnx_inputs

    specs = onnx_inputs.read_inputs(onnx_inputs.load_onnx(model))
    return name_unnamed([s.name for s in specs], options)


def _build_into(trt: ModuleType, entry: CacheEntry, model: Path, options: BuildOptions,
                timing_cache: str | os.PathLike | None, state: ProgressState,
                log: LogCallback | None) -> tuple[dict[str, Any], list[str]]:
    parsed = parse_onnx(trt, model, log)
    inputs = network_inputs(parsed.network)
    ranges, profile_source, guessed = shape_profile(model, inputs, options)
    monitor = progress_monitor(trt, state)  # must outlive the build
    config = make_config(trt, parsed, options, ranges, monitor)
    notes = _apply_timing_cache(trt, config, timing_cache) + _int8_notes(trt, parsed, options)
    t0 = time.perf_counter()
    plan = serialize(parsed, config, state)
    build_s = time.perf_counter() - t0
    _save_timing_cache(trt, config, timing_cache)
    layers = layer_info(trt, plan, parsed)
    entry.write_plan(plan, layers)
    sidecar = _sidecar(trt, options, inputs, ranges, profile_source, guessed, layers, build_s,
                       state)
    sidecar["plan_sha256"] = hashlib.sha256(plan).hexdigest()
    return sidecar, notes + _profile_notes(ranges, profile_source)


def check_precisions(trt: ModuleType, options: BuildOptions) -> None:
    """Refuse precision flags the installed flavour does not have (strongly typed builds)."""
    missing = [p for p in options.precisions() if not hasattr(trt.BuilderFlag, p.upper())]
    if missing:
        flags = ", ".join(f"--{p}" for p in missing)
        raise BadInputError(
            f"{trt.__name__} {getattr(trt, '__version__', '')} is strongly typed and has no "
            f"builder flag for {flags}: layer precisions come from the ONNX model",
            "Build without these flags, or export the model in FP16/BF16 (or with Q/DQ nodes for "
            "INT8) and build that")


def build_target(trt: ModuleType) -> dict[str, Any]:
    """What the plan is built for, part of the cache key.

    Full TensorRT builds for the GPU it runs on (name and compute capability from NVML).
    TensorRT-RTX with no compute capability set builds ahead of time, on the CPU, a portable
    engine for its default targets (Ampere and later RTX GPUs: CC 8.0/8.6/8.9/12.x, not
    Turing, not Hopper); that is recorded as ``{"compute_capabilities": "rtx-default"}``.
    """
    if api.is_rtx(trt):
        return {"compute_capabilities": "rtx-default", "aot": "cpu-portable"}
    gpus = device.gpu_info()
    if not gpus:
        return {"gpu": "unknown", "compute_capability": "unknown"}
    return {"gpu": gpus[0]["name"], "compute_capability": gpus[0]["compute_capability"]}


def parse_onnx(trt: ModuleType, model: Path, log: LogCallback | None = None) -> Parsed:
    """Parse the ONNX file; on failure list every node TensorRT rejected and why."""
    records = LogRecords(log)
    logger = collecting_logger(trt, records)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not _parse(parser, model):
        raise BadInputError(f"TensorRT could not parse {model.name}: {'; '.join(parser_errors(parser))}",
                            "Replace or remove these nodes (e.g. 'polygraphy surgeon sanitize "
                            "--fold-constants'), or provide a TensorRT plugin for them")
    return Parsed(builder, network, parser, logger, records)


def _parse(parser: trt_types.OnnxParser, model: Path) -> bool:
    """Parse the file, with a symbolic dim name repeated within one input split per axis
    (``onnx_inputs.distinct_dim_params``) so that such dims can take different sizes."""
    from .. import onnx_inputs

    proto = onnx_inputs.load_onnx(model)
    if not onnx_inputs.distinct_dim_params(proto):
        return parser.parse_from_file(str(model))
    # the path lets the parser find external weights beside the file
    return parser.parse(proto.SerializeToString(), str(model))


def parser_errors(parser: trt_types.OnnxParser) -> list[str]:
    """One line per parser error: node index, name, operator and TensorRT's description."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = f"node {err.node()} '{err.node_name()}' ({err.node_operator()})" if err.node() >= 0 else "model"
        lines.append(f"{where}: {err.desc()} [{str(err.code()).split('.')[-1]}]")
    return lines


def network_inputs(network: trt_types.INetworkDefinition) -> dict[str, Shape]:
    """Input name -> shape, with -1 for dynamic dimensions."""
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    return {t.name: api.shape_of(t.shape) for t in tensors}


def shape_profile(model: Path, inputs: dict[str, Shape], options: BuildOptions
                  ) -> tuple[dict[str, ShapeRange], str, dict[str, list[int]]]:
    """The build's shape ranges and their source (``resolve_profile``), and for each input built
    for the shared default shape the axes that default guessed (sidecar ``guessed_axes``)."""
    defaults = default_inputs(model, inputs)
    ranges, source, defaulted = resolve_profile(inputs, options,
                                                {n: r.shape for n, r in defaults.items()})
    return ranges, source, {name: list(defaults[name].guessed_axes) for name in defaulted}


def default_inputs(model: Path, inputs: dict[str, Shape]) -> dict[str, ResolvedInput]:
    """The shared default shape of each input (see ``options``) with the axes it guessed, read
    from the ONNX file; {} when no input is dynamic."""
    if all(-1 not in dims for dims in inputs.values()):
        return {}
    from .. import onnx_inputs

    specs = onnx_inputs.read_inputs(onnx_inputs.load_onnx(model))
    return {r.spec.name: r for r in onnx_inputs.resolve_shapes(specs)}


def make_config(trt: ModuleType, parsed: Parsed, options: BuildOptions,
                ranges: dict[str, ShapeRange], monitor: Any) -> trt_types.IBuilderConfig:
    config = parsed.builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.progress_monitor = monitor
    for precision in options.precisions():
        config.set_flag(getattr(trt.BuilderFlag, precision.upper()))
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if ranges:
        profile = parsed.builder.create_optimization_profile()
        for name, r in ranges.items():
            profile.set_shape(name, *(api.to_dims(trt, s) for s in (r.min, r.opt, r.max)))
        config.add_optimization_profile(profile)
    return config


def serialize(parsed: Parsed, config: trt_types.IBuilderConfig, state: ProgressState) -> bytes:
    """Run the build; Ctrl-C cancels it through the progress monitor."""
    with cancel_on_sigint(state):
        host = parsed.builder.build_serialized_network(parsed.network, config)
    if state.cancelled:
        raise BuildCancelledError("build cancelled; no plan was written", "Run the build again")
    if host is None:
        errors = parsed.records.errors() or ["no error message from TensorRT"]
        raise CaptureError(f"TensorRT could not build the engine: {' | '.join(errors)}",
                           _build_hint(errors))
    return bytes(memoryview(host).cast("B"))


def _int8_notes(trt: ModuleType, parsed: Parsed, options: BuildOptions) -> list[str]:
    """INT8 needs scales: gpuprof does no calibration, so only Q/DQ (explicitly quantized) models
    get INT8 layers; say so instead of letting --int8 look like it worked."""
    if "int8" not in options.precisions():
        return []
    quantize = {getattr(trt.LayerType, n, None) for n in ("QUANTIZE", "DEQUANTIZE")} - {None}
    network = parsed.network
    if any(network.get_layer(i).type in quantize for i in range(network.num_layers)):
        return []
    return ["--int8: the model has no Q/DQ nodes and gpuprof does no calibration, so TensorRT "
            "keeps every layer in a higher precision"]


def _build_hint(errors: list[str]) -> str:
    if any("dimensions with this name" in e for e in errors):
        # TensorRT treats ONNX dims sharing a symbolic name (dim_param) as equal; some exporters
        # give every dynamic dim the same name (e.g. "?"), which forbids non-square images.
        return ("The model gives several dynamic dimensions the same symbolic name, and TensorRT "
                "requires those to be equal: give them equal sizes in --shapes, or rename the "
                "dim_params in the ONNX file")
    return "Check the shapes and flags; re-run with --verbose for TensorRT's log"


def _apply_timing_cache(trt: ModuleType, config: trt_types.IBuilderConfig,
                        path: str | os.PathLike | None) -> list[str]:
    if path is None:
        return []
    if api.is_rtx(trt):
        return ["--timing-cache ignored: timing cache operations are no-ops in TensorRT-RTX"]
    blob = Path(path).read_bytes() if Path(path).is_file() else b""
    config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    return []


def _save_timing_cache(trt: ModuleType, config: trt_types.IBuilderConfig,
                       path: str | os.PathLike | None) -> None:
    if path is None or api.is_rtx(trt):
        return
    cache = config.get_timing_cache()
    if cache is not None:
        with atomic_write(path, "wb") as handle:
            handle.write(bytes(memoryview(cache.serialize()).cast("B")))


def layer_info(trt: ModuleType, plan: bytes, parsed: Parsed) -> dict[str, Any]:
    """Engine inspector JSON where a GPU can deserialize the plan, else the network's layers."""
    engine_info = inspect_engine(trt, plan, parsed.logger) if device.gpu_present() else None
    if engine_info is not None:
        return {"kind": "engine_inspector", "engine": engine_info}
    return {"kind": "network_pre_optimisation", "note": NETWORK_LAYERS_NOTE,
            "layers": network_layers(parsed.network)}


def inspect_engine(trt: ModuleType, plan: bytes, logger: Any) -> dict[str, Any] | None:
    """``get_engine_information(JSON)``; None when this machine cannot deserialize the plan.

    Only called when NVML sees a GPU: without one, creating a Runtime can crash the process.
    """
    try:
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:  # e.g. TensorRT-RTX on a GPU it does not target (Hopper)
            return None
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        del inspector, engine, runtime  # free the GPU memory before returning
        return dict(info)
    except (RuntimeError, ValueError, TypeError):
        return None


def network_layers(network: trt_types.INetworkDefinition) -> list[dict[str, Any]]:
    return [_layer_dict(i, network.get_layer(i)) for i in range(network.num_layers)]


def _layer_dict(index: int, layer: trt_types.ILayer) -> dict[str, Any]:
    outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
    # Strongly typed flavours have no per-layer precision: the output types are the precision.
    precision = _enum_name(layer.precision) if getattr(layer, "precision_is_set", False) else None
    return {
        "index": index, "name": layer.name, "type": _enum_name(layer.type),
        "precision": precision,
        "inputs": [t.name for t in (layer.get_input(j) for j in range(layer.num_inputs)) if t is not None],
        "outputs": [{"name": t.name, "shape": list(api.shape_of(t.shape)), "dtype": _enum_name(t.dtype)}
                    for t in outputs],
    }


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value)).split(".")[-1]


def _sidecar(trt: ModuleType, options: BuildOptions, inputs: dict[str, Shape],
             ranges: dict[str, ShapeRange], profile_source: str, guessed: dict[str, list[int]],
             layers: dict[str, Any], build_s: float, state: ProgressState) -> dict[str, Any]:
    return {
        "options": options.key_dict(),
        "precisions": options.precisions(),
        "tensorrt": api.describe(trt),
        "profiling_verbosity": "DETAILED",
        "built_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_s, 3),
        "inputs": {name: list(shape) for name, shape in inputs.items()},
        "profile": {n: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)}
                    for n, r in ranges.items()},
        "profile_source": profile_source,
        # input -> axes built for gpuprof's default shape (a run reports them as guessed)
        "guessed_axes": guessed,
        "layer_info_kind": layers["kind"],
        "layer_count": _layer_count(layers),
        "build_phases": _top_phases(state),
    }


def _layer_count(layers: dict[str, Any]) -> int:
    if layers["kind"] == "engine_inspector":
        return len(layers["engine"].get("Layers", []))
    return len(layers["layers"])


def _top_phases(state: ProgressState) -> list[dict[str, Any]]:
    return [{"name": p.name, "steps": p.num_steps,
             "seconds": round(((p.end_ns or p.start_ns) - p.start_ns) / 1e9, 3)}
            for p in state.phases if p.parent is None]


def _profile_notes(ranges: dict[str, ShapeRange], source: str) -> list[str]:
    if source != "default":
        return []
    shapes = ", ".join(f"{n}:{'x'.join(map(str, r.opt))}" for n, r in ranges.items())
    return [f"dynamic input(s) without --shapes: built for the default profile {shapes}"]

