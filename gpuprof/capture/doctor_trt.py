"""Doctor probes for TensorRT (full, RTX, lean: which builds, which runs) and Nsight Systems.

"Installed" means what ``trt/api.py`` means: a real module, not tensorrt-stubs' empty
namespace package; "runs here" means what ``trt/device.py`` decides for ``gpuprof engine``.
No TensorRT object is created: a Runtime without a GPU crashes the process.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil

from .doctor_checks import MISSING, OK, PARTIAL, Check, Part, first_line, tool_output
from .doctor_gpu import DRIVER_FIX
from .trt import api, device
from .trt.nsys_cmd import NSYS_HINT

# module -> (what it is, pip package, can it build at all)
FLAVOURS = {
    "tensorrt": ("TensorRT", "pip install tensorrt-cu13 (downloads from NVIDIA's servers)", True),
    "tensorrt_rtx": ("TensorRT-RTX", "pip install tensorrt-rtx-cu13 (in gpuprof's trt extra)", True),
    "tensorrt_lean": ("TensorRT lean runtime", "pip install tensorrt-lean-cu13 (in gpuprof's trt extra)", False),
}
NSYS_FIX = f"{NSYS_HINT} (Debian/Ubuntu: apt-get install -y nsight-systems-cli from NVIDIA's CUDA repository)"


def flavour(module: str):
    """The probe for one TensorRT module."""
    def probe(part: Part) -> Check:
        return tensorrt_check(part, module)
    return probe


def tensorrt_check(part: Part, module: str) -> Check:
    label, fix, builds = FLAVOURS[module]
    if not api.installed(module):
        stubs = importlib.util.find_spec(module) is not None
        why = "only type stubs are installed (tensorrt-stubs)" if stubs else "not installed"
        return part.check(MISSING, why, fix, {"version": None, "can_build": False, "can_run": False})
    version = str(getattr(importlib.import_module(module), "__version__", None))
    can_build = builds and api.installed(module, "Builder")
    no_run = run_problem(module)
    facts = {"version": version, "can_build": can_build, "can_run": no_run is None}
    build = "builds engines" if can_build else "cannot build (a runtime only)"
    run = "runs engines here" if no_run is None else f"cannot run engines here: {no_run}"
    status = OK if no_run is None and (can_build or not builds) else PARTIAL
    fix = DRIVER_FIX if device.gpu_unavailable_reason() else FLAVOURS["tensorrt"][1]
    return part.check(status, f"{label} {version}: {build}; {run}", fix, facts)


def run_problem(module: str) -> str | None:
    """Why ``module`` cannot run engines on this machine, or None."""
    no_gpu = device.gpu_unavailable_reason()
    if no_gpu:
        return no_gpu
    if not api.installed(module, "Runtime"):
        return "it has no Runtime"
    if module == "tensorrt_rtx" and (hopper := hopper_only()):
        return hopper
    return None


def hopper_only() -> str | None:
    """Why TensorRT-RTX cannot run on this machine's GPUs (Hopper among them), or None: the
    rule ``device.rtx_gpu_problem`` that ``gpuprof engine`` also follows."""
    return device.rtx_gpu_problem(device.gpu_info())


def tensorrt_usable(part: Part) -> Check:
    """The decision ``gpuprof engine --backend auto`` makes (``device.tensorrt_unavailable_reason``:
    with only TensorRT-RTX on a GPU it does not target, engine runs ONNX Runtime instead)."""
    reason = device.tensorrt_unavailable_reason()
    if reason is not None:
        fix = device.TENSORRT_RUNTIME_HINT if device.gpu_present() else DRIVER_FIX
        return part.check(MISSING, f"no: {reason}", fix)
    runnable = [m for m in api.BUILDER_MODULES if api.installed(m, "Runtime") and run_problem(m) is None]
    return part.check(OK, f"gpuprof engine runs on TensorRT ({', '.join(runnable)})")


def nsys(part: Part) -> Check:
    path = shutil.which("nsys")
    if path is None:
        return part.check(MISSING, "'nsys' is not on PATH", NSYS_FIX,
                          {"path": None, "version": None, "can_profile": False})
    version = first_line(tool_output([path, "--version"]))
    gpu = device.gpu_unavailable_reason()
    facts = {"path": path, "version": version, "can_profile": gpu is None}
    if gpu:
        return part.check(PARTIAL, f"{version or 'version unknown'} ({path}); exports reports, but cannot "
                          f"profile CUDA here: {gpu}", DRIVER_FIX, facts)
    return part.check(OK, f"{version or 'version unknown'} ({path}); can profile CUDA here", facts=facts)
