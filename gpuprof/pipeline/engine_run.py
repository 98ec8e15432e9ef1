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
