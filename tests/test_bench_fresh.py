"""tools/bench/fresh.py, the benchmarks' one way to time a command in a fresh process: its
peak memory against the child's own /proc VmHWM, its CPU time against the child's own clock,
its floor, exit handling and the sampling callback."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO

MiB = 2**20
# allocates and touches N bytes, burns CPU until its own clock passes S seconds, then reports
# its peak (VmHWM, which restarts at exec) and its CPU time as it sees them
CHILD = """
import json, sys, time
block = bytearray(int(sys.argv[1])); block[::4096] = b"x" * len(block[::4096])
while time.process_time() < float(sys.argv[2]):
    pass
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
print(json.dumps({"hwm": hwm, "cpu": time.process_time()}))
sys.exit(int(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def fresh():
    spec = importlib.util.spec_from_file_location("bench_fresh", REPO / "tools" / "bench" / "fresh.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _child(size: int, cpu_s: float = 0.0, code: int = 0) -> list[str]:
    return [sys.executable, "-c", CHILD, str(size), str(cpu_s), str(code)]


def test_peak_is_the_childs_own_above_the_floor(fresh):
    floor = fresh.run_fresh(_child(0)).floor_bytes
    run = fresh.run_fresh(_child(floor + 100 * MiB, cpu_s=0.2))
    own = json.loads(run.stdout)
    assert run.peak_bytes >= floor + 100 * MiB
    assert abs(run.peak_bytes - own["hwm"]) < 8 * MiB
    assert run.cpu_seconds >= own["cpu"] - 0.01    # its clock counts less (no start-up)
    assert run.seconds >= own["cpu"]                # one thread: its CPU time fits in the wall time


def test_small_child_reports_the_parents_peak_as_its_floor(fresh):
    run = fresh.run_fresh(_child(0))
    assert run.peak_bytes >= run.floor_bytes
    assert json.loads(run.stdout)["hwm"] < run.floor_bytes


def test_exit_status_checked_or_returned(fresh):
    assert fresh.run_fresh(_child(0, code=3), check=False).returncode == 3
    with pytest.raises(SystemExit, match="exit 3"):
        fresh.run_fresh(_child(0, code=3))


def test_while_running_sees_the_live_child(fresh):
    seen = []
    run = fresh.run_fresh(_child(0, cpu_s=0.3), while_running=seen.append, poll_s=0.01)
    assert run.returncode == 0 and seen and all(isinstance(pid, int) for pid in seen)
