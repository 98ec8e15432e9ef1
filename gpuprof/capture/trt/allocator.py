"""A TensorRT GPU allocator that records every allocation and free: memory over time.

TensorRT's performance guide recommends exactly this for tracing device memory: a custom
allocator that calls cudaMalloc/cudaFree and timestamps each event. Three layers, so each can be
tested where it can run:

- ``AllocationLog``: pure bookkeeping (thread-safe; TensorRT may call from its own threads).
- ``CudaMemory``: the real ``cudaMallocAsync``/``cudaFreeAsync`` from cuda-python.
- ``recording_allocator(trt, log, memory)``: a subclass of the flavour's real
  ``IGpuAsyncAllocator`` (which extends ``IGpuAllocator`` in full TensorRT) that TensorRT calls.

Memory handed over through ``context.device_memory`` and CUDA/cuBLAS internals bypass any
allocator; cross-check with the nsys ``--cuda-memory-usage`` events.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple, Protocol

from .interfaces import interface_subclass

SOURCE = "trt_allocator"
# Phases of a run, in order; the runner switches the log between them.
PHASES = ("deserialize", "context_creation", "shape_change", "inference", "teardown")


class MemoryEvent(NamedTuple):
    """One allocator call. ``bytes`` is positive for an allocation, negative for a free.

    A NamedTuple, not a frozen dataclass: one is built inside every TensorRT allocator callback,
    and a frozen dataclass costs several times more to build (tools/bench/bench_allocator.py).
    """

    time_ns: int
    kind: str          # "alloc", "free", "alloc_failed", "free_failed", "realloc_refused"
    bytes: int
    address: int
    alignment: int
    flags: int
    stream: int
    phase: str
    api: str           # the TensorRT callback that produced it: allocate_async, deallocate, ...
    requested_bytes: int = 0  # what a failed or refused request asked for


class AllocationLog:
    """Timestamped allocation events plus the live set, so a free knows its size."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns, phase: str = PHASES[0]):
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[int, int] = {}
        self._live_total = 0
        self.events: list[MemoryEvent] = []
        self.phase = phase
        self.peak_bytes = 0

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    @property
    def live_bytes(self) -> int:
        return self._live_total

    def record_alloc(self, address: int, size: int, alignment: int, flags: int, stream: int,
                     api: str) -> None:
        with self._lock:
            self._live_total += size - self._live.get(address, 0)
            self._live[address] = size
            self.peak_bytes = max(self.peak_bytes, self._live_total)
            self._append("alloc", size, address, alignment, flags, stream, api)

    def record_free(self, address: int, stream: int, api: str) -> int:
        """Record a free and return the size it gave back (0 for an address we never saw)."""
        with self._lock:
            size = self._live.pop(address, 0)
            self._live_total -= size
            self._append("free", -size, address, 0, 0, stream, api)
            return size

    def record_event(self, kind: str, size: int, alignment: int, flags: int, stream: int,
                     api: str, address: int = 0) -> None:
        """An event that changes no usage (a failed or refused request)."""
        with self._lock:
            self._append(kind, 0, address, alignment, flags, stream, api, requested=size)

    def _append(self, kind: str, size: int, address: int, alignment: int, flags: int,
                stream: int, api: str, requested: int = 0) -> None:
        self.events.append(MemoryEvent(self._clock(), kind, size, address, alignment, flags,
                                       stream, self.phase, api, requested))

    def rows(self, device_id: int = 0, pid: int = -1) -> list[dict[str, Any]]:
        """Rows for the ``memory_events`` table (plus alignment/flags/stream for the CSV)."""
        with self._lock:
            events = list(self.events)
        return [{**e._asdict(), "device_id": device_id, "pid": pid, "source": SOURCE,
                 "detail": _detail(e)} for e in events]


def _detail(event: MemoryEvent) -> str:
    text = f"{event.api} align={event.alignment} flags={event.flags} stream={event.stream}"
    return f"{text} requested={event.requested_bytes}" if event.requested_bytes else text


class DeviceMemory(Protocol):
    """What the allocator needs from CUDA: stream-ordered malloc and free."""

    def malloc_async(self, size: int, stream: int) -> int: ...

    def free_async(self, address: int, stream: int) -> None: ...


