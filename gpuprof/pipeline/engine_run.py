"""An engine run, composed: the capture of ``gpuprof engine`` (TensorRT or ONNX Runtime) and
what is read, merged and put on one clock after it, as one ``Profile``.

Capture returns the run's raw results (the TensorRT runner's folder and nsys export, ONNX
Runtime's timed pass and its own profile JSON); this module reads them with ingest and merges
them with align, so the capture modules import neither.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model import Profile, conform


def run_tensorrt(config, progress=None) -> Profile:
    """Build (or reuse) the engine, run it in a child process (``capture/trt``), load its
    results with the engine's layers and, when nsys recorded it, the export merged on."""
    from ..capture.trt.pipeline import capture_tensorrt

    return profile_from_results(capture_tensorrt(config, progress), config)


def profile_from_results(captured, config) -> Profile:
    """A finished TensorRT run (``capture.trt.pipeline.TrtCapture``) as one ``Profile``: what
    ``gpuprof engine`` reports."""
    from ..capture.trt.pipeline import runner_profile

    profile = runner_profile(captured, config)
    _attach_layer_info(profile, captured.built.entry.layers)
    if captured.sqlite is None:
        return profile
    from ..align.clock import merge_nsys
    from ..ingest.nsys import read_nsys

    # kernels, API calls, NVTX layer ranges and nsys memory events join the run's own
    # tables, moved onto its monotonic clock through the runner's NVTX clock marks
    profile = merge_nsys(profile, read_nsys(captured.sqlite, details=True))
    profile.meta.extra["nsys_sqlite"] = os.fspath(captured.sqlite.name)
    return profile


def _attach_layer_info(profile: Profile, layers_json: Path) -> None:
    """The engine's layers (type, precision, tactic) as a table; IProfiler rows get their types."""
    from ..ingest.trt_layer_info import read_layer_info, with_layer_types

    if not Path(layers_json).exists():
        return
    layers = read_layer_info(layers_json)
    profile.tables["engine_layers"] = layers
    profile.tables["layer_timings"] = conform(
        "layer_timings", with_layer_types(profile.layer_timings, layers))


def run_onnxruntime(config, progress=None) -> Profile:
    """Run ``config.model`` on ONNX Runtime (``capture/ort``) and return its ``Profile``, with
    ORT's per-node times of the profiled pass on the run's clock. Ctrl-C during the run keeps
    what was captured (``meta.extra["partial"]``); ORT's file is removed unless it was asked
    for (``config.raw_profile_path``)."""
    from ..capture.ort import capture_onnxruntime

    captured = capture_onnxruntime(config, progress)
    try:
        if captured.raw_profile is not None:
            _attach_ort_profile(captured, config.profile_warmup)
    finally:
        captured.discard_raw()
    return captured.profile


def _attach_ort_profile(captured, warmup_runs: int) -> None:
    """ORT's per-node times as ``layer_timings``, moved onto the run's perf_counter_ns clock by
    the brackets around each profiled run; the warm-up runs skipped."""
    from ..align.ort_clock import run_bracket_clock
    from ..ingest.onnxruntime_profile import parse_events, read_events

    events = read_events(captured.raw_profile)
    clock = run_bracket_clock(events, captured.profile_brackets)
    parsed = parse_events(events, clock.offset_ns, skip_runs=warmup_runs)
    profile = captured.profile
    profile.tables["layer_timings"] = conform("layer_timings", parsed.layer_timings)
    profile.meta.clocks["onnxruntime_profile"] = clock
    profile.meta.extra["profile_runs"] = parsed.runs.to_dict(orient="list")
    profile.meta.extra["node_providers"] = parsed.providers
