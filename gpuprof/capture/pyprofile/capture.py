"""One profiling session's capture: hooks on the runtimes, memory samplers, NVTX records
and cudaProfilerStart/Stop, all started together and stopped together.

NVTX (the ``nvtx`` package) makes each record a range an nsys capture shows, and gpuprof's
clock marks (``gpuprof-clock monotonic_ns=N``) let ``align.clock`` put that capture on this
clock; both are skipped where ``nvtx`` is not importable.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..ort.rss import RssSampler
from . import cuda
from .hooks import Hook
from .ort_hook import NodeSession, OrtHook
from .post_import import PostImportFinder
from .recorder import Recorder, now_ns
from .triton_hook import TritonHook
from .trt_hook import TrtHook

NVTX_DOMAIN = "gpuprof"
CLOCK_MARK = "gpuprof-clock monotonic_ns={ns} at={label}"


@dataclass
class Options:
    ort_nodes: bool = False            # ONNX Runtime's per-node profile of new sessions
    memory_interval_s: float = 0.01    # RSS and NVML sampling period
    gpu_memory: bool = True


@dataclass
class Captured:
    """Everything a stopped capture holds, raw: the pipeline turns it into a Profile."""

    recorder: Recorder
    rss: object                        # memory_events rows of the RSS sampler (DataFrame)
    gpu_memory: list[tuple[int, int, int]]
    node_sessions: list[NodeSession]
    absent: dict[str, str] = field(default_factory=dict)


class Capture:
    def __init__(self, options: Options):
        self.options = options
        self.recorder = Recorder()
        self._scratch = tempfile.TemporaryDirectory(prefix="gpuprof-profile-")
        self.ort = OrtHook(self.recorder, options.ort_nodes, Path(self._scratch.name))
        self.hooks: list[Hook] = [self.ort, TrtHook(self.recorder), TritonHook(self.recorder)]
        self._by_module = {name: hook for hook in self.hooks for name in hook.modules}
        self._finder = PostImportFinder(set(self._by_module), self._installed)
        self._rss = RssSampler(options.memory_interval_s)
        self._nvml, self._nvml_absent = (cuda.NvmlSampler.open(options.memory_interval_s)
                                         if options.gpu_memory else (None, "not asked"))
        self._cuda = cuda.gpu_runtime()
        self._nvtx = _nvtx()

    # -- start and stop ---------------------------------------------------------------------
    def start(self) -> None:
        for name in self._by_module:
            if name in sys.modules:
                self._installed(name, sys.modules[name])
        self._finder.install()
        self._rss.__enter__()
        if self._nvml is not None:
            self._nvml.start()
        self.clock_mark("start")
        cuda.profiler_start(self._cuda)

    def stop(self) -> Captured:
        cuda.profiler_stop(self._cuda)
        self.clock_mark("stop")
        self._finder.remove()
        for hook in self.hooks:
            hook.remove()
            hook.finish()
        self._rss.stop()
        if self._nvml is not None:
            self._nvml.stop()
        absent = {} if self._nvml is not None else {"gpu_memory": self._nvml_absent}
        return Captured(self.recorder, self._rss.table(),
                        self._nvml.rows if self._nvml is not None else [],
                        list(self.ort.sessions.values()), absent)

    def cleanup(self) -> None:
        """Remove the runtime profiles' scratch folder (after they were read)."""
        self._scratch.cleanup()

    def _installed(self, name: str, module) -> None:
        try:
            self._by_module[name].install(name, module)
        except Exception as exc:  # another version's API: that runtime is not captured
            self.recorder.failed(f"patching {name}", exc)

    # -- records, pause, resume -------------------------------------------------------------
    @contextlib.contextmanager
    def record(self, label: str) -> Iterator[None]:
        tid = threading.get_native_id()
        self.clock_mark(label)
        self._push(label)
        previous = self._rss.phase
        self._rss.set_phase(label)  # memory samples carry the record they were taken in
        start = now_ns()
        try:
            yield
        finally:
            self.recorder.add_span(label, start, now_ns(), tid)
            self._rss.set_phase(previous)
            self._pop()

    def pause(self) -> None:
        self.recorder.paused = True
        cuda.profiler_stop(self._cuda)

    def resume(self) -> None:
        cuda.profiler_start(self._cuda)
        self.recorder.paused = False

    def clock_mark(self, label: str) -> None:
        if self._nvtx is not None:
            self._nvtx.mark(message=CLOCK_MARK.format(ns=now_ns(), label=label), domain=NVTX_DOMAIN)

    def _push(self, label: str) -> None:
        if self._nvtx is not None:
            self._nvtx.push_range(message=label, domain=NVTX_DOMAIN)

    def _pop(self) -> None:
        if self._nvtx is not None:
            self._nvtx.pop_range(domain=NVTX_DOMAIN)


def _nvtx():
    try:
        import nvtx
    except ImportError:
        return None
    return nvtx
