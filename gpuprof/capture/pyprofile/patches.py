"""Replace a method on a class with a wrapper, and put the original back exactly.

A method a class inherits (ORT's ``InferenceSession.run`` is defined on ``Session``) is
shadowed on the class itself and the shadow deleted on restore, so the class ends as it was.
pybind11 classes (TensorRT) accept attribute assignment the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass
class Patch:
    owner: Any
    name: str
    original: Any
    own: Any  # what owner.__dict__ held under name before (_MISSING: inherited)

    def restore(self) -> None:
        if self.own is _MISSING:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self.own)


def patch_method(owner: Any, name: str, make_wrapper: Callable[[Callable], Callable]) -> Patch | None:
    """Wrap ``owner.name``; None when ``owner`` has no such method (another version's API)."""
    original = getattr(owner, name, None)
    if not callable(original):
        return None
    own = owner.__dict__.get(name, _MISSING)
    wrapper = make_wrapper(original)
    wrapper.__gpuprof_original__ = original
    for attr in ("__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attr, getattr(original, attr))
        except (AttributeError, TypeError):
            pass
    setattr(owner, name, wrapper)
    return Patch(owner, name, original, own)
