"""Each doctor check against an independent look at this machine.

The probes reuse gpuprof's own preflights (NVML through trt/device.py, net_preflight, the
TensorRT module checks); the tests look another way: the kernel's files, the dynamic loader,
the package metadata, the tools themselves, a fresh interpreter importing the module.
"""

from __future__ import annotations

import ctypes
import glob
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuprof.capture import doctor, doctor_checks
from gpuprof.capture.doctor_checks import MISSING, OK, PARTIAL, Part
from tests.conftest import REPO

TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


@pytest.fixture(scope="module")
def checks() -> dict[str, doctor_checks.Check]:
    return {check.name: check for check in doctor.examine(reraise=True)}


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def _gpus_in_kernel() -> int:
    """GPUs the NVIDIA kernel module lists (one folder each), 0 without the module."""
    folder = Path("/proc/driver/nvidia/gpus")
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def _all_hopper() -> bool:
    """Every GPU is a Hopper (compute capability 9.x), which TensorRT-RTX does not run on;
    asked of nvidia-smi, not NVML's Python binding."""
    smi = shutil.which("nvidia-smi")
    if smi is None or not _gpus_in_kernel():
        return False
    caps = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30).stdout.split()
    return bool(caps) and all(cap.startswith("9.") for cap in caps)


def _imports_in_fresh_python(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, timeout=60)
    return done.returncode == 0


def _tracefs_mount() -> str | None:
    mounts = Path("/proc/mounts").read_text().splitlines()
    points = {line.split()[1] for line in mounts if line.split()[2] == "tracefs"}
    return next((p for p in TRACEFS_MOUNTS if p in points and Path(p, "events").is_dir()), None)


def _available_events(tracefs: str) -> set[str]:
    try:
        return set(Path(tracefs, "available_events").read_text().split())
    except OSError:
        return set()


def test_every_probe_answers_once_with_a_known_status(checks):
    assert list(checks) == [part.name for part, _ in doctor.PROBES]
    for check in checks.values():
        assert check.status in (OK, PARTIAL, MISSING)
        assert check.detail and "\n" not in check.detail
        assert (check.fix is None) == (check.status == OK), check


def test_python_and_gpuprof_versions(checks):
    assert checks["python"].facts["version"] == platform.python_version()
    assert checks["python"].facts["executable"] == sys.executable
    project = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert project and checks["gpuprof"].facts["version"] == project.group(1)
    assert Path(checks["gpuprof"].facts["path"]) == REPO / "gpuprof"


def test_driver_matches_the_kernel_module_and_the_loader(checks):
    facts = checks["nvidia_driver"].facts
    module = Path("/proc/driver/nvidia/version").exists()
    libcuda = _loads("libcuda.so.1") or _loads("libcuda.so")
    assert (facts["kernel_module_version"] is not None) == module
    assert (facts["libcuda"] is not None) == libcuda
    assert checks["nvidia_driver"].status == (OK if module and libcuda else PARTIAL if module or libcuda else MISSING)
    if module:
        assert facts["kernel_module_version"] in Path("/proc/driver/nvidia/version").read_text()


def test_nvml_starts_exactly_where_its_library_loads(checks):
    assert (checks["nvml"].status == OK) == _loads("libnvidia-ml.so.1")


def test_gpu_count_matches_the_kernel_module(checks):
    gpus = checks["gpus"]
    assert (gpus.facts["count"] or 0) == _gpus_in_kernel() == len(gpus.notes)
    if not _loads("libnvidia-ml.so.1"):
        assert gpus.facts["count"] is None  # not counted, so not 0
    assert (gpus.status == OK) == (_gpus_in_kernel() > 0)
    for gpu, note in zip(gpus.facts["gpus"], gpus.notes):
        assert note.startswith(f"GPU {gpu['device_id']}: {gpu['name']}")
        assert f"of {gpu.get('max_sm_clock_mhz', 'unknown')} MHz" in note


