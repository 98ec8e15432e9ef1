"""Which backend ``gpuprof engine`` runs: TensorRT where it can run, ONNX Runtime otherwise.

TensorRT needs both an importable ``tensorrt`` runtime and a usable NVIDIA GPU (driver and
NVML). The GPU is checked first: creating TensorRT objects without a GPU can crash the process.
"""

from __future__ import annotations

from ...errors import MissingDependencyError

BACKENDS = ("auto", "tensorrt", "onnxruntime")


def gpu_unavailable_reason() -> str | None:
    """None when NVML sees at least one GPU, else why not (one short phrase)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except ImportError:
        return "nvidia-ml-py is not installed, so no GPU can be detected"
    except Exception as exc:  # pynvml raises NVMLError subclasses named after the cause
        return f"no usable NVIDIA GPU driver ({type(exc).__name__})"
    return None if count > 0 else "NVML reports no GPU"


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT can run here, else why not."""
    gpu = gpu_unavailable_reason()
    if gpu:
        return gpu
    from ..trt import api

    # tensorrt-stubs installs an empty 'tensorrt' package: ask for a real Runtime class.
    if not any(api.installed(module, "Runtime") for module in api.BUILDER_MODULES):
        return "no TensorRT runtime is installed (pip install tensorrt-cu13, or tensorrt-rtx-cu13)"
    return None


def choose_backend(requested: str, tensorrt_wired: bool) -> tuple[str, str | None]:
    """(backend to run, why TensorRT is not it, or None).

    ``tensorrt_wired`` says whether this build has a TensorRT run path for ``gpuprof engine``.
    """
    if requested == "onnxruntime":
        return "onnxruntime", "ONNX Runtime chosen with --backend onnxruntime"
    reason = tensorrt_unavailable_reason()
    if reason is None and not tensorrt_wired:
        reason = "gpuprof's TensorRT run path is not part of this build yet"
    if requested == "tensorrt" and reason:
        raise MissingDependencyError(f"TensorRT cannot run here: {reason}",
                                     "Use --backend onnxruntime (or --backend auto)")
    if reason:
        return "onnxruntime", f"TensorRT not available here: {reason}"
    return "tensorrt", None
