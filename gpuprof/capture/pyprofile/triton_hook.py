"""tritonclient: ``InferenceServerClient.infer`` of the HTTP and gRPC clients, timed on the
client with CLOCK_MONOTONIC -- the clock tritonserver's trace file uses on the same host --
so each call can be joined with the server's stages of its request."""

from __future__ import annotations

from types import ModuleType

from .hooks import Hook
from .recorder import now_ns


class TritonHook(Hook):
    modules = ("tritonclient.http", "tritonclient.grpc")

    def install(self, name: str, module: ModuleType) -> None:
        client = getattr(module, "InferenceServerClient", None)
        if client is None:
            self.recorder.warn(f"{name} has no InferenceServerClient; its calls are not captured")
            return
        self.wrap(client, "infer", self._timed(name), f"{name}.InferenceServerClient")

    def _timed(self, runtime: str):
        def make(original):
            recorder = self.recorder

            def infer(client, *args, **kwargs):
                if recorder.paused:
                    recorder.left_out += 1
                    return original(client, *args, **kwargs)
                start = now_ns()
                try:
                    result = original(client, *args, **kwargs)
                except BaseException:
                    recorder.raised += 1  # a failed request is not an inference
                    raise
                recorder.add_call(runtime, start, now_ns())
                return result
            return infer
        return make
