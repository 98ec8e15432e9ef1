"""Facts about an ONNX Runtime run for ``RunMeta``: model file, settings, gaps (host CPU: ``capture.host``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...model.meta import SourceFile
from .. import host, onnx_inputs, timed_count


def source_file(path: Path) -> SourceFile:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return SourceFile("onnx", path.name, path.stat().st_size, digest.hexdigest())


def run_facts(config, resolved, providers, captured) -> dict:
    import psutil

    inputs = onnx_inputs.resolved_facts(resolved)
    return {
        "backend": "onnxruntime",
        "model": config.model.name,
        "input_shapes": onnx_inputs.describe_inputs(inputs),
        "inputs": inputs,
        "providers_requested": providers,
        **host.cpu_facts(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "iterations": len(captured.ends),
        "iterations_requested": timed_count.describe(config.iterations, config.min_seconds,
                                                     config.min_iterations),
        "warmup": config.warmup,
        "profile_iterations": config.profile_iterations if config.layer_profile else 0,
        "profile_warmup": config.profile_warmup if config.layer_profile else 0,
        "rss_interval_ms": round(config.rss_interval_s * 1000, 3),
        "rss_timed_interval_ms": round(config.rss_timed_interval_s * 1000, 3),
        "timer": "time.perf_counter_ns around session.run (host wall clock)",
    }


def absent_tables(config, have_layers: bool) -> dict[str, str]:
    absent = {
        "kernels": "ONNX Runtime runs record no GPU kernels (use an nsys export for those)",
        "api_calls": "ONNX Runtime runs record no CUDA API calls",
        "copies": "ONNX Runtime runs record no GPU copies",
        "nvtx_ranges": "ONNX Runtime emits no NVTX ranges",
        "requests": "a local run has no server requests",
        "network_events": "a local run has no network events",
    }
    if not have_layers:
        absent["layer_timings"] = ("per-layer profile skipped (--no-layer-profile)"
                                   if not config.layer_profile else "interrupted before a profiled iteration completed")
    return absent
