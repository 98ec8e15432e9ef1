"""Benchmark (not a test): what the TensorRT allocator trace costs per allocate/free call.

gpuprof's ``RecordingAllocator`` (``capture/trt/allocator.py``) timestamps every allocation and
free TensorRT makes. This measures the host-side cost of that recording per call, against
baselines in the same run, interleaved in rounds so machine noise hits every subject alike:

- ``recording``: gpuprof's allocator, as the runner uses it;
- ``no-op log``: the same class with a log whose record methods do nothing, so the difference
  is exactly ``AllocationLog``'s bookkeeping (lock, live set, peak, one event object);
- ``bare``: a minimal ``IGpuAsyncAllocator`` subclass that only forwards to the memory, the
  least any Python allocator does; the difference is everything gpuprof adds.

Calls go the way TensorRT makes them: through the pybind11 binding of the C++ virtual
(``trt.IGpuAsyncAllocator.allocate_async(allocator, ...)``), which dispatches through the
trampoline to the Python override and converts the returned address to the ``void*`` capsule
that ``deallocate_async`` then receives. (Calling the binding from Python adds one Python->C++
entry per call, the same for every subject; the differences are unaffected.) Direct Python
calls, as the tests make them, are measured too.

Times are CPU time of the calling thread (``time.thread_time_ns``), so other processes on a
shared machine do not inflate them. Without a GPU, the memory behind every subject is a host-side stand-in that hands out addresses
(no cudaMallocAsync can run): the numbers are the bookkeeping cost only, not the cost of a real
allocation. Where cuda-python is installed, one cuda-python ``cudaMallocAsync`` call is timed
as well; without a driver it returns an error at once, so it is only the floor of the Python
binding call, not an allocation.

``--count-run PLAN`` (GPU only) runs gpuprof's TensorRT runner on PLAN and counts the allocator
events per phase, to turn the per-call cost into a per-run cost.

    .venv/bin/python tools/bench/bench_allocator.py [--rounds 15] [--pairs 20000] [--count-run X.plan]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gpuprof.capture.trt import api  # noqa: E402
from gpuprof.capture.trt.allocator import (  # noqa: E402
    SOURCE,
    AllocationLog,
    pointer_value,
    recording_allocator,
)
from gpuprof.capture.trt.device import gpu_present  # noqa: E402
from gpuprof.capture.trt.nsys_cmd import runner_argv  # noqa: E402

SIZE, ALIGNMENT, FLAGS, STREAM = 1 << 20, 256, 0, 7  # a typical activation-sized request
# CPU time of this thread, not wall time: on a shared machine, time spent preempted by other
# processes would otherwise be counted as allocator cost.
cpu_ns = time.thread_time_ns


class HostAddresses:
    """The memory behind every subject without a GPU: distinct addresses, no allocation."""

    def __init__(self) -> None:
        self._next = itertools.count(1 << 40, 1 << 20)

    def malloc_async(self, size: int, stream: int) -> int:
        return next(self._next)

    def free_async(self, address: int, stream: int) -> None:
        return None


class NoOpLog:
    """An AllocationLog that records nothing: the recording class with recording disabled."""

    phase = "inference"

    def record_alloc(self, *args: Any) -> None:
        pass

    def record_free(self, *args: Any) -> int:
        return 0

    def record_event(self, *args: Any, **kwargs: Any) -> None:
        pass


def bare_allocator(trt: Any, memory: HostAddresses) -> Any:
    """The least a Python allocator does: forward to the memory, nothing recorded."""

    class BareAllocator(trt.IGpuAsyncAllocator):
        def __init__(self) -> None:
            trt.IGpuAsyncAllocator.__init__(self)

        def allocate_async(self, size: int, alignment: int, flags: int, stream: int) -> int:
            return memory.malloc_async(size, int(stream or 0))

        def deallocate_async(self, pointer: Any, stream: int) -> bool:
            memory.free_async(pointer_value(pointer), int(stream or 0))
            return True

        def reallocate(self, address: Any, alignment: int, new_size: int) -> None:
            return None

    return BareAllocator()


SUBJECTS: dict[str, Callable[[Any], Any]] = {
    "recording (gpuprof)": lambda trt: recording_allocator(trt, AllocationLog(), HostAddresses()),
    "same class, no-op log": lambda trt: recording_allocator(trt, NoOpLog(), HostAddresses()),
    "bare forwarding allocator": lambda trt: bare_allocator(trt, HostAddresses()),
}


def via_tensorrt(trt: Any, allocator: Any, pairs: int) -> int:
    """ns for ``pairs`` allocate+free through the C++ virtual, as TensorRT calls them."""
    allocate, free = trt.IGpuAsyncAllocator.allocate_async, trt.IGpuAsyncAllocator.deallocate_async
    t0 = cpu_ns()
    for _ in range(pairs):
        free(allocator, allocate(allocator, SIZE, ALIGNMENT, FLAGS, STREAM), STREAM)
    return cpu_ns() - t0


def direct(trt: Any, allocator: Any, pairs: int) -> int:
    """ns for ``pairs`` allocate+free as plain Python calls (how the tests call them)."""
    allocate, free = allocator.allocate_async, allocator.deallocate_async
    t0 = cpu_ns()
    for _ in range(pairs):
        free(allocate(SIZE, ALIGNMENT, FLAGS, STREAM), STREAM)
    return cpu_ns() - t0


def measure(trt: Any, rounds: int, pairs: int) -> dict[tuple[str, str], list[float]]:
    """ns per call (half a pair) for each (path, subject), one sample per round, interleaved."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for path, run in (("via TensorRT's virtual", via_tensorrt), ("direct Python call", direct)):
            for name, make in SUBJECTS.items():
                allocator = make(trt)  # a fresh log each round: memory stays flat
                run(trt, allocator, 200)  # warm-up
                samples.setdefault((path, name), []).append(run(trt, allocator, pairs) / (2 * pairs))
                del allocator
                gc.collect()
    return samples