@pytest.mark.gpu
def test_gpu_clocks_persistence_and_ecc_match_nvidia_smi(checks):
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi is not on PATH")
    rows = subprocess.run([smi, "--query-gpu=index,name,clocks.max.sm,persistence_mode,ecc.mode.current",
                           "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip().splitlines()
    for row, gpu in zip(rows, checks["gpus"].facts["gpus"]):
        index, name, max_sm, persistence, ecc = (cell.strip() for cell in row.split(","))
        assert (int(index), name) == (gpu["device_id"], gpu["name"])
        assert gpu.get("max_sm_clock_mhz") == int(max_sm)
        assert gpu["persistence_mode"] == (persistence == "Enabled")
        assert gpu["ecc_mode"] == (ecc == "Enabled") or ecc == "[N/A]"


def test_cuda_runtime_matches_cuda_python_and_the_gpus(checks):
    cuda = checks["cuda_runtime"]
    if importlib.util.find_spec("cuda") is None:
        assert cuda.status == MISSING and "cuda-python" in cuda.fix
        return
    bindings = importlib.metadata.version("cuda-bindings").split(".")
    assert cuda.facts["runtime_version"] == f"{bindings[0]}.{bindings[1]}"
    assert cuda.status == (OK if _gpus_in_kernel() else PARTIAL)
    assert (cuda.facts["device_count"] or 0) == _gpus_in_kernel()


@pytest.mark.parametrize("module, distributions, builds", [
    ("tensorrt", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12"), True),
    ("tensorrt_rtx", ("tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt-rtx"), True),
    ("tensorrt_lean", ("tensorrt-lean-cu13", "tensorrt-lean-cu12", "tensorrt-lean"), False),
])
def test_tensorrt_flavours_match_their_packages(checks, module, distributions, builds):
    check = checks[module]
    real = importlib.util.find_spec(module) is not None and hasattr(importlib.import_module(module), "ILogger")
    if not real:
        assert check.status == MISSING and check.facts["version"] is None and "pip install" in check.fix
        return
    versions = {importlib.metadata.version(d) for d in distributions if _installed(d)}
    assert check.facts["version"] in versions
    assert check.facts["can_build"] == (builds and hasattr(importlib.import_module(module), "Builder"))
    runs = _gpus_in_kernel() > 0 and not (module == "tensorrt_rtx" and _all_hopper())
    assert check.facts["can_run"] == runs
    assert check.status == (OK if runs else PARTIAL)


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_tensorrt_usable_needs_a_gpu_and_a_runtime(checks):
    runtimes = [m for m in ("tensorrt", "tensorrt_rtx") if importlib.util.find_spec(m) is not None
                and hasattr(importlib.import_module(m), "Runtime")]
    if _all_hopper():
        runtimes = [m for m in runtimes if m != "tensorrt_rtx"]
    assert (checks["tensorrt_usable"].status == OK) == (bool(runtimes) and _gpus_in_kernel() > 0)


def test_nsys_matches_path_and_its_own_version(checks):
    nsys = checks["nsys"]
    path = shutil.which("nsys")
    assert nsys.facts["path"] == path
    if path is None:
        assert nsys.status == MISSING and "nsight-systems" in nsys.fix.lower()
        return
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert nsys.facts["version"] in out
    assert nsys.status == (OK if _gpus_in_kernel() else PARTIAL)


def test_root_matches_euid(checks):
    assert (checks["root"].status == OK) == (os.geteuid() == 0)
    assert checks["root"].facts["uid"] == os.geteuid()


def test_bpftrace_matches_path_and_its_own_version(checks):
    check = checks["bpftrace"]
    path = shutil.which("bpftrace")
    assert check.facts["path"] == path
    if path is None:
        assert check.status == MISSING and check.fix == "apt-get install -y bpftrace"
        return
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert check.status == OK and check.facts["version"] == out.strip().splitlines()[0]


def test_tracefs_btf_tracepoints_kprobes_match_the_kernel(checks):
    tracefs = _tracefs_mount()
    assert checks["tracefs"].facts["path"] == tracefs
    assert (checks["btf"].status == OK) == Path("/sys/kernel/btf/vmlinux").is_file()
    if tracefs is None:
        assert checks["tracepoints"].facts["sock"] is None and checks["kprobes"].facts["present"] is None
        return
    events = _available_events(tracefs)
    sock = {"sock:sock_send_length", "sock:sock_recv_length"} <= events
    assert checks["tracepoints"].facts == {"sock": sock, "syscalls": "syscalls:sys_enter_getpgid" in events}
    symbols = {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines() if len(line.split()) > 2}
    kprobes = Path(tracefs, "kprobe_events").exists() and {"tcp_sendmsg", "tcp_recvmsg"} <= symbols
    assert checks["kprobes"].facts["present"] == kprobes


def test_capture_verdict_matches_the_parts(checks):
    tracefs = _tracefs_mount()
    events = _available_events(tracefs) if tracefs else set()
    tracepoints = {"sock:sock_send_length", "sock:sock_recv_length", "syscalls:sys_enter_getpgid"} <= events
    can = (os.geteuid() == 0 and shutil.which("bpftrace") is not None and tracefs is not None
           and Path("/sys/kernel/btf/vmlinux").is_file())
    capture = checks["ebpf_capture"]
    if can and tracepoints:
        assert capture.status == OK and capture.facts["program"] == "tracepoint"
    elif not can:
        assert capture.status == MISSING and capture.facts["program"] is None


def test_tritonserver_matches_the_wheel(checks):
    spec = importlib.util.find_spec("pytriton")
    check = checks["tritonserver"]
    if spec is None:
        assert check.status == MISSING and check.fix == "pip install --no-deps nvidia-pytriton"
        return
    root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    binary = root / "bin" / "tritonserver"
    stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    assert check.facts["binary"] == (str(binary) if binary.is_file() else None)
    assert check.facts["python_stub"] == any(stub.glob("triton_python_backend_stub"))
    assert check.facts["package_version"] == importlib.metadata.version("nvidia-pytriton")
    assert check.facts["libraries"] == (root.parents[1] / "nvidia_pytriton.libs").is_dir()
    ready = binary.is_file() and check.facts["libraries"] and check.facts["python_stub"]
    assert (check.status == OK) == ready
    plain = not os.environ.get("LD_PRELOAD") and os.environ.get("GPUPROF_TRITON_MALLOC") is None
    if ready and plain:  # gpuprof's servers preload the jemalloc Debian installs
        installed = bool(glob.glob("/usr/lib/*-linux-gnu/libjemalloc.so.2"))
        assert (check.facts["malloc"] is not None) == installed


def test_tritonclient_protocols_import_in_a_fresh_python(checks):
    facts = checks["tritonclient"].facts
    http, grpc = (_imports_in_fresh_python(f"tritonclient.{p}") for p in ("http", "grpc"))
    assert (facts["http"], facts["grpc"]) == (http, grpc)
    assert checks["tritonclient"].status == (OK if http and grpc else PARTIAL if http or grpc else MISSING)


def test_onnxruntime_providers(checks):
    import onnxruntime

    check = checks["onnxruntime"]
    assert check.facts == {"version": onnxruntime.__version__,
                           "providers": onnxruntime.get_available_providers()}
    for provider in onnxruntime.get_available_providers():
        assert provider in check.detail


def test_chromium_matches_path(checks):
    found = [p for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
             if (p := shutil.which(n))]
    assert checks["chromium"].facts["path"] == (found[0] if found else None)
    assert (checks["chromium"].status == OK) == bool(found)


def test_a_probe_that_breaks_is_reported_not_raised():
    def broken(part: Part):
        return {}["no such key"]

    [check] = doctor_checks.run_probes([(Part("thing", "Group", "Thing"), broken)])
    assert check.status == MISSING and "KeyError" in check.detail and check.fix
    with pytest.raises(KeyError):
        doctor_checks.run_probes([(Part("thing", "Group", "Thing"), broken)], reraise=True)


def test_a_tool_that_hangs_is_stopped():
    """A ``--version`` that never answers costs its timeout and reads as "cannot tell"."""
    assert doctor_checks.tool_output(["sleep", "30"], timeout_s=0.5) is None
    assert doctor_checks.tool_output(["/nonexistent/tool", "--version"]) is None
    assert doctor_checks.tool_output(["echo", "v1"]) == "v1\n"
