"""The recording allocator, profiler, progress monitor and logger against the real TensorRT
interfaces (tensorrt_lean / tensorrt_rtx / tensorrt, whichever are installed).

No Runtime is ever created here: without a GPU a TensorRT Runtime crashes the process. The
allocator's CUDA side is the real cuda-python: on a machine without a driver its calls fail and
the allocator must record that and answer TensorRT with None/False instead of raising.
"""

from __future__ import annotations

import importlib
import itertools
import threading

import pandas as pd
import pytest

from gpuprof.capture.trt import api
from gpuprof.capture.trt.allocator import AllocationLog, allocator_class, recording_allocator
from gpuprof.capture.trt.device import gpu_present
from gpuprof.capture.trt.logger import LogRecords, collecting_logger
from gpuprof.capture.trt.profiler import LayerTimeLog, profiler_class, recording_profiler
from gpuprof.capture.trt.progress import ProgressState, monitor_class, progress_monitor
from gpuprof.model import Profile

FLAVOURS = [name for name in api.INTERFACE_MODULES if api.installed(name)]


@pytest.fixture(params=FLAVOURS or [None], ids=FLAVOURS or ["none"])
def trt(request):
    if request.param is None:
        pytest.skip("no TensorRT runtime interfaces installed (pip install tensorrt-lean-cu13)")
    return importlib.import_module(request.param)


def counter_clock():
    """A fake clock: exact, increasing timestamps for the bookkeeping tests."""
    ticks = itertools.count(1000, 10)
    return lambda: next(ticks)


# --- allocator --------------------------------------------------------------------------------

def test_allocator_subclasses_real_interfaces(trt):
    cls = allocator_class(trt)
    assert issubclass(cls, trt.IGpuAsyncAllocator)
    assert issubclass(cls, trt.IGpuAllocator)
    # TensorRT-RTX's interface is async-only; override whatever the flavour declares.
    declared = [m for m in ("allocate", "deallocate", "reallocate", "allocate_async",
                            "deallocate_async") if hasattr(trt.IGpuAsyncAllocator, m)]
    assert {"allocate_async", "deallocate_async", "reallocate"} <= set(declared)
    for method in declared:
        assert getattr(cls, method) is not getattr(trt.IGpuAsyncAllocator, method), method
    instance = cls(AllocationLog(), memory=None)
    assert isinstance(instance, trt.IGpuAsyncAllocator)


def test_allocation_log_follows_a_tensorrt_sequence():
    log = AllocationLog(clock=counter_clock())
    with log.in_phase("deserialize"):
        log.record_alloc(0x1000, 4096, 256, 0, 7, "allocate_async")       # weights
    with log.in_phase("context_creation"):
        log.record_alloc(0x2000, 1 << 20, 256, 0, 7, "allocate_async")    # activations
    with log.in_phase("shape_change"):
        log.record_event("realloc_refused", 2 << 20, 256, 0, 0, "reallocate", 0x2000)
    with log.in_phase("inference"):
        log.record_alloc(0x3000, 512, 256, 1, 7, "allocate")              # scratch, RESIZABLE flag
        assert log.record_free(0x3000, 7, "deallocate") == 512
    with log.in_phase("teardown"):
        assert log.record_free(0x2000, 7, "deallocate_async") == 1 << 20
        assert log.record_free(0x9999, 7, "deallocate_async") == 0         # never seen: size 0
        log.record_free(0x1000, 7, "deallocate_async")
    assert log.phase == "deserialize"  # in_phase restores the previous phase
    assert log.live_bytes == 0
    assert log.peak_bytes == 4096 + (1 << 20) + 512
    rows = log.rows(device_id=0, pid=42)
    assert [r["time_ns"] for r in rows] == list(range(1000, 1000 + 10 * len(rows), 10))
    assert [(r["kind"], r["bytes"], r["phase"]) for r in rows] == [
        ("alloc", 4096, "deserialize"), ("alloc", 1 << 20, "context_creation"),
        ("realloc_refused", 0, "shape_change"), ("alloc", 512, "inference"),
        ("free", -512, "inference"), ("free", -(1 << 20), "teardown"), ("free", 0, "teardown"),
        ("free", -4096, "teardown")]
    assert rows[2]["detail"] == "reallocate align=256 flags=0 stream=0 requested=2097152"
    assert {r["source"] for r in rows} == {"trt_allocator"}


def test_pointer_value_accepts_ints_and_capsules():
    import ctypes

    from gpuprof.capture.trt.allocator import pointer_value

    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    assert pointer_value(new_capsule(0x7F00_0000_1000, None, None)) == 0x7F00_0000_1000
    assert pointer_value(4096) == 4096
    assert pointer_value(None) == 0
    assert pointer_value("not a pointer") == 0


def test_allocation_rows_fit_the_memory_events_table():
    log = AllocationLog(clock=counter_clock())
    log.record_alloc(1, 100, 256, 0, 0, "allocate_async")
    log.record_alloc(2, 50, 256, 0, 0, "allocate_async")
    log.record_free(1, 0, "deallocate_async")
    table = Profile(tables={"memory_events": pd.DataFrame(log.rows())}).memory_events
    assert list(table["bytes"].cumsum()) == [100, 150, 50]
    assert str(table["phase"].dtype) == "category" and table["source"].iloc[0] == "trt_allocator"


