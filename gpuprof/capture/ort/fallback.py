"""Which backend ``gpuprof engine`` runs: TensorRT where it can run, ONNX Runtime otherwise.

Whether TensorRT can run here (a usable NVIDIA GPU and a real TensorRT runtime) is decided in
one place, ``capture.trt.device.tensorrt_unavailable_reason``.
"""

from __future__ import annotations

from ...errors import MissingDependencyError

BACKENDS = ("auto", "tensorrt", "onnxruntime")


def choose_backend(requested: str) -> tuple[str, str | None]:
    """(backend to run, why TensorRT is not it, or None)."""
    if requested == "onnxruntime":
        return "onnxruntime", "ONNX Runtime chosen with --backend onnxruntime"
    from ..trt.device import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if requested == "tensorrt" and reason:
        raise MissingDependencyError(f"TensorRT cannot run here: {reason}",
                                     "Use --backend onnxruntime (or --backend auto)")
    if reason:
        return "onnxruntime", f"TensorRT not available here: {reason}"
    return "tensorrt", None
