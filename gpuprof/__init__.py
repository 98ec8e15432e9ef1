"""gpuprof: find where GPU inference time and memory go.

``import gpuprof`` stays light: heavy parts (TensorRT, ONNX Runtime, Triton, plotting) load
only when used.
"""

from .errors import GpuprofError

__version__ = "0.1.0"


def load(path, details: bool = False):
    """Load an nsys export (.sqlite / .nsys-rep) or a saved run (.gpuprof) as a ``Run``;
    ``details`` also reads launch configurations, API return values and NVTX payloads."""
    from .api import load as _load

    return _load(path, details=details)


def profile(output="trace.json", *, ort_nodes: bool = False, memory_interval_s: float = 0.01,
            gpu_memory: bool = True):
    """Profile this program's inference calls inside ``with gpuprof.profile(...) as prof:``:
    ONNX Runtime, TensorRT and tritonclient calls, records (``prof.record(label)``),
    ``prof.pause()``/``resume()``, memory over time. On exit it writes the Chrome trace at
    ``output`` and the saved run beside it; ``prof.summary()`` and the other reports follow.
    ``ort_nodes`` adds ONNX Runtime's per-node profile of sessions created inside the block."""
    from .pipeline.pyprofile import Profiler

    return Profiler(output, ort_nodes=ort_nodes, memory_interval_s=memory_interval_s,
                    gpu_memory=gpu_memory)


__all__ = ["GpuprofError", "load", "profile", "__version__"]
