"""Facts about an ONNX Runtime run for ``RunMeta``: model file, host CPU, settings, gaps."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

from ...model.meta import SourceFile
from .. import onnx_inputs, timed_count


def source_file(path: Path) -> SourceFile:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return SourceFile("onnx", path.name, path.stat().st_size, digest.hexdigest())


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo; ``platform.processor()`` elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_facts(config, resolved, providers, captured) -> dict:
    import psutil

    return {
        "backend": "onnxruntime",
        "model": config.model.name,
        "input_shapes": onnx_inputs.describe_resolved(resolved),
        "inputs": [{"name": r.spec.name, "dtype": str(r.spec.dtype), "declared": r.spec.declared,
                    "shape": list(r.shape), "guessed_axes": list(r.guessed_axes)} for r in resolved],
        "providers_requested": providers,
        "cpu_model": cpu_model(),
        "cpu_cores_logical": os.cpu_count(),
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
