"""Which TensorRT is installed, imported lazily with an install hint.

- Builder: full TensorRT (``tensorrt``) where it can be installed, else TensorRT for RTX
  (``tensorrt_rtx``), which builds real engines even on a machine without a GPU.
- Runtime: the module that built the plan must deserialize it (``tensorrt`` or
  ``tensorrt_rtx``). ``tensorrt_lean`` holds the runtime interfaces (``IProfiler``,
  ``IGpuAsyncAllocator``, ...) only and serves as their fallback where no other flavour is
  installed; it cannot build.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING

from ...errors import MissingDependencyError

if TYPE_CHECKING:
    import tensorrt as trt_types

BUILDER_MODULES = ("tensorrt", "tensorrt_rtx")
INTERFACE_MODULES = ("tensorrt", "tensorrt_rtx", "tensorrt_lean")
INSTALL_HINT = "Install a TensorRT builder: pip install tensorrt-rtx-cu13 (or full TensorRT: tensorrt-cu13)"


def _first_importable(names: tuple[str, ...], needs: str = "ILogger") -> ModuleType | None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            # A broken install (e.g. the tensorrt placeholder wheel) must not hide the next one.
            continue
        # tensorrt-stubs installs a bare 'tensorrt' folder (only .pyi files) that imports as an
        # empty namespace package: it is no TensorRT.
        if hasattr(module, needs):
            return module
    return None


def builder_module(name: str | None = None) -> ModuleType:
    """The TensorRT module used to build: ``name`` if given, else the first installed."""
    names = (name,) if name else BUILDER_MODULES
    module = _first_importable(names, "Builder")
    if module is None:
        raise MissingDependencyError(f"no TensorRT builder is installed (tried {', '.join(names)})",
                                     INSTALL_HINT)
    return module


def runtime_module(name: str) -> ModuleType:
    """The module that deserializes a plan built by the module called ``name``."""
    module = _first_importable((name,))
    if module is None:
        raise MissingDependencyError(f"the plan was built with '{name}', which is not installed here",
                                     f"Install the same TensorRT flavour and version ({name})")
    return module


def interface_module() -> ModuleType:
    """A module holding the runtime interfaces (IProfiler, IGpuAsyncAllocator, ...)."""
    module = _first_importable(INTERFACE_MODULES)
    if module is None:
        raise MissingDependencyError("no TensorRT runtime is installed",
                                     "pip install tensorrt-lean-cu13 (or tensorrt-rtx-cu13)")
    return module


def installed(name: str, needs: str = "ILogger") -> bool:
    """Whether ``name`` is a real TensorRT module (not the stubs' empty namespace package)."""
    return _first_importable((name,), needs) is not None


def is_rtx(trt: ModuleType) -> bool:
    return trt.__name__ == "tensorrt_rtx"


def describe(trt: ModuleType) -> dict[str, str]:
    """Module name and version, for cache keys and run metadata."""
    return {"module": trt.__name__, "version": str(getattr(trt, "__version__", "unknown"))}


def shape_of(dims: trt_types.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple of ints (-1 for a dynamic dimension)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def to_dims(trt: ModuleType, shape: tuple[int, ...]) -> trt_types.Dims:
    return trt.Dims(list(shape))