class CudaMemory:
    """The real ``cudaMallocAsync``/``cudaFreeAsync`` through cuda-python."""

    def __init__(self) -> None:
        self._rt = cuda_runtime()

    def malloc_async(self, size: int, stream: int) -> int:
        err, ptr = self._rt.cudaMallocAsync(size, stream)
        _check(self._rt, err, "cudaMallocAsync")
        return int(ptr)

    def free_async(self, address: int, stream: int) -> None:
        (err,) = self._rt.cudaFreeAsync(address, stream)
        _check(self._rt, err, "cudaFreeAsync")


def cuda_runtime() -> Any:
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+) or ``cuda.cudart``."""
    from ...errors import require_module

    try:
        return require_module("cuda.bindings.runtime", "pip install cuda-python")
    except Exception:
        return require_module("cuda.cudart", "pip install cuda-python")


def _check(rt: Any, err: Any, call: str) -> None:
    if err != rt.cudaError_t.cudaSuccess:
        raise MemoryError(f"{call} failed: {err!r}")


# PyCapsule_GetPointer with its own prototype (not the shared ctypes.pythonapi entry, whose
# restype/argtypes any other code may change); PYFUNCTYPE turns a failure into ValueError.
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def pointer_value(memory: Any) -> int:
    """The address TensorRT hands back: an int (what we returned) or a PyCapsule holding it.

    TensorRT passes a capsule on every free, so that case is checked before trying ``int()``
    (a raised and caught TypeError costs more than the whole lookup).
    """
    if memory is None:
        return 0
    if isinstance(memory, int):
        return int(memory)
    if type(memory).__name__ == "PyCapsule":
        try:
            return int(_capsule_pointer(memory, None) or 0)
        except ValueError:  # a capsule with a name: record it as unknown rather than crash
            return 0
    try:
        return int(memory)
    except (TypeError, ValueError):  # neither an int nor a capsule: unknown
        return 0


def allocator_class(trt: ModuleType) -> type:
    """A subclass of ``trt.IGpuAsyncAllocator`` for this TensorRT flavour (cached)."""
    return interface_subclass(trt, "IGpuAsyncAllocator", _make_allocator_class)


def recording_allocator(trt: ModuleType, log: AllocationLog, memory: DeviceMemory) -> Any:
    """An allocator TensorRT can use (``runtime.gpu_allocator = ...``) that fills ``log``."""
    return allocator_class(trt)(log, memory)


def _make_allocator_class(base: Any) -> type:
    class RecordingAllocator(base):
        """Calls are made by TensorRT; a Python exception must never cross back into C++,
        so failures return None (TensorRT's 'out of memory') and are recorded."""

        def __init__(self, log: AllocationLog, memory: DeviceMemory):
            base.__init__(self)
            self.log = log
            self.memory = memory

        def allocate_async(self, size: int, alignment: int, flags: int, stream: int) -> int | None:
            return self._allocate(size, alignment, flags, int(stream or 0), "allocate_async")

        def deallocate_async(self, memory: Any, stream: int) -> bool:
            return self._free(memory, int(stream or 0), "deallocate_async")

        # The synchronous (deprecated) entry points exist in IGpuAllocator; route them through
        # the default stream so every call is recorded the same way.
        def allocate(self, size: int, alignment: int, flags: int) -> int | None:
            return self._allocate(size, alignment, flags, 0, "allocate")

        def deallocate(self, memory: Any) -> bool:
            return self._free(memory, 0, "deallocate")

        def reallocate(self, address: Any, alignment: int, new_size: int) -> None:
            # Stream-ordered memory cannot grow in place; returning None is TensorRT's documented
            # "not fulfilled" answer and leaves the old allocation valid.
            self.log.record_event("realloc_refused", new_size, alignment, 0, 0, "reallocate",
                                  pointer_value(address))
            return None

        def _allocate(self, size: int, alignment: int, flags: int, stream: int, api: str) -> int | None:
            try:
                address = self.memory.malloc_async(size, stream)
            except Exception:
                self.log.record_event("alloc_failed", size, alignment, int(flags), stream, api)
                return None
            self.log.record_alloc(address, size, alignment, int(flags), stream, api)
            return address

        def _free(self, memory: Any, stream: int, api: str) -> bool:
            address = pointer_value(memory)
            try:
                self.memory.free_async(address, stream)
            except Exception:
                self.log.record_event("free_failed", 0, 0, 0, stream, api, address)
                return False
            self.log.record_free(address, stream, api)
            return True

    return RecordingAllocator
