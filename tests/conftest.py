"""Shared test set-up: where the real third-party fixtures are, and skips for absent hardware.

Fixtures are read from ``$GPUPROF_FIXTURES`` or ``../shared/fixtures`` beside the checkout;
tests that need them skip with a reason when they are absent. Hardware markers (gpu, nsys,
trt, trt_runtime, triton, bpf, browser) skip with a reason when the real component is not here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    env = os.environ.get("GPUPROF_FIXTURES")
    return Path(env) if env else REPO.parent / "shared" / "fixtures"


def fixture_path(*parts: str) -> Path:
    """Path to a shared fixture; skips the calling test when it is not there."""
    path = fixtures_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {'/'.join(parts)} not found (set GPUPROF_FIXTURES)")
    return path


def nsys_fixtures() -> list[Path]:
    root = fixtures_root() / "nsys"
    return sorted(root.glob("*.sqlite")) if root.is_dir() else []


def _has_module(*names: str) -> bool:
    return any(importlib.util.find_spec(n) is not None for n in names)


def _missing_reason(marker: str) -> str | None:
    # GPU and TensorRT checks are gpuprof's own (capture/trt/device.py), so a test skips exactly
    # where `gpuprof engine` would not choose TensorRT.
    from gpuprof.capture.trt import api, device

    if marker == "gpu" and (why := device.gpu_unavailable_reason()):
        return f"needs a CUDA GPU with a driver: {why}"
    if marker == "nsys" and shutil.which("nsys") is None:
        return "needs Nsight Systems ('nsys' not on PATH)"
    if marker == "trt" and not any(api.installed(m, "Builder") for m in api.BUILDER_MODULES):
        return "needs the TensorRT builder (pip install tensorrt-rtx-cu13)"
    if marker == "trt_runtime" and (why := device.tensorrt_unavailable_reason()):
        return f"needs a GPU and a TensorRT runtime to deserialize engines: {why}"
    if marker == "triton" and not (_has_module("pytriton") and _has_module("tritonclient")):
        return ("needs tritonclient and the tritonserver bundled in nvidia-pytriton "
                "(pip install 'tritonclient[http,grpc]' && pip install --no-deps nvidia-pytriton)")
    if marker == "bpf" and (shutil.which("bpftrace") is None or os.geteuid() != 0):
        return "needs bpftrace (apt-get install bpftrace) and root"
    if marker == "browser" and (shutil.which("chromium") is None or not _has_module("playwright")):
        return ("needs Debian's chromium (apt-get install chromium) and Playwright for Python "
                "(pip install playwright; no browser download)")
    return None


def pytest_collection_modifyitems(config, items):
    cache: dict[str, str | None] = {}
    for item in items:
        for marker in ("gpu", "nsys", "trt", "trt_runtime", "triton", "bpf", "browser"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in cache:
                cache[marker] = _missing_reason(marker)
            if cache[marker]:
                item.add_marker(pytest.mark.skip(reason=cache[marker]))


# -- helpers shared by several test modules ---------------------------------------------------

CLS_MODEL = REPO / "models" / "ppocr_mobile_v2_cls.onnx"


@functools.cache
def nsys_profile(name: str):
    """A shared nsys fixture, ingested once per test session."""
    from gpuprof.ingest.nsys import read_nsys

    return read_nsys(fixture_path("nsys", name))


def nsys_sql(name: str, query: str) -> list[tuple]:
    """Plain SQL on a shared nsys fixture, the independent side of cross-checks; an export
    without a table the query names (nsys exports only tables with data) gives no rows."""
    path = fixture_path("nsys", name)
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


@contextlib.contextmanager
def spy_on(module, name: str):
    """Every result of ``module.name`` while active, in call order (e.g. what memory.png really
    draws: ``spy_on(plots, "memory_lines")``); the function itself still runs."""
    seen: list = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, spy)
        yield seen


def build_cls_engine(tmp_path_factory, shapes: dict):
    """A real TensorRT(-RTX) build of the small PP-OCR classifier, or a skip with the reason."""
    from gpuprof.capture.trt.api import builder_module
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import BuildOptions
    from gpuprof.errors import MissingDependencyError

    try:
        builder_module()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    if not CLS_MODEL.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not found (run tools/fetch_models.py)")
    cache = tmp_path_factory.mktemp("engines")
    return build_engine(CLS_MODEL, BuildOptions(shapes=shapes), cache_dir=cache)


@pytest.fixture(scope="module")
def cls_triton_server(tmp_path_factory):
    """The real bundled tritonserver serving the PP-OCR classifier, one per test module; its
    trace file starts with tracing off so `gpuprof perf --trace` can switch it on."""
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    trace = TraceConfig(tmp_path_factory.mktemp("trace") / "trace.json", levels=("OFF",))
    srv = serve_onnx(CLS_MODEL, trace=trace)
    yield srv
    srv.stop()
