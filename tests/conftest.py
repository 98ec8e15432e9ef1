"""Shared test set-up: where the real third-party fixtures are, and skips for absent hardware.

Fixtures are read from ``$GPUPROF_FIXTURES`` or ``../shared/fixtures`` beside the checkout;
tests that need them skip with a reason when they are absent. Hardware markers (gpu, nsys,
trt, trt_runtime, triton, bpf, browser) skip with a reason when the real component is not here.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib.util
import json
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


# -- plain SQL on nsys exports: the independent side of cross-checks (never gpuprof's code) --

def sql_pid(column: str) -> str:
    """The process id nsys packs into a globalPid/globalTid (bits 24-47)."""
    return f"(({column} >> 24) & 16777215)"


SQL_PID = sql_pid("globalPid")
GPU_ACTIVITY_TABLES = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                       "CUPTI_ACTIVITY_KIND_MEMSET")
# each kernel (k) with the CUDA runtime call that launched it (r): same correlation id and process
SQL_KERNEL_LAUNCHES = ("CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r "
                       f"ON r.correlationId = k.correlationId AND {sql_pid('r.globalTid')} = "
                       f"{sql_pid('k.globalPid')}")
# memKind -> its name in lower case ("device", "pinned", ...), as a WITH clause named kinds
SQL_MEM_KIND_NAMES = ("kinds AS (SELECT id, LOWER(SUBSTR(name, INSTR(name, '_KIND_') + 6)) AS kind "
                      "FROM ENUM_CUDA_MEM_KIND)")


def sql_domain(name: str) -> str:
    """The ids of the NVTX domain registered (eventType 75) under ``name``, for ``IN``."""
    return f"(SELECT domainId FROM NVTX_EVENTS WHERE eventType = 75 AND text = '{name}')"


SQL_TENSORRT_DOMAIN = sql_domain("TensorRT")


def export_sql(path: str | Path, query: str) -> list[tuple]:
    """Plain SQL on an export, read-only; an export without a table the query names (nsys
    exports only tables with data) gives no rows."""
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def nsys_sql(name: str, query: str) -> list[tuple]:
    """Plain SQL on a shared nsys fixture (skips when it is absent), as ``export_sql``."""
    return export_sql(fixture_path("nsys", name), query)


def export_tables(path: str | Path) -> set[str]:
    return {row[0] for row in export_sql(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def kernel_totals(path: str | Path) -> dict[str, tuple[int, int]]:
    """Kernel name -> (summed duration, count) of an export, in plain SQL."""
    return {name: (total, count) for name, total, count in export_sql(path, """
        SELECT s.value, SUM(k.end - k.start), COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k
        JOIN StringIds s ON s.id = k.shortName GROUP BY s.value""")}


# copyKind -> direction (ENUM_CUDA_MEMCPY_OPER, hard-coded: old exports lack the enum) and
# memKind -> the memory a memset wrote (ENUM_CUDA_MEM_KIND: the labels every export carries)
COPY_DIRECTIONS = {1: "HtoD", 2: "DtoH", 8: "DtoD", 10: "PtoP", 11: "UVM HtoD", 12: "UVM DtoH"}
MEM_KINDS = {0: "pageable", 1: "pinned", 2: "device", 3: "array", 4: "managed", 5: "device_static",
             6: "managed_static", 7: "unknown"}


def copies_per_kind(path: str | Path, duration: str = '"end" - start',
                    where: str = "") -> dict[tuple[str, str], tuple[int, ...]]:
    """("memcpy", direction) and ("memset", memory kind) -> (count, bytes, summed ``duration``,
    smallest, largest) of an export's rows that ``where`` keeps."""
    out = {}
    for op, kind, labels in (("memcpy", "copyKind", COPY_DIRECTIONS), ("memset", "memKind", MEM_KINDS)):
        for key, *stats in export_sql(path, f"""
                SELECT {kind}, COUNT(*), SUM(bytes), SUM({duration}), MIN(bytes), MAX(bytes)
                FROM CUPTI_ACTIVITY_KIND_{op.upper()} {where} GROUP BY 1"""):
            out[(op, labels[key])] = tuple(stats)
    return out


def gpu_activity_rows(name: str, where: str = "") -> list[tuple]:
    """(deviceId, pid, streamId, start, end) of every kernel, memcpy and memset of a shared
    fixture, filtered by ``where`` (a WHERE clause on those columns)."""
    rows = []
    for table in GPU_ACTIVITY_TABLES:
        rows += nsys_sql(name, f'SELECT deviceId, {SQL_PID}, streamId, start, "end" FROM {table} {where}')
    return rows


KERNEL_TIME = "_kernel_time"   # ONNX Runtime's suffix on a node's event in its profile JSON


def ort_profiled_runs(prof: Path):
    """Each ONNX Runtime run the served model profiled (`gpuprof triton serve --ort-profile`),
    read in plain Python from its raw files: (pid, session, k, the model's run line, the node
    events inside the run), the k-th run line of a session paired with its k-th model_run."""
    lines, profiles = collections.defaultdict(list), {}
    for path in prof.glob("runs-*.jsonl"):
        pid = int(path.stem.split("-")[1])
        for text in path.read_text().splitlines():
            line = json.loads(text)
            if "profile" in line:
                profiles[(pid, line["session"])] = line["profile"]
            else:
                lines[(pid, line["session"])].append(line)
    for (pid, session), name in profiles.items():
        events = json.loads((prof / name).read_text())
        runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
        assert len(runs) == len(lines[(pid, session)])
        for k, (run, line) in enumerate(zip(runs, lines[(pid, session)])):
            lo, hi = run["ts"], run["ts"] + run["dur"]
            nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith(KERNEL_TIME)
                     and lo <= e["ts"] <= hi]
            yield pid, session, k, line, nodes


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