def test_allocation_log_is_thread_safe():
    log = AllocationLog()

    def work(base: int) -> None:
        for i in range(500):
            log.record_alloc(base + i, 8, 256, 0, 0, "allocate_async")
            log.record_free(base + i, 0, "deallocate_async")

    threads = [threading.Thread(target=work, args=(n * 10_000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.events) == 4000 and log.live_bytes == 0


def test_allocator_with_real_cuda_but_no_driver_fails_softly(trt):
    pytest.importorskip("cuda.bindings.runtime", reason="needs cuda-python (pip install cuda-python)")
    if gpu_present():
        pytest.skip("a GPU is present: test_allocator_on_gpu covers the real path")
    from gpuprof.capture.trt.allocator import CudaMemory

    log = AllocationLog(clock=counter_clock())
    allocator = recording_allocator(trt, log, CudaMemory())
    # The calls TensorRT makes, with TensorRT's argument order; no exception may escape.
    assert allocator.allocate_async(1 << 20, 256, 0, 0) is None
    assert allocator.allocate(4096, 256, 0) is None
    assert allocator.deallocate_async(0x1234, 0) is False
    assert allocator.reallocate(0x1234, 256, 1 << 21) is None
    kinds = [(e.kind, e.api, e.requested_bytes) for e in log.events]
    assert kinds == [("alloc_failed", "allocate_async", 1 << 20), ("alloc_failed", "allocate", 4096),
                     ("free_failed", "deallocate_async", 0), ("realloc_refused", "reallocate", 1 << 21)]
    assert log.live_bytes == 0


@pytest.mark.gpu
def test_allocator_on_gpu(trt):
    pytest.importorskip("cuda.bindings.runtime", reason="needs cuda-python (pip install cuda-python)")
    from gpuprof.capture.trt.allocator import CudaMemory

    log = AllocationLog()
    allocator = recording_allocator(trt, log, CudaMemory())
    a = allocator.allocate_async(1 << 20, 256, 0, 0)
    b = allocator.allocate(4096, 256, 0)
    assert a and b and a != b
    assert log.live_bytes == (1 << 20) + 4096
    assert allocator.reallocate(b, 256, 8192) is None
    assert allocator.deallocate_async(a, 0) is True
    assert allocator.deallocate(b) is True
    assert log.live_bytes == 0
    assert [e.kind for e in log.events] == ["alloc", "alloc", "realloc_refused", "free", "free"]


# --- profiler ---------------------------------------------------------------------------------

def test_profiler_subclasses_real_iprofiler_and_records(trt):
    assert issubclass(profiler_class(trt), trt.IProfiler)
    log = LayerTimeLog()
    profiler = recording_profiler(trt, log)
    assert isinstance(profiler, trt.IProfiler)
    for iteration in range(2):
        log.next_iteration(iteration)
        profiler.report_layer_time("/conv1/Conv + /relu/Relu", 0.125)
        profiler.report_layer_time("Reformatting CopyNode for Input Tensor 0", 0.0005)
    rows = log.rows()
    assert [(r["iteration"], r["order"], r["duration_ns"]) for r in rows] == [
        (0, 0, 125_000), (0, 1, 500), (1, 0, 125_000), (1, 1, 500)]
    table = Profile(tables={"layer_timings": pd.DataFrame(rows)}).layer_timings
    assert set(table["source"]) == {"iprofiler"} and table["duration_ns"].sum() == 251_000


# --- progress monitor and logger --------------------------------------------------------------

def test_progress_monitor_subclass_records_and_cancels(trt):
    assert issubclass(monitor_class(trt), trt.IProgressMonitor)
    seen = []
    state = ProgressState(lambda *e: seen.append(e))
    monitor = progress_monitor(trt, state)
    monitor.phase_start("Building engine", None, 3)
    monitor.phase_start("Timing tactics", "Building engine", 2)
    assert monitor.step_complete("Timing tactics", 0) is True
    state.cancel()
    assert monitor.step_complete("Timing tactics", 1) is False
    monitor.phase_finish("Timing tactics")
    monitor.phase_finish("Building engine")
    assert state.phase_names() == ["Building engine", "Timing tactics"]
    assert state.phases[1].parent == "Building engine" and state.phases[1].steps_done == 2
    assert all(p.end_ns is not None for p in state.phases)
    assert [e[0] for e in seen] == ["start", "start", "step", "step", "finish", "finish"]


def test_broken_listener_does_not_break_the_monitor(trt):
    def broken(*event):
        raise RuntimeError("renderer bug")

    monitor = progress_monitor(trt, ProgressState(broken))
    monitor.phase_start("Building engine", None, 1)
    assert monitor.step_complete("Building engine", 0) is True


def test_logger_keeps_warnings_and_errors_only(trt):
    records = LogRecords()
    logger = collecting_logger(trt, records)
    assert isinstance(logger, trt.ILogger)
    severity = trt.ILogger.Severity
    logger.log(severity.INFO, "Input filename: /home/someone/model.onnx")
    logger.log(severity.WARNING, "careful")
    logger.log(severity.ERROR, "broken")
    assert records.messages == [("WARNING", "careful"), ("ERROR", "broken")]
    assert records.errors() == ["broken"]