def correctness_check(trt: Any) -> None:
    """The trampoline path really reaches the override and is recorded like TensorRT's calls."""
    log = AllocationLog()
    allocator = recording_allocator(trt, log, HostAddresses())
    capsule = trt.IGpuAsyncAllocator.allocate_async(allocator, SIZE, ALIGNMENT, FLAGS, STREAM)
    assert type(capsule).__name__ == "PyCapsule", type(capsule)
    assert trt.IGpuAsyncAllocator.deallocate_async(allocator, capsule, STREAM) is True
    kinds = [(e.kind, e.bytes, e.stream) for e in log.events]
    assert kinds == [("alloc", SIZE, STREAM), ("free", -SIZE, STREAM)], kinds
    assert log.events[0].address == log.events[1].address == pointer_value(capsule)


def memory_per_event(events: int = 100_000) -> float:
    """Bytes of Python heap one recorded event keeps until the run writes its results."""
    log = AllocationLog()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(events):
        log.record_alloc(i, SIZE, ALIGNMENT, FLAGS, STREAM, "allocate_async")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / events


def rows_cost(events: int = 50_000) -> float:
    """ns per event of ``AllocationLog.rows()``, run once after the run (not during it)."""
    log = AllocationLog()
    for i in range(events // 2):
        log.record_alloc(i, SIZE, ALIGNMENT, FLAGS, STREAM, "allocate_async")
        log.record_free(i, STREAM, "deallocate_async")
    best = min(_timed(log.rows) for _ in range(3))
    return best / events


def _timed(fn: Callable[[], Any]) -> int:
    t0 = cpu_ns()
    fn()
    return cpu_ns() - t0


def cuda_python_floor(calls: int = 20_000) -> float | None:
    """ns of one cuda-python cudaMallocAsync call; without a driver it fails at once."""
    try:
        rt = importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return None
    malloc = rt.cudaMallocAsync
    t0 = cpu_ns()
    for _ in range(calls):
        malloc(SIZE, 0)
    return (cpu_ns() - t0) / calls


def count_run(plan: Path) -> Counter | None:
    """Allocator events per phase of one real runner run of ``plan`` (GPU only)."""
    if not gpu_present():
        return None
    import pandas as pd

    with tempfile.TemporaryDirectory() as out:
        cmd = runner_argv(plan, out, ["-n", "20", "--warmup", "5", "--profile-iterations", "5"])
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
        events = pd.read_csv(Path(out) / "memory_events.csv")
    events = events[(events["source"] == SOURCE) & (events["api"] != "runner_io_buffer")]
    return Counter(events["phase"].astype(str))


def report(samples: dict[tuple[str, str], list[float]], rounds: int, pairs: int) -> float:
    print(f"CPU ns per allocator call (allocate or free), {rounds} interleaved rounds x "
          f"{pairs:,} allocate+free pairs; host-side stand-in memory (no GPU): bookkeeping only")
    print(f"  {'path':<24} {'subject':<27} {'median':>8} {'min':>8}")
    for (path, name), values in samples.items():
        print(f"  {path:<24} {name:<27} {statistics.median(values):8.0f} {min(values):8.0f}")
    added = {}
    for path in dict.fromkeys(p for p, _ in samples):
        rec = samples[(path, "recording (gpuprof)")]
        noop = samples[(path, "same class, no-op log")]
        bare = samples[(path, "bare forwarding allocator")]
        log_cost = statistics.median(r - n for r, n in zip(rec, noop, strict=True))
        all_cost = statistics.median(r - b for r, b in zip(rec, bare, strict=True))
        added[path] = all_cost
        print(f"  {path}: AllocationLog adds {log_cost:.0f} ns per call (median of per-round "
              f"differences); all of gpuprof's wrapper vs bare: {all_cost:.0f} ns")
    return added["via TensorRT's virtual"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--count-run", type=Path, default=None, metavar="PLAN",
                        help="count a real run's allocator events (needs a GPU)")
    args = parser.parse_args()
    trt = api.interface_module()
    print(f"TensorRT interfaces: {trt.__name__} {getattr(trt, '__version__', '?')}; "
          f"Python {sys.version.split()[0]}; GPU present: {gpu_present()}")
    correctness_check(trt)
    added = report(measure(trt, args.rounds, args.pairs), args.rounds, args.pairs)
    print(f"memory kept per recorded event: {memory_per_event():.0f} bytes")
    print(f"AllocationLog.rows() after the run: {rows_cost():.0f} ns per event")
    floor = cuda_python_floor()
    if floor is not None:
        print(f"cuda-python cudaMallocAsync call without a driver (returns an error at once; "
              f"floor of the binding call, not an allocation): {floor:.0f} ns")
    for events in (10, 100, 1_000, 10_000):
        print(f"  {events:>6,} allocator calls per run -> {events * added / 1e3:,.1f} µs of recording")
    if args.count_run:
        counts = count_run(args.count_run)
        print(f"allocator events per phase of one run of {args.count_run.name}: "
              f"{dict(counts) if counts is not None else 'skipped (no GPU)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
