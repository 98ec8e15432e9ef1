"""The CUDA side of ``gpuprof.profile()``: cudaProfilerStart/Stop (so ``nsys
--capture-range=cudaProfilerApi`` follows pause/resume), CUDA events around TensorRT calls,
and device memory through NVML. Each is unavailable -- never an error -- where cuda-python,
a driver or a GPU is missing; ``available()`` says which.
"""

from __future__ import annotations

import threading
import time
from typing import Any


def cudart() -> Any | None:
    """cuda-python's runtime module (new and old layouts), or None."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart as runtime  # type: ignore[no-redef]
        return runtime
    except ImportError:
        return None


def _ok(result) -> bool:
    err = result[0] if isinstance(result, tuple) else result
    return int(err) == 0


def gpu_runtime() -> Any | None:
    """The CUDA runtime where a device is usable, else None."""
    runtime = cudart()
    if runtime is None:
        return None
    try:
        found = runtime.cudaGetDeviceCount()
    except Exception:  # a driver library that cannot load
        return None
    return runtime if _ok(found) and found[1] > 0 else None


def profiler_start(runtime) -> None:
    if runtime is not None:
        runtime.cudaProfilerStart()


def profiler_stop(runtime) -> None:
    if runtime is not None:
        runtime.cudaProfilerStop()


class EventTimer:
    """GPU time of enqueued work from a pair of CUDA events on its stream; read at the end,
    so timing never synchronises the program's stream."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.pending: list[tuple[int, Any, Any]] = []  # call index, start event, end event

    def begin(self, stream: int):
        _, start = self.runtime.cudaEventCreate()
        _, end = self.runtime.cudaEventCreate()
        self.runtime.cudaEventRecord(start, stream)
        return start, end

    def end(self, index: int, events, stream: int) -> None:
        start, end = events
        self.runtime.cudaEventRecord(end, stream)
        self.pending.append((index, start, end))

    def resolve(self) -> dict[int, int]:
        """call index -> GPU ns; events are destroyed."""
        out: dict[int, int] = {}
        for index, start, end in self.pending:
            self.runtime.cudaEventSynchronize(end)
            result = self.runtime.cudaEventElapsedTime(start, end)
            if _ok(result):
                out[index] = int(round(result[1] * 1e6))  # ms -> ns
            self.runtime.cudaEventDestroy(start)
            self.runtime.cudaEventDestroy(end)
        self.pending.clear()
        return out


class NvmlSampler:
    """Device memory in use per GPU (NVML: all processes on the device, not just this one),
    sampled on a thread; rows are (time_ns, device, used_bytes)."""

    def __init__(self, interval_s: float):
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        count = pynvml.nvmlDeviceGetCount()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.rows: list[tuple[int, int, int]] = []
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpuprof-nvml", daemon=True)

    @classmethod
    def open(cls, interval_s: float) -> tuple[NvmlSampler | None, str]:
        """A sampler, or None and why there is none."""
        try:
            return cls(interval_s), ""
        except ImportError:
            return None, "nvidia-ml-py (pynvml) is not installed"
        except Exception as exc:  # NVMLError: no driver, no device
            return None, f"NVML is unavailable here ({exc})"

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()
        self._nvml.nvmlShutdown()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        now = time.monotonic_ns()
        for device, handle in enumerate(self._handles):
            used = self._nvml.nvmlDeviceGetMemoryInfo(handle).used
            self.rows.append((now, device, int(used)))
