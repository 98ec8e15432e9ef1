"""Shared test set-up: where the real third-party fixtures are, and skips for absent hardware.

Fixtures are read from ``$GPUPROF_FIXTURES`` or ``../shared/fixtures`` beside the checkout;
tests that need them skip with a reason when they are absent. Hardware markers (gpu, nsys,
trt, trt_runtime, triton, bpf) skip with a reason when the real component is not here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    env = os.environ.get("GPUPROF_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures"


def fixture_path(*parts: str) -> Path:
    """Path to a shared fixture; skips the calling test when it is not there."""
    path = fixtures_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {'/'.join(parts)} not found (set GPUPROF_FIXTURES)")
    return path


def nsys_fixtures() -> list[Path]:
    root = fixtures_root() / "nsys"
    return sorted(root.glob("*.sqlite")) if root.is_dir() else []


def _has_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


def _has_module(*names: str) -> bool:
    return any(importlib.util.find_spec(n) is not None for n in names)


def _has_trt(needs: str) -> bool:
    # tensorrt-stubs installs an empty 'tensorrt' package: ask for a real class, not a name.
    from gpuprof.capture.trt.api import installed

    return installed("tensorrt", needs) or installed("tensorrt_rtx", needs)


def _missing_reason(marker: str) -> str | None:
    if marker == "gpu" and not _has_gpu():
        return "needs a CUDA GPU with a driver (NVML not available here)"
    if marker == "nsys" and shutil.which("nsys") is None:
        return "needs Nsight Systems ('nsys' not on PATH)"
    if marker == "trt" and not _has_trt("Builder"):
        return "needs the TensorRT builder (pip install tensorrt-rtx-cu13)"
    if marker == "trt_runtime" and not (_has_gpu() and _has_trt("Runtime")):
        return "needs a GPU and a TensorRT runtime to deserialize engines"
    if marker == "triton" and not (_has_module("pytriton") and _has_module("tritonclient")):
        return ("needs tritonclient and the tritonserver bundled in nvidia-pytriton "
                "(pip install 'tritonclient[http,grpc]' && pip install --no-deps nvidia-pytriton)")
    if marker == "bpf" and (shutil.which("bpftrace") is None or os.geteuid() != 0):
        return "needs bpftrace (apt-get install bpftrace) and root"
    return None


def pytest_collection_modifyitems(config, items):
    cache: dict[str, str | None] = {}
    for item in items:
        for marker in ("gpu", "nsys", "trt", "trt_runtime", "triton", "bpf"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in cache:
                cache[marker] = _missing_reason(marker)
            if cache[marker]:
                item.add_marker(pytest.mark.skip(reason=cache[marker]))
