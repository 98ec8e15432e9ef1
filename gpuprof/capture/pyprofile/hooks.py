"""What every runtime hook shares: the patches it made, undone on ``remove``."""

from __future__ import annotations

from types import ModuleType

from .patches import Patch, patch_method
from .recorder import Recorder


class Hook:
    """Patches one runtime module's entry points while profiling is on."""

    modules: tuple[str, ...] = ()   # the import names that trigger ``install``

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.patches: list[Patch] = []

    def install(self, name: str, module: ModuleType) -> None:
        raise NotImplementedError

    def wrap(self, owner, method: str, make_wrapper, what: str) -> None:
        """Patch ``owner.method``; a runtime version without it gets a warning, not an error."""
        patch = patch_method(owner, method, make_wrapper)
        if patch is None:
            self.recorder.warn(f"{what} has no '{method}' in this version; its calls are not captured")
        else:
            self.patches.append(patch)

    def remove(self) -> None:
        while self.patches:
            self.patches.pop().restore()

    def finish(self) -> None:
        """Collect what is only known at the end (GPU times, runtime profiles)."""
