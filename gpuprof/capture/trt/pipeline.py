"""ONNX model -> cached plan -> profiled run in a child process -> ``Profile``.

The one call a command such as ``gpuprof engine`` needs for the TensorRT backend. The build
happens in this process; the run happens in a child (``runner``), optionally under nsys, so
the build is never part of any measurement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...model import Profile
from .. import timed_count
from .build import build_engine
from .nsys_cmd import NsysOptions, profile_and_export, run_tool, runner_argv
from .options import RUN_ITERATIONS, RUN_PROFILE_ITERATIONS, RUN_WARMUP, BuildOptions
from .progress import Listener
from .results import load_results


@dataclass
class TrtRunConfig:
    model: Path
    out_dir: Path
    options: BuildOptions = field(default_factory=BuildOptions)
    iterations: int | None = RUN_ITERATIONS  # None: auto, at least min_seconds (timed_count)
    min_seconds: float = timed_count.DEFAULT_MIN_SECONDS
    warmup: int = RUN_WARMUP
    profile_iterations: int = RUN_PROFILE_ITERATIONS
    layer_profile: bool = True
    cache_dir: Path | None = None
    nsys: bool = False
    nsys_options: NsysOptions = field(default_factory=NsysOptions)
    timeout_s: float = 600


def run_tensorrt(config: TrtRunConfig, progress: Listener | None = None) -> Profile:
    """Build (or reuse) the engine, run it in a child process, load its results."""
    built = build_engine(config.model, config.options, cache_dir=config.cache_dir,
                         progress=progress)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = _runner_args(config, built.sidecar)
    sqlite = None
    if config.nsys:
        sqlite = profile_and_export(built.plan, out, extra, config.nsys_options, config.timeout_s)
    else:
        run_tool(runner_argv(built.plan, out, extra), config.timeout_s, "the TensorRT runner")
    profile = load_results(out)
    _attach_layer_info(profile, built.entry.layers)
    profile.meta.extra["engine"] = {"plan": built.plan.name, "cache_hit": built.cache_hit,
                                    "build_seconds": built.sidecar.get("build_seconds"),
                                    "layer_info": built.entry.layers.name}
    if sqlite is not None:
        from ...align.clock import merge_nsys
        from ...ingest.nsys import read_nsys

        # kernels, API calls, NVTX layer ranges and nsys memory events join the run's own
        # tables, moved onto its monotonic clock through the runner's NVTX clock marks
        profile = merge_nsys(profile, read_nsys(sqlite, details=True))
        profile.meta.extra["nsys_sqlite"] = os.fspath(sqlite.name)
    return profile


def _attach_layer_info(profile: Profile, layers_json: Path) -> None:
    """The engine's layers (type, precision, tactic) as a table; IProfiler rows get their types."""
    from ...ingest.trt_layer_info import read_layer_info, with_layer_types
    from ...model import conform

    if not Path(layers_json).exists():
        return
    layers = read_layer_info(layers_json)
    profile.tables["engine_layers"] = layers
    profile.tables["layer_timings"] = conform(
        "layer_timings", with_layer_types(profile.layer_timings, layers))


def _runner_args(config: TrtRunConfig, sidecar: dict) -> list[str]:
    count = (["-n", str(config.iterations)] if config.iterations is not None
             else ["--duration", repr(config.min_seconds)])
    args = [*count, "--warmup", str(config.warmup),
            "--profile-iterations", str(config.profile_iterations),
            "--module", sidecar["tensorrt"]["module"]]
    return args if config.layer_profile else [*args, "--no-layer-profile"]
