"""The command table: what each gpuprof command can do when a part is missing (pure logic).

Checks are built by hand here because the table decides from checks alone; the checks
themselves are compared with this machine in test_doctor_probes.py, and the table's verdict
on this machine in test_doctor_cli.py.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from gpuprof.capture import doctor, doctor_ebpf, doctor_gpu, doctor_tools, doctor_trt
from gpuprof.capture.doctor_checks import MISSING, OK, PARTIAL, Check
from gpuprof.capture.doctor_commands import COMMANDS, FULL, NO, PARTLY, readiness, registered
from tests.conftest import REPO

NAMES = [part.name for part, _ in doctor.PROBES]


def _all_ok() -> dict[str, Check]:
    return {name: Check(name, "g", name, OK, "here") for name in NAMES}


def _with(**statuses: str) -> list[Check]:
    checks = _all_ok()
    for name, status in statuses.items():
        checks[name] = replace(checks[name], status=status, fix=None if status == OK else f"fix {name}")
    return list(checks.values())


def _ready(checks: list[Check]) -> dict[str, str]:
    return {row.command.name: row.readiness for row in readiness(checks)}


def test_every_needed_check_is_probed():
    needed = {name for c in COMMANDS for need in c.needs for group in need.alternatives for name in group}
    assert needed <= set(NAMES)


def test_every_registered_command_has_a_row_and_every_row_a_command():
    """A new command needs a row here (what it needs); a row for a command this gpuprof lacks
    is left out of the answer."""
    from gpuprof.cli.main import COMMANDS as REGISTERED

    rows = {command.name.split()[0] for command in COMMANDS}
    assert set(REGISTERED) - {"doctor"} <= rows
    assert [c.name for c in registered(["perf", "net"])] == ["perf", "perf --net", "net"]


def test_everything_present_runs_everything_fully():
    assert set(_ready(_with()).values()) == {FULL}


@pytest.mark.parametrize("missing, expected", [
    # nsys absent: .sqlite still opens; the TensorRT run loses its kernels
    ({"nsys": MISSING}, {"nsys": PARTLY, "engine": PARTLY, "run": PARTLY}),
    # nsys here without a GPU still exports .nsys-rep reports
    ({"nsys": PARTIAL}, {"engine": PARTLY, "run": PARTLY}),
    ({"tensorrt": MISSING}, {"build": PARTLY}),
    ({"tensorrt": MISSING, "tensorrt_rtx": MISSING}, {"build": NO}),
    # TensorRT-RTX without a GPU still builds
    ({"tensorrt": MISSING, "tensorrt_rtx": PARTIAL}, {"build": PARTLY}),
    ({"tensorrt_usable": MISSING}, {"engine": PARTLY}),
    ({"onnxruntime": MISSING}, {"triton serve": NO}),
    ({"tensorrt_usable": MISSING, "onnxruntime": MISSING}, {"engine": NO, "triton serve": NO}),
    ({"tritonserver": MISSING}, {"triton serve": NO}),
    ({"tritonclient": PARTIAL}, {"perf": PARTLY}),
    ({"tritonclient": MISSING}, {"perf": NO, "perf --net": NO}),
    ({"ebpf_capture": MISSING}, {"net": PARTLY, "perf --net": NO}),
    # parts shown for explanation only: the capture verdict decides
    ({"kprobes": MISSING, "chromium": MISSING, "root": MISSING}, {}),
])
def test_a_missing_part_changes_only_the_commands_that_need_it(missing, expected):
    ready = _ready(_with(**missing))
    assert ready == {name: expected.get(name, FULL) for name in ready}


def test_unmet_needs_name_their_checks_and_fixes_once():
    rows = {row.command.name: row for row in readiness(_with(tensorrt_usable=MISSING, nsys=MISSING))}
    engine = rows["engine"]
    assert [lacking for _, lacking in engine.unmet] == [("tensorrt_usable",), ("tensorrt_usable", "nsys")]
    assert engine.fixes == ("fix tensorrt_usable", "fix nsys")


def test_a_check_that_is_absent_counts_as_missing():
    checks = [c for c in _with() if c.name != "tritonclient"]
    assert _ready(checks)["perf"] == NO


def test_every_pip_package_a_fix_names_is_one_gpuprof_declares():
    """The install commands name the packages of pyproject's extras and tools/setup.sh, not
    guesses; full TensorRT and onnxruntime-gpu are the two gpuprof cannot declare (NVIDIA's
    index; a CPU build is declared)."""
    declared = (REPO / "pyproject.toml").read_text() + (REPO / "tools" / "setup.sh").read_text()
    fixes = [value for module in (doctor_ebpf, doctor_gpu, doctor_tools, doctor_trt)
             for name, value in vars(module).items() if name.endswith("_FIX") and isinstance(value, str)]
    fixes += [fix for _, fix, _ in doctor_trt.FLAVOURS.values()]
    packages = {p for fix in fixes for p in re.findall(r"pip install (?:--\S+ )*\"?([A-Za-z0-9_.-]+)", fix)}
    assert packages >= {"nvidia-ml-py", "cuda-python", "tensorrt-rtx-cu13", "tritonclient", "nvidia-pytriton"}
    for package in packages - {"tensorrt-cu13", "onnxruntime-gpu"}:
        assert re.search(rf"\b{re.escape(package)}\b", declared), package
    # "(in gpuprof's trt extra)": that extra of pyproject.toml lists the package
    pyproject = (REPO / "pyproject.toml").read_text()
    named = [(fix, extras) for fix in fixes for extras in re.findall(r"in gpuprof's (\w+(?: and \w+)*) extras?", fix)]
    assert len(named) >= 4
    for fix, extras in named:
        package = re.search(r"pip install \"?([A-Za-z0-9_.-]+)", fix).group(1)
        for extra in extras.split(" and "):
            line = re.search(rf"^{extra} = \[(.*)\]", pyproject, re.M)
            assert line and package in line.group(1), (extra, package)
