"""Find the tritonserver bundled in nvidia-pytriton and prepare a backends folder gpuprof owns.

The wheel ships the python backend without a stub and one stub per Python version; the stub
for the running Python must sit beside the backend. We copy the backend and that stub into a
cache folder instead of writing into site-packages, so the installed package stays untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError, MissingToolError

STUB = "triton_python_backend_stub"
INSTALL_HINT = "Install it with: pip install nvidia-pytriton"


@dataclass(frozen=True)
class TritonInstall:
    binary: Path        # .../pytriton/tritonserver/bin/tritonserver
    libs_dir: Path      # .../nvidia_pytriton.libs (LD_LIBRARY_PATH)
    backends_dir: Path  # a folder gpuprof owns: python/ with the right stub


def find_triton(cache_dir: Path | None = None) -> TritonInstall:
    root = pytriton_root() / "tritonserver"
    binary = root / "bin" / "tritonserver"
    if not binary.is_file():
        raise MissingToolError(f"tritonserver not found at {binary}",
                               "Reinstall it with: pip install --force-reinstall nvidia-pytriton")
    libs = root.parents[1] / "nvidia_pytriton.libs"
    return TritonInstall(binary, libs, _owned_backends(root, cache_dir or _cache_root()))


def pytriton_root() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the bundled tritonserver is not installed (package 'nvidia-pytriton')", INSTALL_HINT)
    return Path(list(spec.submodule_search_locations)[0])


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpuprof" / "triton-backends"


def _owned_backends(root: Path, cache: Path) -> Path:
    """``cache/<key>/python`` = the wheel's python backend + this Python's stub (made once)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / STUB
    source = root / "backends" / "python"
    if not stub.is_file() or not source.is_dir():
        raise MissingToolError(f"the bundled python backend has no stub for Python {version}",
                               "Use a Python version that nvidia-pytriton ships a stub for")
    key = f"py{version}-{int(stub.stat().st_mtime)}-{stub.stat().st_size}"
    target = cache / key
    if (target / "python" / STUB).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Build in a temporary folder and rename it into place: concurrent users never see half.
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
    shutil.copytree(source, staging / "python", symlinks=True)
    shutil.copy2(stub, staging / "python" / STUB)
    try:
        os.replace(staging, target)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target
