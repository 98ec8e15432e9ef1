"""The GPU a plan is built for or run on, read through NVML (never through a TensorRT runtime:
without a GPU, ``trt.Runtime`` returns an object that crashes the process on use)."""

from __future__ import annotations

import contextlib
from typing import Any


def gpu_info() -> list[dict[str, Any]]:
    """One dict per visible GPU (name, compute capability, memory, clocks, driver); [] if none."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        return [_one(pynvml, i, driver) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def gpu_present() -> bool:
    return bool(gpu_info())


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
