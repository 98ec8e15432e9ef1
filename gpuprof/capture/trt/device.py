"""The GPU a plan is built for or run on, read through NVML (never through a TensorRT runtime:
without a GPU, ``trt.Runtime`` returns an object that crashes the process on use).

The one place that answers "is there a GPU here" and "can TensorRT run here": the backend
choice of ``gpuprof engine``, the TensorRT pipeline and the test suite's skips all ask these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from . import api

TENSORRT_RUNTIME_HINT = "pip install tensorrt-cu13, or tensorrt-rtx-cu13"
NO_GPU = "NVML reports no GPU"


def gpu_unavailable_reason() -> str | None:
    """None when NVML sees at least one GPU, else why not (one short phrase)."""
    try:
        with _nvml() as nvml:
            count = nvml.nvmlDeviceGetCount()
    except ImportError:
        return "nvidia-ml-py is not installed, so no GPU can be detected"
    except Exception as exc:  # pynvml raises NVMLError subclasses named after the cause
        return f"no usable NVIDIA GPU driver ({type(exc).__name__})"
    return None if count > 0 else NO_GPU


def gpu_present() -> bool:
    return gpu_unavailable_reason() is None


def tensorrt_runtime_installed() -> bool:
    """Whether a module that can deserialize plans (``tensorrt`` or ``tensorrt_rtx``) is here."""
    # tensorrt-stubs installs an empty 'tensorrt' package: ask for a real Runtime class.
    return any(api.installed(module, "Runtime") for module in api.BUILDER_MODULES)


def tensorrt_unavailable_reason() -> str | None:
    """None when a TensorRT engine can run here (a GPU and a real runtime for it), else why not.

    The GPU is checked first: creating TensorRT objects without a GPU can crash the process.
    """
    gpu = gpu_unavailable_reason()
    if gpu:
        return gpu
    if not tensorrt_runtime_installed():
        return f"no TensorRT runtime is installed ({TENSORRT_RUNTIME_HINT})"
    if not api.installed("tensorrt", "Runtime"):
        return rtx_gpu_problem(gpu_info())  # TensorRT-RTX alone: only on the GPUs it targets
    return None


# TensorRT-RTX's targets (trt/build.py::build_target): Ampere and later RTX GPUs; never Turing
# (7.5), Hopper (9.0) or datacenter Blackwell (10.x)
RTX_COMPUTE_CAPABILITIES = ("8.0", "8.6", "8.9", "12.")


def rtx_gpu_problem(gpus: list[dict[str, Any]]) -> str | None:
    """Why TensorRT-RTX cannot run on any of ``gpus`` (``gpu_info()`` rows), or None."""
    if not gpus or any(str(g.get("compute_capability", "")).startswith(RTX_COMPUTE_CAPABILITIES)
                       for g in gpus):
        return None
    first = gpus[0]
    return (f"only TensorRT-RTX is installed, and it does not run on {first.get('name', 'this GPU')} "
            f"(compute capability {first.get('compute_capability', '?')}; it targets RTX GPUs "
            "of compute capability 8.0, 8.6, 8.9 and 12.x): install full TensorRT "
            "(pip install tensorrt-cu13), or use --backend onnxruntime")


def gpu_info() -> list[dict[str, Any]]:
    """One dict per visible GPU (name, compute capability, memory, clocks, driver); [] if none."""
    try:
        with _nvml() as nvml:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            return [_one(nvml, i, driver) for i in range(nvml.nvmlDeviceGetCount())]
    except Exception:
        return []


@contextlib.contextmanager
def _nvml() -> Iterator[ModuleType]:
    """pynvml, initialised for the block; ImportError or NVMLError when there is no NVML."""
    import pynvml

    pynvml.nvmlInit()
    try:
        yield pynvml
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _one(nvml: Any, index: int, driver: str) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    info: dict[str, Any] = {
        "device_id": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "compute_capability": f"{major}.{minor}",
        "memory_bytes": int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        "driver_version": driver,
    }
    # Clocks explain run-to-run differences (boost, thermal throttling); any may be unsupported.
    for key, clock in (("sm_clock_mhz", "NVML_CLOCK_SM"), ("memory_clock_mhz", "NVML_CLOCK_MEM")):
        with contextlib.suppress(Exception):
            info[key] = int(nvml.nvmlDeviceGetClockInfo(handle, getattr(nvml, clock)))
        with contextlib.suppress(Exception):
            info[f"max_{key}"] = int(nvml.nvmlDeviceGetMaxClockInfo(handle, getattr(nvml, clock)))
    return info


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
