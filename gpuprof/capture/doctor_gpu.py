"""Doctor probes for the NVIDIA side: driver, NVML, the GPUs, the CUDA runtime.

"Is there a usable GPU" is answered by ``trt/device.py`` (the check ``gpuprof engine`` and the
test suite use); these probes add what explains a missing or slow GPU: which layer is
absent (kernel module, libcuda, NVML, cuda-python) and each GPU's clocks, persistence and ECC.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import re
from pathlib import Path
from typing import Any

from .doctor_checks import MISSING, OK, PARTIAL, Check, Part
from .trt import device

DRIVER_PROC = Path("/proc/driver/nvidia/version")
DRIVER_FIX = "Install the NVIDIA driver on a machine with an NVIDIA GPU (Debian: apt-get install -y nvidia-driver, from non-free)"
NVML_FIX = "pip install nvidia-ml-py (a dependency of gpuprof)"
CUDA_FIX = "pip install cuda-python (in gpuprof's cuda and trt extras)"


def driver(part: Part) -> Check:
    module = kernel_module_version()
    libcuda = ctypes.util.find_library("cuda")
    facts = {"kernel_module_version": module, "libcuda": libcuda}
    if module and libcuda:
        return part.check(OK, f"kernel module {module}, {libcuda}", facts=facts)
    if module or libcuda:
        have = f"kernel module {module}" if module else f"{libcuda}"
        lacks = "libcuda is not on the library path" if module else f"no kernel module ({DRIVER_PROC} absent)"
        return part.check(PARTIAL, f"{have}, but {lacks}", DRIVER_FIX, facts)
    return part.check(MISSING, f"no NVIDIA kernel module ({DRIVER_PROC} absent) and no libcuda",
                      DRIVER_FIX, facts)


def kernel_module_version() -> str | None:
    """The loaded NVIDIA kernel module's version, from /proc/driver/nvidia/version."""
    try:
        text = DRIVER_PROC.read_text(errors="replace")
    except OSError:
        return None
    return parse_module_version(text)


def parse_module_version(text: str) -> str:
    """The version in the module's banner; the proprietary and the open module word it differently."""
    match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else "unknown version"


def nvml(part: Part) -> Check:
    try:
        import pynvml
    except ImportError:
        return part.check(MISSING, "nvidia-ml-py is not installed", NVML_FIX)
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses named after the cause
        return part.check(MISSING, f"NVML does not start ({type(exc).__name__}): no NVIDIA driver here",
                          DRIVER_FIX, {"driver_version": None, "nvml_version": None})
    try:
        facts = {"driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
                 "nvml_version": _text(pynvml.nvmlSystemGetNVMLVersion())}
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return part.check(OK, f"NVML {facts['nvml_version']}, driver {facts['driver_version']}", facts=facts)


def gpus(part: Part) -> Check:
    reason = device.gpu_unavailable_reason()
    if reason:
        fix = NVML_FIX if "not installed" in reason else DRIVER_FIX
        counted = reason == device.NO_GPU  # NVML ran and saw none; else nothing was counted
        return part.check(MISSING, reason, fix, {"count": 0 if counted else None, "gpus": []})
    found = [{**info, **gpu_modes(info["device_id"])} for info in device.gpu_info()]
    names = sorted({g["name"] for g in found})
    return part.check(OK, f"{len(found)} × {', '.join(names)}", facts={"count": len(found), "gpus": found},
                      notes=[describe_gpu(g) for g in found])


def gpu_modes(index: int) -> dict[str, Any]:
    """Persistence and ECC of one GPU (None where NVML cannot say): a GPU without persistence
    pays its start-up on the first CUDA call of every process; ECC costs memory bandwidth."""
    modes: dict[str, Any] = {"persistence_mode": None, "ecc_mode": None}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return modes
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        with contextlib.suppress(Exception):
            modes["persistence_mode"] = bool(pynvml.nvmlDeviceGetPersistenceMode(handle))
        with contextlib.suppress(Exception):
            modes["ecc_mode"] = bool(pynvml.nvmlDeviceGetEccMode(handle)[0])  # (current, pending)
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return modes


def describe_gpu(gpu: dict[str, Any]) -> str:
    parts = [f"GPU {gpu['device_id']}: {gpu['name']}", f"compute capability {gpu['compute_capability']}",
             f"{gpu['memory_bytes'] / 2**30:.1f} GiB",
             f"SM clock {_clock(gpu, 'sm_clock_mhz')}", f"memory clock {_clock(gpu, 'memory_clock_mhz')}",
             f"persistence {_on_off(gpu.get('persistence_mode'))}", f"ECC {_on_off(gpu.get('ecc_mode'))}"]
    return ", ".join(parts)


def _clock(gpu: dict[str, Any], key: str) -> str:
    now, top = gpu.get(key), gpu.get(f"max_{key}")
    return f"{_or_unknown(now)} of {_or_unknown(top)} MHz"


def _on_off(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")


def _or_unknown(value: Any) -> str:
    return "unknown" if value is None else str(value)


def cuda_runtime(part: Part) -> Check:
    from ..errors import MissingDependencyError
    from .trt.allocator import cuda_runtime as runtime_module

    try:
        rt = runtime_module()
    except MissingDependencyError:
        return part.check(MISSING, "cuda-python is not installed", CUDA_FIX,
                          {"runtime_version": None, "driver_version": None, "device_count": None})
    runtime = _cuda_value(rt, rt.cudaRuntimeGetVersion())
    facts: dict[str, Any] = {"runtime_version": cuda_version(runtime), "driver_version": None,
                             "device_count": None}
    error, count = rt.cudaGetDeviceCount()
    if error != rt.cudaError_t.cudaSuccess:
        return part.check(PARTIAL, f"runtime {facts['runtime_version']} loads, but no GPU can be used "
                          f"({getattr(error, 'name', error)})", DRIVER_FIX, facts)
    facts["driver_version"] = cuda_version(_cuda_value(rt, rt.cudaDriverGetVersion()))
    facts["device_count"] = int(count)
    return part.check(OK, f"runtime {facts['runtime_version']}, driver supports CUDA "
                      f"{facts['driver_version']}, {count} device(s)", facts=facts)


def _cuda_value(rt: Any, result: tuple) -> int | None:
    error, value = result
    return int(value) if error == rt.cudaError_t.cudaSuccess else None


def cuda_version(encoded: int | None) -> str | None:
    """CUDA's 1000 * major + 10 * minor as "major.minor" (0: no driver)."""
    if not encoded:
        return None
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
