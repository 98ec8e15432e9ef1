"""The profiled-run child process and its output folder.

The run itself needs a GPU and a TensorRT runtime (marked, skips here); its output format, the
loader into a Profile and the clean failure without a GPU are tested on any machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpuprof.capture.trt.allocator import AllocationLog
from gpuprof.capture.trt.profiler import LayerTimeLog
from gpuprof.capture.trt.results import load_results, write_results
from gpuprof.capture.trt.runner import CLOCK_MARK, parse_args, read_sidecar
from gpuprof.errors import BadInputError, MissingDependencyError
from tests.conftest import build_cls_engine

REPO = Path(__file__).resolve().parents[1]
CLS = REPO / "models" / "ppocr_mobile_v2_cls.onnx"


def test_parse_args_defaults_and_shapes(tmp_path):
    s = parse_args(["--plan", "a.plan", "--out", str(tmp_path), "--shapes", "x:1x3x64x64"])
    assert (s.iterations, s.warmup, s.profile_iterations, s.layer_profile) == (50, 10, 10, True)
    assert s.shapes == {"x": (1, 3, 64, 64)} and s.plan == Path("a.plan")
    s = parse_args(["--plan", "a.plan", "--out", "o", "-n", "5", "--no-layer-profile"])
    assert s.iterations == 5 and not s.layer_profile
    with pytest.raises(SystemExit):
        parse_args(["--plan", "a.plan", "--out", "o", "-n", "0"])


def _fake_run_tables() -> dict:
    """Rows as the runner produces them, from the real bookkeeping classes."""
    log = AllocationLog(clock=iter(range(100, 10_000, 100)).__next__)
    with log.in_phase("deserialize"):
        log.record_alloc(0xA, 8 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("context_creation"):
        log.record_alloc(0xB, 2 << 20, 256, 0, 0, "allocate_async")
    with log.in_phase("teardown"):
        log.record_free(0xB, 0, "deallocate_async")
        log.record_free(0xA, 0, "deallocate_async")
    layers = LayerTimeLog()
    for i in range(2):
        layers.next_iteration(i)
        layers.report("/conv1/Conv + /relu/Relu", 0.2)
        layers.report("/fc/Gemm", 0.05)
    iterations = [{"iteration": i, "start_ns": 1000 * i, "end_ns": 1000 * i + 900, "latency_ns": 800,
                   "h2d_ns": 100, "compute_ns": 600, "d2h_ns": 100, "host_latency_ns": 900,
                   "source": "cuda_events"} for i in range(3)]
    return {"memory_events": log.rows(pid=7), "iterations": iterations,
            "layer_timings": layers.rows()}


def test_results_round_trip_into_profile(tmp_path):
    meta = {"tensorrt": {"module": "tensorrt", "version": "10.13.0"},
            "gpus_before_timed_pass": [{"device_id": 0, "name": "NVIDIA H100",
                                        "compute_capability": "9.0", "memory_bytes": 80 << 30,
                                        "max_sm_clock_mhz": 1980}],
            "clock_marks": [{"label": "capture_start", "monotonic_ns": 5,
                             "text": CLOCK_MARK.format(ns=5, label="capture_start")}]}
    files = write_results(tmp_path, _fake_run_tables(), meta)
    assert sorted(f.name for f in files) == ["iterations.csv", "layer_timings.csv",
                                            "memory_events.csv", "run.json"]
    assert not list(tmp_path.glob("*.partial"))
    profile = load_results(tmp_path)
    assert profile.meta.tool == "tensorrt" and profile.meta.tool_version == "10.13.0"
    assert profile.meta.gpus[0].clock_khz == 1_980_000
    assert profile.meta.extra["clock_marks"][0]["text"] == "gpuprof-clock monotonic_ns=5 at=capture_start"
    assert "host_monotonic" in profile.meta.clocks
    mem = profile.memory_events
    assert list(mem["bytes"].cumsum()) == [8 << 20, 10 << 20, 8 << 20, 0]
    assert list(mem["phase"]) == ["deserialize", "context_creation", "teardown", "teardown"]
    assert set(mem["source"]) == {"trt_allocator"} and set(mem["pid"]) == {7}
    assert list(profile.iterations["compute_ns"]) == [600] * 3
    assert set(profile.iterations["source"]) == {"cuda_events"}
    assert profile.layer_timings["duration_ns"].tolist() == [200_000, 50_000] * 2
    assert set(profile.layer_timings["source"]) == {"iprofiler"}
    assert "kernels" not in profile.meta.absent  # only the runner's own tables are reported
    assert profile.meta.absent == {}


def test_empty_layer_table_is_reported_absent(tmp_path):
    tables = _fake_run_tables()
    tables["layer_timings"] = []
    write_results(tmp_path, tables, {"absent": {"layer_timings": "skipped (--no-layer-profile)"}})
    profile = load_results(tmp_path)
    assert profile.layer_timings.empty
    assert profile.meta.absent == {"layer_timings": "skipped (--no-layer-profile)"}


def test_load_results_rejects_other_folders(tmp_path):
    with pytest.raises(BadInputError, match="run.json"):
        load_results(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BadInputError, match="not a gpuprof TensorRT run"):
        load_results(tmp_path)


def test_read_sidecar(tmp_path):
    plan = tmp_path / "m-0123.plan"
    assert read_sidecar(plan) == {}
    plan.with_suffix(".json").write_text(json.dumps({"tensorrt": {"module": "tensorrt_rtx"}}))
    assert read_sidecar(plan)["tensorrt"]["module"] == "tensorrt_rtx"


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory) -> Path:
    return build_cls_engine(tmp_path_factory, {"x": (1, 3, 64, 64)}).plan


def _run_child(plan: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    # A child process, as under nsys; a crash there cannot take the test session down.
    return subprocess.run([sys.executable, "-m", "gpuprof.capture.trt.runner", "--plan", str(plan),
                           "--out", str(out), *extra], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=os.environ.copy())


@pytest.mark.trt
def test_runner_without_gpu_fails_with_one_line_and_no_files(small_plan, tmp_path):
    from gpuprof.capture.trt.device import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present: test_runner_on_gpu covers the run")
    done = _run_child(small_plan, tmp_path / "out", "-n", "3")
    assert done.returncode in (3, 4), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "cuda" in lines[0].lower()
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
@pytest.mark.trt_runtime
def test_runner_on_gpu(small_plan, tmp_path):
    done = _run_child(small_plan, tmp_path / "out", "-n", "10", "--warmup", "3",
                      "--profile-iterations", "3")
    assert done.returncode == 0, done.stderr
    profile = load_results(tmp_path / "out")
    assert len(profile.iterations) == 10
    assert (profile.iterations["latency_ns"] > 0).all()
    assert set(profile.memory_events["phase"]) >= {"deserialize", "context_creation", "teardown"}
    assert profile.memory_events["bytes"].sum() == 0  # everything allocated was freed
    assert set(profile.layer_timings["iteration"]) == {0, 1, 2}
    marks = profile.meta.extra["clock_marks"]
    assert [m["label"] for m in marks] == ["capture_start", "capture_stop"]
    extra = profile.meta.extra  # how the run measured, for the report (runner.run_facts)
    assert (extra["iterations"], extra["warmup"], extra["profile_iterations"]) == (10, 3, 3)
    assert extra["layer_profiler"]["enqueue_emits_profile"] is False
    assert extra["inputs"][0]["shape"] == [1, 3, 64, 64] and extra["input_shapes"].startswith("x: 1x3x64x64")


@pytest.mark.trt
def test_pipeline_without_gpu_raises_capture_error(small_plan, tmp_path):
    from gpuprof.capture.trt.device import gpu_present, tensorrt_unavailable_reason
    from gpuprof.capture.trt.options import BuildOptions
    from gpuprof.capture.trt.pipeline import TrtRunConfig
    from gpuprof.errors import CaptureError
    from gpuprof.pipeline.engine_run import run_tensorrt

    if gpu_present():
        pytest.skip("a GPU is present: test_pipeline_on_gpu covers the run")
    assert tensorrt_unavailable_reason() is not None
    config = TrtRunConfig(CLS, tmp_path / "out", BuildOptions(shapes={"x": (1, 3, 64, 64)}),
                          iterations=3, cache_dir=small_plan.parent)
    with pytest.raises((CaptureError, MissingDependencyError)) as info:
        run_tensorrt(config)
    assert "Error:" in info.value.one_line() or "cuda" in info.value.one_line().lower()
    assert not list((tmp_path / "out").glob("*.csv"))


@pytest.mark.gpu
@pytest.mark.trt_runtime
def test_pipeline_on_gpu(small_plan, tmp_path):
    from gpuprof.capture.trt.options import BuildOptions
    from gpuprof.capture.trt.pipeline import TrtRunConfig
    from gpuprof.pipeline.engine_run import run_tensorrt

    config = TrtRunConfig(CLS, tmp_path / "out", BuildOptions(shapes={"x": (1, 3, 64, 64)}),
                          iterations=5, warmup=2, profile_iterations=2, cache_dir=small_plan.parent)
    profile = run_tensorrt(config)
    assert len(profile.iterations) == 5 and profile.meta.extra["engine"]["cache_hit"] is True
    from gpuprof.api import Run
    from gpuprof.render.engine_report import build_engine_report

    facts = build_engine_report(Run.of(profile)).facts
    assert facts["Timed pass"].startswith("5 iterations (requested: 5) after 2 warm-up; CUDA events")
    assert facts["Layer profile"].startswith("2 iterations") and "IProfiler" in facts["Layer profile"]
    assert facts["nsys"].startswith("not captured (nsys capture was not requested)")
    assert facts["Model"].startswith(CLS.name) and "GPU" in facts


def test_run_shapes_follow_the_build_rules():
    """A lone --shapes value names the only input; an unknown name is an error, not ignored."""
    from gpuprof.capture.trt.options import run_shapes
    from gpuprof.errors import BadInputError

    assert run_shapes({"": (1, 3, 224, 224)}, ["x"]) == {"x": (1, 3, 224, 224)}
    assert run_shapes({"x": (2, 3, 8, 8)}, ["x", "y"]) == {"x": (2, 3, 8, 8)}
    with pytest.raises(BadInputError, match="unknown input"):
        run_shapes({"images": (1, 3, 8, 8)}, ["x"])
    with pytest.raises(BadInputError, match="one input"):
        run_shapes({"": (1, 3, 8, 8)}, ["a", "b"])


def test_tensorrt_rtx_alone_is_not_a_runtime_for_gpus_it_does_not_target():
    """engine --backend auto must not pick TensorRT where only TensorRT-RTX is installed and
    the GPU is one it does not build for (Hopper, datacenter Blackwell, Turing): its plan
    would not load. RTX GPUs (Ampere, Ada, Blackwell RTX) are fine."""
    from gpuprof.capture.trt.device import rtx_gpu_problem

    h100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    b200 = {"name": "NVIDIA B200", "compute_capability": "10.0"}
    ada = {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
    rtx50 = {"name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}
    for gpus in ([h100], [b200], [h100, b200]):
        reason = rtx_gpu_problem(gpus)
        assert reason and "--backend onnxruntime" in reason and gpus[0]["name"] in reason
    for gpus in ([ada], [rtx50], [h100, ada], []):
        assert rtx_gpu_problem(gpus) is None
