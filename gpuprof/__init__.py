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


__all__ = ["GpuprofError", "load", "__version__"]
