"""TensorRT: ``IExecutionContext.execute_async_v3`` (enqueue on a stream) and ``execute_v2``
(synchronous) timed on the host and, where a GPU and cuda-python exist, on the GPU with a
pair of CUDA events on the call's stream (read when profiling stops, so the program's stream
is never synchronised by the profiler). For ``execute_async_v3`` the host time is the
enqueue only; the GPU time is the work.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import cuda
from .hooks import Hook
from .recorder import Recorder, now_ns

DEFAULT_STREAM = 0

if TYPE_CHECKING:
    import tensorrt as trt

    # The entry points as TensorRT declares them: tools/typecheck.sh fails here when a
    # TensorRT release renames them or changes their arguments (the wrappers pass them on).
    _ASYNC_V3: Callable[[trt.IExecutionContext, int], bool] = trt.IExecutionContext.execute_async_v3
    _SYNC_V2: Callable[[trt.IExecutionContext, list[int]], bool] = trt.IExecutionContext.execute_v2


StreamOf = Callable[[tuple, dict], int]


class TrtHook(Hook):
    modules = ("tensorrt", "tensorrt_rtx", "tensorrt_lean")

    def __init__(self, recorder: Recorder):
        super().__init__(recorder)
        runtime = cuda.gpu_runtime()
        self.timer: cuda.EventTimer | None = cuda.EventTimer(runtime) if runtime is not None else None

    def install(self, name: str, module: ModuleType) -> None:
        context = getattr(module, "IExecutionContext", None)
        if context is None:
            self.recorder.warn(f"{name} has no IExecutionContext; its calls are not captured")
            return
        what = f"{name}.IExecutionContext"
        self.wrap(context, "execute_async_v3", self._timed(f"{name}.execute_async_v3", _stream_v3), what)
        self.wrap(context, "execute_v2", self._timed(f"{name}.execute_v2", _stream_v2), what)

    def _timed(self, runtime: str, stream_of: StreamOf) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            recorder = self.recorder

            def execute(context: Any, *args: Any, **kwargs: Any) -> Any:
                if recorder.paused:
                    recorder.left_out += 1
                    return original(context, *args, **kwargs)
                timer, stream = self.timer, stream_of(args, kwargs)
                events = self._guarded(lambda: timer.begin(stream)) if timer is not None else None
                start = now_ns()
                try:
                    result = original(context, *args, **kwargs)
                except BaseException:
                    recorder.raised += 1  # not an inference; its start event is left unused
                    raise
                index = recorder.add_call(runtime, start, now_ns())
                if timer is not None and events is not None:
                    self._guarded(lambda: timer.end(index, events, stream))
                return result
            return execute
        return make

    def _guarded(self, action: Callable[[], Any]) -> Any:
        """A CUDA event call; on failure GPU timing stops, the program's call still runs."""
        try:
            return action()
        except Exception as exc:
            self.recorder.failed("CUDA events around TensorRT", exc)
            self.timer = None
            return None

    def finish(self) -> None:
        if self.timer is not None:
            resolved = self._guarded(self.timer.resolve)
            self.recorder.compute_ns.update(resolved or {})


def _stream_v3(args: tuple, kwargs: dict) -> int:
    return int(args[0]) if args else int(kwargs.get("stream_handle", DEFAULT_STREAM))


def _stream_v2(args: tuple, kwargs: dict) -> int:
    return DEFAULT_STREAM  # execute_v2 is synchronous on the default stream
