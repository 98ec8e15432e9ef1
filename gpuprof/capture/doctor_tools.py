"""Doctor probes for Python, gpuprof, Triton (server and client), ONNX Runtime and Chromium."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

from .doctor_checks import (
    MISSING,
    OK,
    PARTIAL,
    Check,
    Part,
    first_line,
    package_version,
    tool_output,
)
from .trt import device

PYTRITON_FIX = "pip install --no-deps nvidia-pytriton"
TRITONCLIENT_FIX = 'pip install "tritonclient[http,grpc]" (in gpuprof\'s triton extra)'
ORT_FIX = "pip install onnxruntime (a dependency of gpuprof)"
ORT_GPU_FIX = "pip install onnxruntime-gpu (for its CUDAExecutionProvider)"
CHROMIUM_FIX = "apt-get install -y chromium"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def python(part: Part) -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    facts = {"version": version, "executable": sys.executable}
    return part.check(OK, f"Python {version} ({sys.executable})", facts=facts)


def gpuprof(part: Part) -> Check:
    version = package_version("gpuprof")
    where = str(Path(__file__).resolve().parents[1])
    facts = {"version": version, "path": where}
    if version is None:
        return part.check(PARTIAL, f"imported from {where} but not installed as a package",
                          "pip install -e . (in the checkout)", facts)
    return part.check(OK, f"gpuprof {version} ({where})", facts=facts)


def tritonserver(part: Part) -> Check:
    """The bundled binary and this Python's backend stub, found as ``triton_backends`` finds them
    (without copying the backend into the cache, as a real start does)."""
    from ..errors import GpuprofError
    from . import triton_backends

    unknown = {"binary": None, "package_version": package_version("nvidia-pytriton")}
    try:
        root = triton_backends.pytriton_root() / "tritonserver"
    except GpuprofError as exc:
        return part.check(MISSING, exc.message, PYTRITON_FIX, unknown)
    binary = root / "bin" / "tritonserver"
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / python_version / triton_backends.STUB
    libs = root.parents[1] / "nvidia_pytriton.libs"  # where triton_server.py points LD_LIBRARY_PATH
    facts = {**unknown, "binary": str(binary) if binary.is_file() else None, "python_stub": stub.is_file(),
             "libraries": libs.is_dir()}
    if not binary.is_file() or not libs.is_dir():
        lacking = binary if not binary.is_file() else libs
        return part.check(MISSING, f"nvidia-pytriton is incomplete: no {lacking}",
                          "pip install --force-reinstall --no-deps nvidia-pytriton", facts)
    if not stub.is_file():
        return part.check(PARTIAL, f"tritonserver found, but no python backend stub for Python {python_version}",
                          "Use a Python version that nvidia-pytriton ships a stub for", facts)
    from .triton_server import server_malloc

    # None: glibc's, which tritonserver 2.51's trace crash corrupts
    facts["malloc"], malloc = server_malloc()
    return part.check(OK, f"bundled in nvidia-pytriton {unknown['package_version']}, python backend "
                      f"stub for Python {python_version}; malloc: {malloc}", facts=facts)


def tritonclient(part: Part) -> Check:
    protocols = {name: _imports(f"tritonclient.{name}") for name in ("http", "grpc")}
    version = package_version("tritonclient")
    facts = {"version": version, **protocols}
    have = [name for name, ok in protocols.items() if ok]
    if len(have) == len(protocols):
        return part.check(OK, f"tritonclient {version}: HTTP and gRPC", facts=facts)
    if have:
        return part.check(PARTIAL, f"tritonclient {version}: {have[0]} only", TRITONCLIENT_FIX, facts)
    return part.check(MISSING, "tritonclient is not installed" if version is None else
                      f"tritonclient {version} installed, but neither HTTP nor gRPC imports", TRITONCLIENT_FIX,
                      facts)


def _imports(module: str) -> bool:
    """Whether ``module`` imports (its own dependencies too: geventhttpclient, grpcio)."""
    try:
        importlib.import_module(module)
    except Exception:  # a missing dependency raises ImportError; a broken one anything
        return False
    return True


def onnxruntime(part: Part) -> Check:
    try:
        import onnxruntime as ort
    except ImportError:
        return part.check(MISSING, "onnxruntime is not installed", ORT_FIX, {"version": None, "providers": None})
    providers = list(ort.get_available_providers())
    facts = {"version": ort.__version__, "providers": providers}
    detail = f"onnxruntime {ort.__version__}: {', '.join(providers)}"
    if "CUDAExecutionProvider" not in providers and device.gpu_present():
        return part.check(PARTIAL, f"{detail} (runs on the CPU although a GPU is here)", ORT_GPU_FIX, facts)
    return part.check(OK, detail, facts=facts)


def chromium(part: Part) -> Check:
    path = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    if path is None:
        return part.check(MISSING, "no Chromium or Chrome on PATH (only needed to check HTML output)",
                          CHROMIUM_FIX, {"path": None, "version": None})
    version = first_line(tool_output([path, "--version"]))
    return part.check(OK, f"{version or 'version unknown'} ({path})", facts={"path": path, "version": version})

