"""Python subclasses of TensorRT's callback interfaces (IProfiler, IProgressMonitor, ...).

Each TensorRT flavour (tensorrt, tensorrt_lean, tensorrt_rtx) has its own interface classes, so
a subclass is made per flavour, once, when first needed.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

_CLASSES: dict[tuple[str, str], type] = {}


def interface_subclass(trt: ModuleType, interface: str, make: Callable[[Any], type]) -> type:
    """``make(trt.<interface>)``, cached per TensorRT module name and interface."""
    key = (trt.__name__, interface)
    if key not in _CLASSES:
        _CLASSES[key] = make(getattr(trt, interface))
    return _CLASSES[key]
