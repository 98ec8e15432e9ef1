"""ONNX model -> cached plan -> profiled run in a child process -> the runner's own results.

The build happens in this process; the run happens in a child (``runner``), optionally under
nsys, so the build is never part of any measurement. ``capture_tensorrt`` returns what the run
left (``TrtCapture``) and ``runner_profile`` reads the runner's own folder; the engine's layer
information and the nsys export are read and merged by the composer
(``pipeline/engine_run.py::run_tensorrt``), so capture imports no ingest or align.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...model import Profile, SourceFile
from .. import timed_count
from .build import BuildResult, build_engine
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
    no_nsys_reason: str = "nsys capture was not requested"  # stated in the report when nsys is False
    nsys_options: NsysOptions = field(default_factory=NsysOptions)
    timeout_s: float = 600


# The tables only an nsys capture fills; without one they are absent, with the reason.
NSYS_TABLES = ("kernels", "api_calls", "copies", "nvtx_ranges")


@dataclass
class TrtCapture:
    """What one TensorRT run left: the runner's folder, the build that made its plan and the
    nsys export when nsys recorded the run."""

    out: Path
    built: BuildResult
    sqlite: Path | None = None


def capture_tensorrt(config: TrtRunConfig, progress: Listener | None = None) -> TrtCapture:
    """Build (or reuse) the engine and run it in a child process (under nsys when asked)."""
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
    return TrtCapture(out, built, sqlite)


def runner_profile(captured: TrtCapture, config: TrtRunConfig) -> Profile:
    """The runner's output folder (``results``) with the facts of the build that made its
    plan and of nsys (captured or why not): every table but the engine's layers and nsys's."""
    out, built, sqlite = captured.out, captured.built, captured.sqlite
    profile = load_results(out)
    meta = profile.meta
    meta.extra["engine"] = {"plan": built.plan.name, "cache_hit": built.cache_hit,
                            "build_seconds": built.sidecar.get("build_seconds"),
                            "layer_info": built.entry.layers.name,
                            "layer_info_kind": built.sidecar.get("layer_info_kind"),
                            "precisions": built.sidecar.get("precisions")}
    meta.extra["runner_folder"] = out.name
    model = built.sidecar.get("model") or {}
    if model.get("name"):
        # the ONNX model first, as on ONNX Runtime; the runner's own files follow
        meta.sources.insert(0, SourceFile("onnx", str(model["name"]), int(model.get("bytes") or 0),
                                          str(model.get("sha256") or "")))
    meta.extra["nsys"] = _nsys_facts(config, sqlite)
    if sqlite is None:
        for name in NSYS_TABLES:
            meta.absent.setdefault(name, f"no nsys capture: {config.no_nsys_reason}")
    return profile


def _nsys_facts(config: TrtRunConfig, sqlite: Path | None) -> dict[str, Any]:
    """Whether nsys recorded the run, how, or why not."""
    if sqlite is None:
        return {"captured": False, "reason": config.no_nsys_reason}
    options = config.nsys_options
    return {"captured": True, "capture_range": "cudaProfilerApi", "capture_range_end": "stop",
            "trace": list(options.trace), "cuda_memory_usage": options.cuda_memory_usage,
            "cuda_graph_trace_node": options.cuda_graph_trace_node,
            "report": f"{sqlite.stem}.nsys-rep", "export": sqlite.name}


def _runner_args(config: TrtRunConfig, sidecar: dict) -> list[str]:
    # the runner applies timed_count.requested to these: -n (when a count is set) wins
    count = ["-n", str(config.iterations)] if config.iterations is not None else []
    args = [*count, "--duration", repr(config.min_seconds), "--warmup", str(config.warmup),
            "--profile-iterations", str(config.profile_iterations),
            "--module", sidecar["tensorrt"]["module"]]
    return args if config.layer_profile else [*args, "--no-layer-profile"]
