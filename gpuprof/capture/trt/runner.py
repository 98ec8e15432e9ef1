"""The profiled TensorRT run, in its own process (GPU only).

``python -m gpuprof.capture.trt.runner --plan P --out DIR [-n 50 | --duration S] [--warmup 10] ...``

Run as a child (under nsys, see ``nsys_cmd``) so the engine build never appears in the
profile. In order:

1. deserialize the plan with a recording allocator (``allocator``) installed on the runtime and
   as the context's temporary allocator, the log switched through the phases deserialize,
   context_creation, shape_change, inference and teardown;
2. warm-up iterations, outside the capture range;
3. ``cudaProfilerStart``; N iterations (``-n``, or auto with ``--duration``: ``timed_count``),
   each in an NVTX range, timed with CUDA events
   (H2D, compute, D2H) and the host clock; ``cudaProfilerStop``. NVTX marks in the domain
   "gpuprof" before and after carry ``time.monotonic_ns()`` (message and int64 payload), so an
   nsys export can be put on the host monotonic clock exactly;
4. a separate per-layer pass with an ``IProfiler`` (``enqueue_emits_profile = False`` and
   ``report_to_profiler()`` after each iteration), kept out of the timed numbers;
5. the output folder (``results``), written only at the end, each file atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import BadInputError, CaptureError, GpuprofError
from .. import host, onnx_inputs, timed_count
from . import api, device
from .allocator import AllocationLog, CudaMemory, recording_allocator
from .cuda_util import Cuda, TensorBuffer, alloc_buffer, copy_async, free_buffer
from .logger import LogRecords, collecting_logger
from .options import (
    RUN_ITERATIONS,
    RUN_PROFILE_ITERATIONS,
    RUN_WARMUP,
    Shape,
    parse_shapes,
    run_shapes,
)
from .profiler import LayerTimeLog, recording_profiler
from .results import write_results

if TYPE_CHECKING:
    import tensorrt as trt_types

NVTX_DOMAIN = "gpuprof"
CLOCK_MARK = "gpuprof-clock monotonic_ns={ns} at={label}"
# How this runner measures, recorded in run.json so a report states the method that ran.
TIMER = ("CUDA events on the inference stream from before the input copies (H2D) to after the "
         "output copies (D2H), around execute_async_v3; time.monotonic_ns around each iteration "
         "is kept as its start/end")
LAYER_PROFILER = {"api": "IProfiler", "enqueue_emits_profile": False,
                  "report": "context.report_to_profiler() after each iteration",
                  "pass": "a separate pass after the timed pass", "warmup": 0}  # no warm-up of its own
CAPTURE_RANGE = "cudaProfilerStart/Stop around the timed iterations only"


@dataclass
class RunSettings:
    plan: Path
    out: Path
    iterations: int | None = RUN_ITERATIONS  # None: auto, at least min_seconds (timed_count)
    warmup: int = RUN_WARMUP
    profile_iterations: int = RUN_PROFILE_ITERATIONS
    min_seconds: float = timed_count.DEFAULT_MIN_SECONDS
    shapes: dict[str, Shape] = field(default_factory=dict)
    module: str | None = None
    layer_profile: bool = True
    seed: int = 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        paths = run(settings)
    except GpuprofError as exc:
        print(f"Error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted: no results were written.", file=sys.stderr)
        return 130
    print(f"Wrote {', '.join(p.name for p in paths)} to {settings.out}", file=sys.stderr)
    return 0


def parse_args(argv: Sequence[str] | None) -> RunSettings:
    p = argparse.ArgumentParser(prog="python -m gpuprof.capture.trt.runner",
                                description="Profiled TensorRT run of a serialized plan (needs a GPU).")
    p.add_argument("--plan", type=Path, required=True, help="serialized engine (.plan)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("-n", "--iterations", type=int, default=None,
                   help=f"timed iterations (default {RUN_ITERATIONS}, or auto with --duration)")
    p.add_argument("--duration", type=float, default=None,
                   help="without -n: run at least this many seconds and "
                        f"{timed_count.MIN_AUTO_ITERATIONS} iterations")
    p.add_argument("--warmup", type=int, default=RUN_WARMUP, help="untimed iterations before the capture")
    p.add_argument("--profile-iterations", type=int, default=RUN_PROFILE_ITERATIONS,
                   help="iterations of the layer pass")
    p.add_argument("--shapes", action="append", default=[], help="NAME:DIMS[,NAME:DIMS...]")
    p.add_argument("--module", help="TensorRT module that built the plan (default: from its sidecar)")
    p.add_argument("--no-layer-profile", action="store_true", help="skip the IProfiler pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input data")
    a = p.parse_args(argv)
    if (a.iterations is not None and a.iterations < 1) or a.warmup < 0 or a.profile_iterations < 1:
        p.error("iterations and profile iterations must be >= 1, warm-up >= 0")
    if a.duration is not None and a.duration < 0:
        p.error("--duration must be >= 0")
    count = timed_count.requested(a.iterations, a.duration, RUN_ITERATIONS)
    return RunSettings(
        plan=a.plan, out=a.out, iterations=count.iterations, min_seconds=count.min_seconds,
        warmup=a.warmup, profile_iterations=a.profile_iterations, shapes=parse_shapes(a.shapes),
        module=a.module, layer_profile=not a.no_layer_profile, seed=a.seed)


def run(settings: RunSettings) -> list[Path]:
    """Do the whole profiled run and write the output folder; return the files written."""
    plan = _read_plan(settings.plan)
    sidecar = read_sidecar(settings.plan)
    trt = api.runtime_module(settings.module or sidecar.get("tensorrt", {}).get("module", "tensorrt"))
    session = ProfiledRun(trt, settings, sidecar)
    try:
        session.load(plan)
        session.prepare()
        session.warm_up()
        iterations = session.timed()
        layers = session.layer_pass() if settings.layer_profile else []
    finally:
        session.close()
    tables = {"memory_events": session.log.rows(device_id=0, pid=os.getpid()),
              "iterations": iterations, "layer_timings": layers}
    return write_results(settings.out, tables, session.meta(len(iterations)))


def _read_plan(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read plan {path.name} ({exc.strerror})",
                            "Build one with 'gpuprof build MODEL.onnx'") from exc


def read_sidecar(plan: Path) -> dict[str, Any]:
    """The build sidecar beside the plan (``X.plan`` -> ``X.json``); {} when absent."""
    try:
        return dict(json.loads(plan.with_suffix(".json").read_text()))
    except (OSError, ValueError):
        return {}


class ProfiledRun:
    """The live TensorRT objects of one run, torn down in a safe order by ``close``."""

    def __init__(self, trt: ModuleType, settings: RunSettings, sidecar: dict[str, Any]):
        self.trt, self.settings, self.sidecar = trt, settings, sidecar
        self.cuda = Cuda()
        self.cuda.require_gpu()
        self.log = AllocationLog()
        self.layer_log = LayerTimeLog()
        self.records = LogRecords()
        self.allocator = recording_allocator(trt, self.log, CudaMemory())
        self.logger = collecting_logger(trt, self.records)
        self.runtime: trt_types.Runtime | None = None
        self.engine: trt_types.ICudaEngine | None = None
        self.context: trt_types.IExecutionContext | None = None
        self.buffers: list[TensorBuffer] = []
        self.stream: Any = None
        self.marks: list[dict[str, Any]] = []
        self.inputs: list[dict[str, Any]] = []
        self.gpu_before: list[dict[str, Any]] = []
        self.gpu_after: list[dict[str, Any]] = []

    def load(self, plan: bytes) -> None:
        runtime: trt_types.Runtime = self.trt.Runtime(self.logger)
        # gpu_allocator is a write-only property that tensorrt-stubs does not declare.
        setattr(runtime, "gpu_allocator", self.allocator)  # noqa: B010
        self.runtime = runtime
        with self.log.in_phase("deserialize"):
            self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise CaptureError(f"TensorRT could not deserialize the plan: {self._trt_errors()}",
                               "Run it with the TensorRT flavour and version that built it, on a GPU it targets")
        with self.log.in_phase("context_creation"):
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise CaptureError(f"TensorRT could not create an execution context: {self._trt_errors()}",
                               "Check free GPU memory")
        if hasattr(self.context, "temporary_allocator"):
            self.context.temporary_allocator = self.allocator

    def prepare(self) -> None:
        """Fix input shapes, allocate I/O buffers, bind them; all under the shape_change phase."""
        engine, context = self._live()
        rng = np.random.default_rng(self.settings.seed)
        self.stream = self.cuda.call("cudaStreamCreate")
        given = run_shapes(self.settings.shapes, self._input_names())
        shapes = self.input_shapes(given)
        with self.log.in_phase("shape_change"):
            for name, shape in shapes.items():
                if not context.set_input_shape(name, shape):
                    raise BadInputError(f"shape {shape} is outside the engine's profile for '{name}'",
                                        "Pass --shapes within the min/max the plan was built for")
            for name in _io_names(engine):
                self._bind(name, rng)
        self.inputs = [self._input_fact(buf, given) for buf in self.buffers if buf.is_input]

    def _input_fact(self, buf: TensorBuffer, given: dict[str, Shape]) -> dict[str, Any]:
        """One input as run: shape, dtype and which dims gpuprof guessed (``guessed_axes``)."""
        engine, _ = self._live()
        declared = onnx_inputs.format_dims(api.shape_of(engine.get_tensor_shape(buf.name)))
        return onnx_inputs.input_fact(buf.name, buf.dtype, declared, buf.shape,
                                      guessed_axes(buf.name, given, self.sidecar))

    def _bind(self, name: str, rng: np.random.Generator) -> None:
        engine, context = self._live()
        is_input = engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
        shape = api.shape_of(context.get_tensor_shape(name))
        if min(shape, default=1) < 0:
            raise CaptureError(f"output '{name}' has a data-dependent shape {shape}",
                               "Engines with data-dependent output shapes are not supported yet")
        dtype = np.dtype(self.trt.nptype(engine.get_tensor_dtype(name)))
        buf = alloc_buffer(self.cuda, name, is_input, shape, dtype, rng)
        self.buffers.append(buf)
        # I/O buffers are the runner's, not TensorRT's; they are logged so the timeline is whole.
        self.log.record_alloc(buf.device_ptr, buf.nbytes, 256, 0, 0, "runner_io_buffer")
        context.set_tensor_address(name, buf.device_ptr)

    def _input_names(self) -> list[str]:
        engine, _ = self._live()
        return [name for name in _io_names(engine)
                if engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT]

    def input_shapes(self, given: dict[str, Shape]) -> dict[str, Shape]:
        """``given`` (the run's --shapes by input name), else the shape the plan was optimised
        for (profile opt)."""
        engine, _ = self._live()
        shapes = {}
        for name in self._input_names():
            declared = api.shape_of(engine.get_tensor_shape(name))
            opt = api.shape_of(engine.get_tensor_profile_shape(name, 0)[1]) if -1 in declared else declared
            shapes[name] = given.get(name, opt)
        return shapes

    def warm_up(self) -> None:
        with self.log.in_phase("inference"):
            for _ in range(self.settings.warmup):
                self._enqueue()
            self.cuda.call("cudaStreamSynchronize", self.stream)

    def timed(self) -> list[dict[str, Any]]:
        import nvtx

        events = [self.cuda.call("cudaEventCreate") for _ in range(4)]
        rows: list[dict[str, Any]] = []
        # NVML readings (clocks, after the warm-up) are taken outside the capture range.
        self.gpu_before = device.gpu_info()
        with self.log.in_phase("inference"), self._capture():
            begin = time.monotonic_ns()
            while not self._timed_done(len(rows), time.monotonic_ns() - begin):
                i = len(rows)
                with nvtx.annotate(f"gpuprof iteration {i}", domain=NVTX_DOMAIN):
                    rows.append(self._timed_iteration(i, events))
        self.gpu_after = device.gpu_info()
        for event in events:
            self.cuda.call("cudaEventDestroy", event)
        return rows

    def _timed_done(self, done: int, elapsed_ns: int) -> bool:
        return timed_count.timed_done(done, elapsed_ns, self.settings.iterations,
                                      self.settings.min_seconds)

    @contextmanager
    def _capture(self) -> Iterator[None]:
        """cudaProfilerStart/Stop bracketed by NVTX clock marks."""
        self._mark("capture_start")
        self.cuda.call("cudaProfilerStart")
        try:
            yield
        finally:
            self.cuda.call("cudaProfilerStop")
            self._mark("capture_stop")

    def _mark(self, label: str) -> None:
        import nvtx

        ns = time.monotonic_ns()
        text = CLOCK_MARK.format(ns=ns, label=label)
        nvtx.mark(message=text, domain=NVTX_DOMAIN, payload=ns)
        self.marks.append({"label": label, "monotonic_ns": ns, "text": text})

    def _timed_iteration(self, i: int, ev: list[Any]) -> dict[str, Any]:
        start = time.monotonic_ns()
        self.cuda.call("cudaEventRecord", ev[0], self.stream)
        self._copies(to_device=True)
        self.cuda.call("cudaEventRecord", ev[1], self.stream)
        self._execute()
        self.cuda.call("cudaEventRecord", ev[2], self.stream)
        self._copies(to_device=False)
        self.cuda.call("cudaEventRecord", ev[3], self.stream)
        self.cuda.call("cudaEventSynchronize", ev[3])
        end = time.monotonic_ns()
        elapsed = self.cuda.elapsed_ns
        return {"iteration": i, "start_ns": start, "end_ns": end,
                "latency_ns": elapsed(ev[0], ev[3]), "h2d_ns": elapsed(ev[0], ev[1]),
                "compute_ns": elapsed(ev[1], ev[2]), "d2h_ns": elapsed(ev[2], ev[3]),
                "host_latency_ns": end - start, "source": "cuda_events"}

    def _enqueue(self) -> None:
        self._copies(to_device=True)
        self._execute()
        self._copies(to_device=False)

    def _copies(self, to_device: bool) -> None:
        for buf in self.buffers:
            if buf.is_input == to_device:
                copy_async(self.cuda, buf, self.stream, to_device)

    def _execute(self) -> None:
        _, context = self._live()
        if not context.execute_async_v3(int(self.stream)):
            raise CaptureError(f"TensorRT inference failed: {self._trt_errors()}",
                               "Re-run with the same plan and shapes under compute-sanitizer")

    def layer_pass(self) -> list[dict[str, Any]]:
        """Per-layer times, kept apart from the timed pass because the profiler adds overhead."""
        _, context = self._live()
        context.profiler = recording_profiler(self.trt, self.layer_log)
        context.enqueue_emits_profile = False
        with self.log.in_phase("inference"):
            for i in range(self.settings.profile_iterations):
                self.layer_log.next_iteration(i)
                self._execute()
                self.cuda.call("cudaStreamSynchronize", self.stream)
                context.report_to_profiler()
        return self.layer_log.rows()

    def close(self) -> None:
        """Context before engine before runtime; the allocator outlives them all."""
        with self.log.in_phase("teardown"):
            if self.stream is not None:
                self.cuda.rt.cudaStreamSynchronize(self.stream)
            self.context = None
            self.engine = None
            self.runtime = None
            for buf in self.buffers:
                free_buffer(self.cuda, buf)
                self.log.record_free(buf.device_ptr, 0, "runner_io_buffer")
            self.buffers = []
            if self.stream is not None:
                self.cuda.rt.cudaStreamDestroy(self.stream)
                self.stream = None

    def _live(self) -> tuple[trt_types.ICudaEngine, trt_types.IExecutionContext]:
        if self.engine is None or self.context is None:
            raise CaptureError("the engine is not loaded", "Call load() first")
        return self.engine, self.context

    def _trt_errors(self) -> str:
        return " | ".join(self.records.errors()) or "no error message from TensorRT"

    def meta(self, iterations: int) -> dict[str, Any]:
        """run.json's content after ``iterations`` timed iterations (``results``)."""
        return {
            "tensorrt": api.describe(self.trt),
            "cuda": self.cuda.versions(),
            # NVML's readings around the timed pass; the first are the run's GPUs (results.py)
            "gpus_before_timed_pass": self.gpu_before,
            "gpus_after_timed_pass": self.gpu_after,
            "plan": {"file": self.settings.plan.name, "bytes": self.settings.plan.stat().st_size,
                     "build": {k: self.sidecar.get(k) for k in ("key", "tensorrt", "options",
                                                                "target", "model", "profile")}},
            "settings": {**asdict(self.settings), "plan": self.settings.plan.name,
                         "out": self.settings.out.name},
            "clock_marks": self.marks,
            "nvtx_domain": NVTX_DOMAIN,
            "allocator_peak_bytes": self.log.peak_bytes,
            "absent": {"layer_timings": "the per-layer pass was skipped (--no-layer-profile)"}
            if not self.settings.layer_profile else {},
            "pid": os.getpid(),
            **run_facts(self.settings, self.sidecar, self.inputs, iterations),
        }


def run_facts(settings: RunSettings, sidecar: dict[str, Any], inputs: list[dict[str, Any]],
              iterations: int) -> dict[str, Any]:
    """What a report needs to say how this run measured (the same keys ONNX Runtime records
    where the fact is the same: model, input_shapes, inputs, iterations, warmup, timer, ...)."""
    model = sidecar.get("model") or {}
    return {
        "backend": "tensorrt",
        "model": model.get("name") or settings.plan.name,
        "input_shapes": onnx_inputs.describe_inputs(inputs),
        "inputs": inputs,
        "iterations": iterations,
        "iterations_requested": timed_count.describe(settings.iterations, settings.min_seconds),
        "warmup": settings.warmup,
        "timer": TIMER,
        "profile_iterations": settings.profile_iterations if settings.layer_profile else 0,
        "layer_profiler": dict(LAYER_PROFILER) if settings.layer_profile else None,
        "capture_range": CAPTURE_RANGE,
        **host.cpu_facts(),
    }


def guessed_axes(name: str, run_given: dict[str, Shape], sidecar: dict[str, Any]) -> list[int]:
    """The axes of ``name`` the plan was built for gpuprof's default shape on (the build
    sidecar's ``guessed_axes``); none when the run's own --shapes (by input name) gave it."""
    if name in run_given:
        return []
    return list((sidecar.get("guessed_axes") or {}).get(name, []))


def _io_names(engine: trt_types.ICudaEngine) -> list[str]:
    return [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]


if __name__ == "__main__":
    sys.exit(main())
