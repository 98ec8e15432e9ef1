"""Run a callback right after a watched module is imported.

The environment-variable mode starts profiling before the program imports ONNX Runtime or
TensorRT, and importing them eagerly would cost the program start-up time (and fail where
they are absent), so their methods are patched when the program imports them: this finder
wraps the loader of a watched module so that the callback runs once the module has executed.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType

Callback = Callable[[str, ModuleType], None]


class _ThenLoader(importlib.abc.Loader):
    """The module's own loader, then the callback."""

    def __init__(self, loader, name: str, callback: Callback):
        self._loader, self._name, self._callback = loader, name, callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._callback(self._name, module)

    def __getattr__(self, attr):  # resource readers and the like: the real loader's
        return getattr(self._loader, attr)


class PostImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str], callback: Callback):
        self.names = set(names)
        self.callback = callback
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names or fullname in self._busy:
            return None
        self._busy.add(fullname)  # find the real spec with the other finders, not this one
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ThenLoader(spec.loader, fullname, self.callback)
        return spec

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
