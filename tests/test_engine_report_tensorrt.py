"""The ``gpuprof engine`` report of a TensorRT run states TensorRT's facts, not ONNX Runtime's.

No TensorRT run happens here (it needs a GPU). Each test builds the run's inputs the way the
real run does: a runner output folder written by ``results.write_results`` from the runner's
own bookkeeping classes (``AllocationLog``, ``LayerTimeLog``) and its own ``run_facts``, with
values chosen here where the runner would read them from the GPU (versions, clocks, CUDA-event
times); then ``pipeline.engine_run.profile_from_results`` turns it into the Profile exactly as
``run_tensorrt`` does after the runner exits. Nothing pretends to run TensorRT or nsys; where
an nsys capture is needed, a real third-party nsys export (a TensorRT ResNet-50) is ingested.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from gpuprof.api import Run
from gpuprof.capture.onnx_inputs import format_dims, input_fact
from gpuprof.capture.trt.allocator import AllocationLog
from gpuprof.capture.trt.build import BuildResult, shape_profile
from gpuprof.capture.trt.cache import CacheEntry
from gpuprof.capture.trt.options import BuildOptions, run_shapes
from gpuprof.capture.trt.pipeline import TrtCapture, TrtRunConfig
from gpuprof.capture.trt.profiler import LayerTimeLog
from gpuprof.capture.trt.results import write_results
from gpuprof.capture.trt.runner import CLOCK_MARK, RunSettings, guessed_axes, run_facts
from gpuprof.cli.engine_outputs import write_engine_outputs
from gpuprof.pipeline.engine_run import profile_from_results
from gpuprof.render.engine_report import build_engine_report
from gpuprof.render.report import render

from .conftest import REPO, fixture_path
from .test_engine_report_crosscheck import MIB, _phase_blocks, _run_start
from .test_layers import RESNET

MODEL = {"name": "cls.onnx", "sha256": "ab12" * 16, "bytes": 583_000}
# Median IProfiler time of each layer (ms) per profiled iteration: LAYER_PASS varies them.
LAYERS = {"/conv1/Conv + /relu/Relu": 0.2, "/pool/GlobalAveragePool": 0.03, "/fc/Gemm": 0.05}
# Layer times (ms) of each profiled iteration, in LAYERS' order: per-iteration sums 0.24, 0.29,
# 0.27, 0.55, whose median (0.28) is sum(LAYERS) while their mean (0.3375) and the sum of the
# per-layer medians (0.29) are not, so the report's ratio tells the three formulas apart.
LAYER_PASS = [(0.15, 0.04, 0.05), (0.21, 0.02, 0.06), (0.19, 0.03, 0.05), (0.40, 0.05, 0.10)]
# Medians of the chosen CUDA-event and host-clock times per timed iteration (ns). Each iteration
# gets the median plus a delta (STAGE_DELTAS for the stages over the 12 iterations that recorded
# them, HOST_DELTAS for the host clock over all 14): even counts whose middle two deltas are
# -1 µs and +1 µs, so only the median of the recorded rows gives back the constant (their mean,
# either middle value, or a median counting the "not recorded" -1 rows would not).
H2D, COMPUTE, D2H, HOST = 50_000, 250_000, 30_000, 370_000
STAGE_DELTAS = [-9_000, 60_000, -1_000, -7_000, 4_000, -5_000, 1_000, 30_000, -3_000, 15_000,
                -2_000, 8_000]
HOST_DELTAS = [-20_000, 3_000, 70_000, -15_000, -1_000, 40_000, -12_000, 7_000, -9_000, 1_000,
               25_000, -6_000, 15_000, -4_000]
NOT_RECORDED = (5, 11)  # timed iterations whose stage events were not recorded (-1)
ITERATIONS, WARMUP, PROFILE_ITERATIONS = len(HOST_DELTAS), 7, len(LAYER_PASS)
CLS = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
# What ONNX Runtime's report says and a TensorRT report must not.
ORT_WORDING = ("ONNX Runtime", "ORT ", "onnxruntime", "session", "Session", "perf_counter",
               "host wall clock", "RSS", "CPUExecutionProvider", "nchwc")


def _sidecar() -> dict:
    """A build sidecar as ``build._sidecar`` writes it (values chosen): default profile."""
    options = BuildOptions(fp16=True)
    return {"options": options.key_dict(), "precisions": options.precisions(),
            "tensorrt": {"module": "tensorrt_rtx", "version": "1.2.0.54"},
            "inputs": {"x": [-1, 3, -1, -1]},
            "profile": {"x": {"min": [1, 3, 48, 192], "opt": [1, 3, 48, 192], "max": [1, 3, 48, 192]}},
            "profile_source": "default", "guessed_axes": {"x": [0, 2, 3]},
            "layer_info_kind": "engine_inspector",
            "build_seconds": 3.25, "model": MODEL}


def _runner_tables(layer_profile: bool) -> dict:
    """Rows from the runner's own bookkeeping classes, in its phase order."""
    # load phases before the timed iterations (10 ms to 16.3 ms), a temporary allocation and a
    # shape change during them, teardown after them
    times = [1_000_000, 2_000_000, 3_000_000, 12_000_000, 12_500_000, 13_000_000, 14_000_000,
             20_000_000, 20_100_000, 20_200_000]
    log = AllocationLog(clock=iter(times).__next__)
    with log.in_phase("deserialize"):
        log.record_alloc(0xA, 8 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("context_creation"):
        log.record_alloc(0xB, 2 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("shape_change"):
        log.record_alloc(0xC, 1 << 20, 256, 0, 0, "runner_io_buffer")
    with log.in_phase("inference"):
        log.record_alloc(0xD, 4 << 20, 256, 0, 0, "allocate_async")
        log.record_free(0xD, 0, "deallocate_async")
    with log.in_phase("shape_change"):
        log.record_alloc(0xE, 3 << 20, 256, 0, 0, "runner_io_buffer")
    with log.in_phase("inference"):
        log.record_free(0xE, 0, "deallocate_async")
    with log.in_phase("teardown"):
        for ptr in (0xC, 0xB, 0xA):
            log.record_free(ptr, 0, "deallocate_async")
    layers = LayerTimeLog()
    for i, row in enumerate(LAYER_PASS if layer_profile else []):
        layers.next_iteration(i)
        for name, ms in zip(LAYERS, row, strict=True):
            layers.report(name, ms)
    return {"memory_events": log.rows(device_id=0, pid=7), "iterations": _timed_rows(),
            "layer_timings": layers.rows()}


def _timed_rows() -> list[dict]:
    """The timed pass's rows, 450 µs apart from 10 ms on; NOT_RECORDED rows carry -1 stages."""
    recorded = 0
    rows = []
    for i, host_delta in enumerate(HOST_DELTAS):
        start, host = 10_000_000 + i * 450_000, HOST + host_delta
        if i in NOT_RECORDED:
            h2d = compute = d2h = -1
            latency = host - 20_000
        else:
            # each stage takes the deltas in its own order (5 and 7 are prime to 12)
            h2d, compute, d2h = (H2D + STAGE_DELTAS[recorded],
                                 COMPUTE + STAGE_DELTAS[recorded * 5 % 12],
                                 D2H + STAGE_DELTAS[recorded * 7 % 12])
            latency = h2d + compute + d2h
            recorded += 1
        rows.append({"iteration": i, "start_ns": start, "end_ns": start + host,
                     "latency_ns": latency, "h2d_ns": h2d, "compute_ns": compute, "d2h_ns": d2h,
                     "host_latency_ns": host, "source": "cuda_events"})
    return rows


def _runner_meta(settings: RunSettings, sidecar: dict, iterations: int) -> dict:
    """``ProfiledRun.meta()``'s keys: GPU-read values chosen here, ``run_facts`` the runner's own."""
    inputs = [input_fact("x", "float32", format_dims((-1, 3, -1, -1)), (1, 3, 48, 192),
                         guessed_axes("x", run_shapes(settings.shapes, ["x"]), sidecar))]
    gpu = {"device_id": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
           "memory_bytes": 80 << 30, "driver_version": "580.65.06", "max_sm_clock_mhz": 1980}
    return {
        "tensorrt": sidecar["tensorrt"],
        "cuda": {"cuda_runtime": 12080, "cuda_driver": 13000},
        "gpus_before_timed_pass": [{**gpu, "sm_clock_mhz": 1755}],
        "gpus_after_timed_pass": [{**gpu, "sm_clock_mhz": 1980}],
        "plan": {"file": settings.plan.name, "bytes": 1 << 20, "build": {"model": MODEL}},
        "settings": {"warmup": settings.warmup, "profile_iterations": settings.profile_iterations,
                     "layer_profile": settings.layer_profile},
        "clock_marks": [{"label": "capture_start", "monotonic_ns": 5,
                         "text": CLOCK_MARK.format(ns=5, label="capture_start")}],
        "nvtx_domain": "gpuprof",
        "allocator_peak_bytes": 15 << 20,
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
    return profile_from_results(TrtCapture(out, built, sqlite), config)


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
    _assert_stage_medians_match_raw_rows(profile.iterations, latency.notes[1])
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
    _assert_layer_ratio_matches_raw_rows(profile, notes)
    assert report.section("reconcile") is None  # no nsys kernels to reconcile with

    files = dict(zip(report.section("files").table["file"], report.section("files").table["content"]))
    assert files["trt_run/"].startswith("the TensorRT runner's own output")
    if "memory.png" in files:
        assert files["memory.png"] == "memory over time: TensorRT allocator"
    assert "onnxruntime_profile.json" not in files and "onnxruntime_profile.json" not in outputs.written

    text = _all_text(report) + (tmp_path / "report.md").read_text()
    for wording in ORT_WORDING:
        assert wording not in text, wording
    from gpuprof.render.machine import machine_key

    written = json.loads((tmp_path / "report.json").read_text())["facts"]
    assert written == {machine_key(k): v for k, v in facts.items()}


def _us(ns: float) -> str:
    return f"{ns / 1e3:,.3f} µs"


def _assert_stage_medians_match_raw_rows(iterations, note: str) -> None:
    """The latency note's medians from the raw rows with ``statistics``: -1 is "not recorded"
    and left out; the host clock is end - start. The rows are such that the usual wrong
    formulas (the mean, one middle value, counting the -1 rows) would read differently."""
    recorded = {}
    for column in ("h2d_ns", "compute_ns", "d2h_ns"):
        values = [int(v) for v in iterations[column]]
        recorded[column] = statistics.median(v for v in values if v >= 0)
        valid = [v for v in values if v >= 0]
        for wrong in (statistics.median(values), statistics.fmean(valid),
                      statistics.median_low(valid), statistics.median_high(valid)):
            assert _us(wrong) != _us(recorded[column]), column
    assert (f"Median per iteration (CUDA events): H2D copies {_us(recorded['h2d_ns'])}, inference "
            f"{_us(recorded['compute_ns'])}, D2H copies {_us(recorded['d2h_ns'])}") in note
    host = [int(e) - int(s) for s, e in zip(iterations["start_ns"], iterations["end_ns"], strict=True)]
    assert len(host) % 2 == 0
    for wrong in (statistics.fmean(host), statistics.median_low(host), statistics.median_high(host)):
        assert _us(wrong) != _us(statistics.median(host))
    assert f"median of {_us(statistics.median(host))}" in note


def _assert_layer_ratio_matches_raw_rows(profile, notes: str) -> None:
    """Layer times over inference time from the raw rows: the median over profiled iterations
    of their summed layer times, over the median recorded compute time of the timed pass."""
    sums: dict[int, int] = defaultdict(int)
    per_layer: dict[str, list[int]] = defaultdict(list)
    for row in profile.layer_timings.itertuples():
        sums[int(row.iteration)] += int(row.duration_ns)
        per_layer[str(row.layer)].append(int(row.duration_ns))
    computes = [int(v) for v in profile.iterations["compute_ns"]]
    compute = statistics.median(v for v in computes if v >= 0)
    ratio = statistics.median(sums.values()) / compute
    assert len(sums) % 2 == 0
    assert f"Layer times sum to {ratio:.2f}x the timed pass's median inference time" in notes
    assert (f"median per iteration {statistics.median(sums.values()) / 1e3:,.1f} vs "
            f"{compute / 1e3:,.1f} µs") in notes
    for wrong in (statistics.fmean(sums.values()) / compute,
                  sum(statistics.median(v) for v in per_layer.values()) / compute,
                  statistics.median(sums.values()) / statistics.median(computes)):
        assert f"{wrong:.2f}" != f"{ratio:.2f}"


def test_tensorrt_memory_phases_match_plain_python(tmp_path):
    """The memory section on the TensorRT allocator's events, recomputed as the ONNX Runtime
    run's is (``test_engine_report_crosscheck``): phase blocks, times from the run's start,
    use before and peak; and the peak note."""
    profile = _trt_profile(tmp_path)
    events = profile.memory_events
    assert {str(s) for s in events["source"]} == {"trt_allocator"}
    section = build_engine_report(Run.of(profile)).section("memory")
    zero = _run_start(profile)
    expected = [(phase, (start - zero) / 1e6, (end - start) / 1e6, before / MIB, peak / MIB)
                for _, _, phase, start, end, before, peak in _phase_blocks(events)]
    table = section.table
    got = list(zip(table["phase"], table["start (ms)"], table["duration (ms)"],
                   table["at start (MiB)"], table["peak (MiB)"], strict=True))
    assert [g[0] for g in got] == ["deserialize", "context_creation", "shape_change", "inference",
                                   "shape_change", "inference", "teardown"]
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == theirs[0] and mine[1:] == pytest.approx(theirs[1:], rel=1e-9)
    used, peak, peak_at = 0, None, None
    for time_ns, _, change in sorted((int(e.time_ns), i, int(e.bytes))
                                     for i, e in enumerate(events.itertuples())):
        used += change
        if peak is None or used > peak:
            peak, peak_at = used, time_ns
    note = next(n for n in section.notes if n.startswith("Peak TensorRT allocator"))
    assert f"{peak / MIB:,.1f} MiB" in note and f" at {(peak_at - zero) / 1e6:,.3f} ms" in note
    assert "phase 'inference'" in note


def test_tensorrt_report_without_layer_pass(tmp_path):
    profile = _trt_profile(tmp_path, layer_profile=False)
    report = build_engine_report(Run.of(profile))
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
    report = build_engine_report(Run.of(profile))
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


@pytest.mark.parametrize("given, build, expected", [
    ({}, {}, [0, 2, 3]),
    ({"x": (1, 3, 48, 192)}, {}, []),
    ({"": (1, 3, 48, 192)}, {}, []),  # a lone --shapes value names the only input
    ({}, {"shapes": {"x": (1, 3, 48, 192)}}, []),
    ({}, {"shapes": {"": (1, 3, 48, 192)}}, []),
    ({}, {"opt_shapes": {"x": (1, 3, 48, 192)}}, []),
])
def test_guessed_axes_follow_the_build(given, build, expected):
    """The build records the axes its default profile guessed (``shape_profile``, as
    ``build_engine`` writes the sidecar); the run reports them unless its own --shapes names
    the input (``run_shapes``, as the runner applies them)."""
    if not CLS.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not fetched (python tools/fetch_models.py)")
    _, source, guessed = shape_profile(CLS, {"x": (-1, 3, -1, -1)}, BuildOptions(**build))
    assert source == ("default" if not build else "given")
    sidecar = {"guessed_axes": guessed}
    assert guessed_axes("x", run_shapes(given, ["x"]), sidecar) == expected
