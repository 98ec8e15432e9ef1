"""The ``gpuprof engine`` report of a TensorRT run states TensorRT's facts, not ONNX Runtime's.

No TensorRT run happens here (it needs a GPU). Each test builds the run's inputs the way the
real run does: a runner output folder written by ``results.write_results`` from the runner's
own bookkeeping classes (``AllocationLog``, ``LayerTimeLog``) and its own ``run_facts``, with
values chosen here where the runner would read them from the GPU (versions, clocks, CUDA-event
times); then ``pipeline.profile_from_results`` turns it into the Profile exactly as
``run_tensorrt`` does after the runner exits. Nothing pretends to run TensorRT or nsys; where
an nsys capture is needed, a real third-party nsys export (a TensorRT ResNet-50) is ingested.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuprof.capture.timed_count import describe
from gpuprof.capture.trt.allocator import AllocationLog
from gpuprof.capture.trt.build import BuildResult
from gpuprof.capture.trt.cache import CacheEntry
from gpuprof.capture.trt.options import BuildOptions
from gpuprof.capture.trt.pipeline import TrtRunConfig, profile_from_results
from gpuprof.capture.trt.profiler import LayerTimeLog
from gpuprof.capture.trt.results import write_results
from gpuprof.capture.trt.runner import CLOCK_MARK, RunSettings, guessed_axes, run_facts
from gpuprof.render.engine_report import build_engine_report, write_engine_outputs
from gpuprof.render.report import render

from .conftest import fixture_path
from .test_layers import RESNET

MODEL = {"name": "cls.onnx", "sha256": "ab12" * 16, "bytes": 583_000}
LAYERS = {"/conv1/Conv + /relu/Relu": 0.2, "/pool/GlobalAveragePool": 0.03, "/fc/Gemm": 0.05}
# Chosen CUDA-event and host-clock times of one timed iteration (ns), as the runner records them.
H2D, COMPUTE, D2H, HOST = 50_000, 250_000, 30_000, 370_000
ITERATIONS, WARMUP, PROFILE_ITERATIONS = 12, 7, 4
# What ONNX Runtime's report says and a TensorRT report must not.
ORT_WORDING = ("ONNX Runtime", "ORT ", "onnxruntime", "session", "Session", "perf_counter",
               "host wall clock", "RSS", "CPUExecutionProvider", "nchwc")


def _sidecar() -> dict:
    """A build sidecar as ``build._sidecar`` writes it (values chosen): default profile."""
    return {"options": BuildOptions(fp16=True).key_dict(),
            "tensorrt": {"module": "tensorrt_rtx", "version": "1.2.0.54"},
            "inputs": {"x": [-1, 3, -1, -1]},
            "profile": {"x": {"min": [1, 3, 48, 192], "opt": [1, 3, 48, 192], "max": [1, 3, 48, 192]}},
            "profile_source": "default", "layer_info_kind": "engine_inspector",
            "build_seconds": 3.25, "model": MODEL}


def _runner_tables(layer_profile: bool) -> dict:
    """Rows from the runner's own bookkeeping classes, in its phase order."""
    # load phases before the timed iterations (from 10 ms on), teardown after them
    times = [1_000_000, 2_000_000, 3_000_000, 20_000_000, 20_100_000, 20_200_000]
    log = AllocationLog(clock=iter(times).__next__)
    with log.in_phase("deserialize"):
        log.record_alloc(0xA, 8 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("context_creation"):
        log.record_alloc(0xB, 2 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("shape_change"):
        log.record_alloc(0xC, 1 << 20, 256, 0, 0, "runner_io_buffer")
    with log.in_phase("teardown"):
        for ptr in (0xC, 0xB, 0xA):
            log.record_free(ptr, 0, "deallocate_async")
    layers = LayerTimeLog()
    for i in range(PROFILE_ITERATIONS if layer_profile else 0):
        layers.next_iteration(i)
        for name, ms in LAYERS.items():
            layers.report(name, ms)
    start = 10_000_000
    iterations = [{"iteration": i, "start_ns": start + i * 450_000, "end_ns": start + i * 450_000 + HOST,
                   "latency_ns": H2D + COMPUTE + D2H, "h2d_ns": H2D, "compute_ns": COMPUTE,
                   "d2h_ns": D2H, "host_latency_ns": HOST, "source": "cuda_events"}
                  for i in range(ITERATIONS)]
    return {"memory_events": log.rows(device_id=0, pid=7), "iterations": iterations,
            "layer_timings": layers.rows()}


def _runner_meta(settings: RunSettings, sidecar: dict, iterations: int) -> dict:
    """``ProfiledRun.meta()``'s keys: GPU-read values chosen here, ``run_facts`` the runner's own."""
    declared = (-1, 3, -1, -1)
    inputs = [{"name": "x", "dtype": "float32", "declared": list(declared), "shape": [1, 3, 48, 192],
               "guessed_axes": guessed_axes("x", declared, settings.shapes, sidecar)}]
    gpu = {"device_id": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
           "memory_bytes": 80 << 30, "driver_version": "580.65.06", "max_sm_clock_mhz": 1980}
    return {
        "tensorrt": sidecar["tensorrt"],
        "cuda": {"cuda_runtime": 12080, "cuda_driver": 13000},
        "gpus": [{**gpu, "sm_clock_mhz": 1755}],
        "gpus_before_timed_pass": [{**gpu, "sm_clock_mhz": 1755}],
        "gpus_after_timed_pass": [{**gpu, "sm_clock_mhz": 1980}],
        "plan": {"file": settings.plan.name, "bytes": 1 << 20, "build": {"model": MODEL}},
        "settings": {"warmup": settings.warmup, "profile_iterations": settings.profile_iterations,
                     "layer_profile": settings.layer_profile},
        "iterations_requested": describe(settings.iterations, settings.min_seconds),
        "clock_marks": [{"label": "capture_start", "monotonic_ns": 5,
                         "text": CLOCK_MARK.format(ns=5, label="capture_start")}],
        "nvtx_domain": "gpuprof",
        "allocator_peak_bytes": 11 << 20,
        "absent": {} if settings.layer_profile else
        {"layer_timings": "the per-layer pass was skipped (--no-layer-profile)"},
        "pid": 7,
        **run_facts(settings, sidecar, inputs, iterations),
    }


def _trt_profile(tmp_path: Path, *, layer_profile: bool = True, sqlite: Path | None = None,
                 no_nsys_reason: str = "nsys (Nsight Systems) is not on PATH"):
    """The Profile ``run_tensorrt`` returns, from a runner folder built as described above."""
    out = tmp_path / "trt_run"
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = CacheEntry.for_key(cache, MODEL["name"], "0123456789abcdef0123")
    entry.layers.write_text(json.dumps({"engine": {"Layers": [
        {"Name": name, "LayerType": kind} for name, kind in
        zip(LAYERS, ("CaskConvolution", "CaskPooling", "CaskGemm"), strict=True)]}}))
    settings = RunSettings(plan=entry.plan, out=out, iterations=None, min_seconds=0.5,
                           warmup=WARMUP, profile_iterations=PROFILE_ITERATIONS,
                           layer_profile=layer_profile)
    sidecar = _sidecar()
    out.mkdir()
    write_results(out, _runner_tables(layer_profile), _runner_meta(settings, sidecar, ITERATIONS))
    config = TrtRunConfig(model=Path(MODEL["name"]), out_dir=out, iterations=None, min_seconds=0.5,
                          warmup=WARMUP, profile_iterations=PROFILE_ITERATIONS,
                          layer_profile=layer_profile, nsys=sqlite is not None,
                          no_nsys_reason=no_nsys_reason)
    built = BuildResult(entry, sidecar, cache_hit=True, seconds=0.01)
    return profile_from_results(out, built, config, sqlite)


def _all_text(report) -> str:
    return "\n".join(render(report, fmt, width=200) for fmt in ("terminal", "md", "json"))


def test_tensorrt_report_states_tensorrt_facts(tmp_path):
    profile = _trt_profile(tmp_path)
    report, outputs = write_engine_outputs(profile, tmp_path)
    facts = report.facts
    assert report.title == "gpuprof engine: cls.onnx"
    assert facts["Backend"] == "TensorRT 1.2.0.54 (Python module tensorrt_rtx)"
    assert facts["Model"] == "cls.onnx (0.6 MB, sha256 ab12ab12ab12)"
    assert facts["Inputs"].startswith("x: 1x3x48x192 (float32; guessed axes 0,2,3)")
    assert "guessed dims follow gpuprof's default rule" in facts["Inputs"]
    assert facts["GPU"].startswith("NVIDIA H100 80GB HBM3 (compute 9.0), 80 GiB; SM clock 1755 MHz "
                                   "before / 1980 MHz after the timed pass (max 1980 MHz)")
    assert "driver 580.65.06, CUDA runtime 12.8, CUDA driver API 13.0" in facts["GPU"]
    assert facts["Engine"].startswith("cls-0123456789abcdef.plan (from gpuprof's plan cache); "
                                      "reduced-precision flags: fp16; layer types from TensorRT's "
                                      "engine inspector")
    timed = facts["Timed pass"]
    assert timed.startswith(f"{ITERATIONS} iterations (requested: auto (>= 10 and >= 0.5 s)) "
                            f"after {WARMUP} warm-up; CUDA events on the inference stream")
    assert "execute_async_v3" in timed and "time.monotonic_ns" in timed
    layer = facts["Layer profile"]
    assert layer.startswith(f"{PROFILE_ITERATIONS} iterations in a separate pass after the timed pass "
                            "(no warm-up of its own), with TensorRT's IProfiler attached")
    assert "context.enqueue_emits_profile = False" in layer
    assert "context.report_to_profiler() after each iteration" in layer
    assert facts["nsys"].startswith("not captured (nsys (Nsight Systems) is not on PATH)")
    assert profile.meta.absent["kernels"] == "no nsys capture: nsys (Nsight Systems) is not on PATH"

    latency = report.section("latency")
    assert latency.notes[0].startswith(f"{ITERATIONS} timed iterations (CUDA events on the "
                                       "inference stream, from before the input copies")
    assert (f"Median per iteration (CUDA events): H2D copies {H2D / 1e3:,.3f} µs, inference "
            f"{COMPUTE / 1e3:,.3f} µs, D2H copies {D2H / 1e3:,.3f} µs") in latency.notes[1]
    assert f"median of {HOST / 1e3:,.3f} µs" in latency.notes[1]
    assert "latency from CUDA events" in report.section("iterations").notes[0]
    stats_rows = dict(zip(latency.table["statistic"], latency.table.iloc[:, 1]))
    host_ns = (profile.iterations["end_ns"] - profile.iterations["start_ns"]).sum()
    assert stats_rows["throughput, host clock (inferences/s)"] == pytest.approx(
        len(profile.iterations) * 1e9 / host_ns)  # independent: iterations over host time
    layers = report.section("layers")
    assert set(layers.table["type"]) == {"CaskConvolution", "CaskPooling", "CaskGemm"}
    notes = " ".join(layers.notes)
    assert "TensorRT's IProfiler" in notes
    ratio = sum(LAYERS.values()) * 1e6 / COMPUTE
    assert ratio > 1 and (f"Layer times sum to {ratio:.2f}x the timed pass's median inference time"
                          in notes) and "the profiler's per-layer overhead" in notes
    assert report.section("reconcile") is None  # no nsys kernels to reconcile with

    files = dict(zip(report.section("files").table["file"], report.section("files").table["content"]))
    assert files["trt_run/"].startswith("the TensorRT runner's own output")
    if "memory.png" in files:
        assert files["memory.png"] == "memory over time: TensorRT allocator"
    assert "onnxruntime_profile.json" not in files and "onnxruntime_profile.json" not in outputs.written

    text = _all_text(report) + (tmp_path / "report.md").read_text()
    for wording in ORT_WORDING:
        assert wording not in text, wording
    assert json.loads((tmp_path / "report.json").read_text())["facts"] == facts


def test_tensorrt_report_without_layer_pass(tmp_path):
    profile = _trt_profile(tmp_path, layer_profile=False)
    report = build_engine_report(profile)
    assert report.facts["Layer profile"] == "the per-layer pass was skipped (--no-layer-profile)"
    assert report.facts["Timed pass"].startswith(f"{ITERATIONS} iterations")
    text = _all_text(report)
    for wording in ORT_WORDING:
        assert wording not in text, wording


def test_tensorrt_report_with_an_nsys_export(tmp_path):
    """The nsys fact when the run has an export: here a real TensorRT ResNet-50 export stands in
    for the runner's own, so it has no gpuprof clock marks and the report must say so."""
    sqlite = fixture_path("nsys", RESNET)
    profile = _trt_profile(tmp_path, sqlite=sqlite)
    report = build_engine_report(profile)
    nsys = report.facts["nsys"]
    assert nsys.startswith("nsys ") and "profile --capture-range=cudaProfilerApi (" in nsys
    assert ("cudaProfilerStart/Stop around the timed iterations only: warm-up and the layer pass "
            "are outside it") in nsys
    assert f"{len(profile.kernels):,} kernels" in nsys and len(profile.kernels) > 0
    assert "not on the run's clock (none: no gpuprof clock marks found)" in nsys
    assert "kernels" not in profile.meta.absent
    assert report.section("reconcile") is not None
    text = _all_text(report)
    for wording in ORT_WORDING:
        assert wording not in text, wording


def test_cli_records_why_nsys_did_not_run():
    from gpuprof.cli.engine import NO_NSYS, RunArgs, trt_run_config

    args = RunArgs(Path("m.onnx"), Path("out"))
    assert trt_run_config(args, nsys_available=False).no_nsys_reason == NO_NSYS
    with_nsys = trt_run_config(args, nsys_available=True)
    assert with_nsys.nsys and with_nsys.no_nsys_reason == TrtRunConfig(Path("m"), Path("o")).no_nsys_reason


@pytest.mark.parametrize("given, build_shapes, source, expected", [
    ({}, {}, "default", [0, 2, 3]),
    ({"x": (1, 3, 48, 192)}, {}, "default", []),
    ({}, {"x": [1, 3, 48, 192]}, "default", []),
    ({}, {}, "given", []),
])
def test_guessed_axes_follow_the_build(given, build_shapes, source, expected):
    sidecar = {"options": BuildOptions().key_dict() | {"shapes": build_shapes},
               "profile_source": source}
    assert guessed_axes("x", (-1, 3, -1, -1), given, sidecar) == expected
