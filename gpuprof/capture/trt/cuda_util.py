"""Thin helpers over cuda-python's runtime API for the runner (GPU only).

cuda-python returns ``(error, *values)`` tuples; ``call`` turns a failure into ``CaptureError``
naming the call, so a run on a machine without a usable GPU stops with one clear line.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import CaptureError
from ..onnx_inputs import random_input
from .allocator import cuda_runtime


class Cuda:
    """The runtime module plus checked calls."""

    def __init__(self) -> None:
        self.rt = cuda_runtime()

    def call(self, name: str, *args: Any) -> Any:
        result = getattr(self.rt, name)(*args)
        err, values = result[0], result[1:]
        if err != self.rt.cudaError_t.cudaSuccess:
            raise CaptureError(f"{name} failed: {getattr(err, 'name', err)}",
                               "Check that a CUDA GPU and driver are visible (nvidia-smi)")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def require_gpu(self) -> int:
        count = self.call("cudaGetDeviceCount")
        if not count:
            raise CaptureError("no CUDA GPU is visible", "Run on a machine with a GPU and driver")
        return int(count)

    def versions(self) -> dict[str, int]:
        return {"cuda_runtime": int(self.call("cudaRuntimeGetVersion")),
                "cuda_driver": int(self.call("cudaDriverGetVersion"))}

    def elapsed_ns(self, start: Any, end: Any) -> int:
        return round(float(self.call("cudaEventElapsedTime", start, end)) * 1e6)


@dataclass
class TensorBuffer:
    """One I/O tensor: pinned host memory (so copies are truly async) and device memory."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    host_ptr: int
    device_ptr: int
    host: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.host.nbytes)


def alloc_buffer(cuda: Cuda, name: str, is_input: bool, shape: tuple[int, ...],
                 dtype: np.dtype, rng: np.random.Generator) -> TensorBuffer:
    # drawn before any allocation: an input gpuprof cannot generate must not leak pinned memory
    data = random_input(rng, name, dtype, shape) if is_input else None
    nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
    host_ptr = int(cuda.call("cudaMallocHost", nbytes))
    raw = (ctypes.c_byte * nbytes).from_address(host_ptr)
    used = int(np.prod(shape)) * dtype.itemsize
    host = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)[:used].view(dtype).reshape(shape)
    if data is not None:
        host[...] = data
    device_ptr = int(cuda.call("cudaMalloc", nbytes))
    return TensorBuffer(name, is_input, shape, dtype, host_ptr, device_ptr, host)


def free_buffer(cuda: Cuda, buf: TensorBuffer) -> None:
    cuda.call("cudaFree", buf.device_ptr)
    cuda.call("cudaFreeHost", buf.host_ptr)


def copy_async(cuda: Cuda, buf: TensorBuffer, stream: Any, to_device: bool) -> None:
    kind = cuda.rt.cudaMemcpyKind
    if to_device:
        cuda.call("cudaMemcpyAsync", buf.device_ptr, buf.host_ptr, buf.nbytes,
                  kind.cudaMemcpyHostToDevice, stream)
    else:
        cuda.call("cudaMemcpyAsync", buf.host_ptr, buf.device_ptr, buf.nbytes,
                  kind.cudaMemcpyDeviceToHost, stream)
