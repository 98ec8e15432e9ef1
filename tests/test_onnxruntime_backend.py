"""The ONNX Runtime backend: profile parsing, error lines, and real runs on real models."""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import threading
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from gpuprof.analyze import latency, layer_times, stats
from gpuprof.capture.ort import OrtRunConfig
from gpuprof.capture.ort.fallback import choose_backend
from gpuprof.capture.ort.session import clean_message
from gpuprof.capture.trt.device import tensorrt_unavailable_reason
from gpuprof.errors import BadInputError, CaptureError, MissingDependencyError, NoDataError
from gpuprof.ingest.onnxruntime_profile import parse_events, read_events
from gpuprof.pipeline.engine_run import run_onnxruntime

REPO = Path(__file__).resolve().parents[1]
PHASES = ["baseline", "load", "warmup", "timed", "release", "profile_load", "profiled", "done"]
# Summed node times may exceed ORT's run time only by rounding (each node rounded to 1 us) and
# must cover at least half of it (the rest is the executor's own work between nodes).
COVERAGE_MIN_PCT = 50.0


def _real(name: str) -> Path:
    path = REPO / "models" / name
    if not path.exists():
        pytest.skip(f"{name} not fetched (python tools/fetch_models.py --tests)")
    return path


def _small_run(**changes) -> OrtRunConfig:
    base = OrtRunConfig(model=_real("yolov8n_320.onnx"), iterations=6, warmup=1,
                        profile_iterations=2, shapes={"images": (1, 3, 160, 160)})
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def yolo_run():
    return run_onnxruntime(_small_run())


# -- profile parsing (synthetic events of ORT's real shape) -------------------------------

def _node(name, ts, dur, op="Conv"):
    return {"cat": "Node", "ph": "X", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "provider": "CPUExecutionProvider"}}


def _session(name, ts, dur):
    return {"cat": "Session", "ph": "X", "name": name, "ts": ts, "dur": dur, "args": {}}


def test_parse_assigns_nodes_to_runs_and_skips_warmup():
    events = [_session("model_loading_uri", 0, 50),
              _session("model_run", 100, 30), _node("a", 105, 10), _node("b", 116, 12, "Relu"),
              _session("SequentialExecutor::Execute", 102, 27),
              _session("model_run", 200, 40), _node("a", 205, 20), _node("b", 226, 11, "Relu"),
              {"cat": "Node", "ph": "X", "name": "a_fence_before", "ts": 204, "dur": 0, "args": {}},
              _session("model_run", 300, 40), _node("a", 305, 21), _node("b", 327, 9, "Relu")]
    parsed = parse_events(events, offset_ns=1_000_000, skip_runs=1)
    lt = parsed.layer_timings
    assert lt["iteration"].tolist() == [0, 0, 1, 1]
    assert lt["layer"].tolist() == ["a", "b", "a", "b"]
    assert lt["layer_type"].tolist() == ["Conv", "Relu", "Conv", "Relu"]
    assert lt["duration_ns"].tolist() == [20_000, 11_000, 21_000, 9_000]
    assert lt["start_ns"].iloc[0] == 205_000 + 1_000_000
    assert parsed.runs["run_ns"].tolist() == [40_000, 40_000]
    assert parsed.runs["nodes_ns"].tolist() == [31_000, 30_000]
    assert parsed.providers == {"CPUExecutionProvider": 4}


def test_parse_without_nodes_is_no_data():
    with pytest.raises(NoDataError):
        parse_events([_session("model_run", 0, 10)])


def test_read_events_rejects_non_profiles(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(BadInputError, match="not an ONNX Runtime profile"):
        read_events(bad)
    bad.write_text('{"traceEvents": []}')
    with pytest.raises(BadInputError, match="not a JSON list"):
        read_events(bad)


def test_clean_message_drops_ort_prefixes():
    raw = ("[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/graph/model.cc:256 "
           "onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&) "
           "Unsupported model IR version: 14, max supported IR version: 13\n")
    assert clean_message(raw) == ("FAIL", "Unsupported model IR version: 14, max supported IR version: 13")


# -- backend choice -----------------------------------------------------------------------

def test_choose_backend_explicit_onnxruntime():
    assert choose_backend("onnxruntime")[0] == "onnxruntime"


@pytest.mark.skipif(tensorrt_unavailable_reason() is None, reason="TensorRT can run here")
def test_auto_falls_back_with_a_reason_and_tensorrt_fails_clearly():
    backend, reason = choose_backend("auto")
    assert backend == "onnxruntime"
    assert reason == f"TensorRT not available here: {tensorrt_unavailable_reason()}"
    with pytest.raises(MissingDependencyError, match="TensorRT cannot run here") as info:
        choose_backend("tensorrt")
    assert "--backend onnxruntime" in info.value.one_line()


@pytest.mark.gpu
@pytest.mark.trt_runtime
def test_auto_chooses_tensorrt_where_it_can_run():
    assert choose_backend("auto") == ("tensorrt", None)


# -- a real run: YOLOv8n at 160x160 -------------------------------------------------------

def test_iterations_table_and_latency_summary(yolo_run):
    it = yolo_run.iterations
    assert len(it) == 6 and it["iteration"].tolist() == list(range(6))
    assert (it["latency_ns"] == it["end_ns"] - it["start_ns"]).all()
    assert (it["start_ns"].diff().dropna() > 0).all() and (it["source"] == "onnxruntime").all()
    summary = latency.latency_summary(it)
    values = it["latency_ns"].to_numpy(dtype=float)
    for q in stats.DEFAULT_PERCENTILES:
        assert summary[stats.percentile_label(q)] == pytest.approx(np.percentile(values, q))
    assert summary["mean"] == pytest.approx(values.mean()) and summary["count"] == 6
    assert "p99.9" in summary["unreliable"]


def test_layer_timings_cover_the_profiled_runs(yolo_run):
    lt, runs = yolo_run.layer_timings, pd.DataFrame(yolo_run.meta.extra["profile_runs"])
    assert sorted(lt["iteration"].unique()) == [0, 1] and len(runs) == 2
    per_iteration = lt.groupby("iteration")["layer"].apply(lambda s: sorted(map(str, s)))
    assert per_iteration[0] == per_iteration[1]  # same nodes each run
    assert (lt["source"] == "onnxruntime").all() and not lt["layer_type"].isna().any()
    cov = layer_times.coverage(lt, runs.set_index("iteration")["run_ns"])
    nodes = lt.groupby("iteration").size()
    for row in cov.itertuples():
        assert row.layers_ns <= row.run_ns + nodes[row.iteration] * 1000
        assert row.coverage_pct >= COVERAGE_MIN_PCT


def test_layer_times_are_on_the_host_clock(yolo_run):
    # The profiled pass runs after the timed pass: every layer starts after the last timed run,
    # and inside its own run's host bracket (within the stated error bound).
    clock = yolo_run.meta.clocks["onnxruntime_profile"]
    assert clock.method == "run-bracket" and 0 < clock.error_ns < 50_000_000
    lt, runs = yolo_run.layer_timings, pd.DataFrame(yolo_run.meta.extra["profile_runs"])
    assert lt["start_ns"].min() > yolo_run.iterations["end_ns"].max()
    joined = lt.merge(runs, on="iteration", suffixes=("", "_run"))
    assert (joined["start_ns"] >= joined["start_ns_run"] - clock.error_ns).all()
    assert (joined["start_ns"] + joined["duration_ns"] <= joined["end_ns"] + clock.error_ns).all()


def test_layer_table_totals(yolo_run):
    table = layer_times.layer_table(yolo_run.layer_timings)
    assert table["total_ns"].sum() == yolo_run.layer_timings["duration_ns"].sum()
    assert table["cum_pct"].iloc[-1] == pytest.approx(100.0)
    assert table["total_ns"].is_monotonic_decreasing
    types = layer_times.layer_type_table(yolo_run.layer_timings)
    assert types["total_ns"].sum() == table["total_ns"].sum()
    assert types["calls"].sum() == len(yolo_run.layer_timings)


def test_memory_events_cumsum_is_rss_with_phases(yolo_run):
    mem = yolo_run.memory_events
    assert (mem["source"] == "process_rss").all() and (mem["device_id"] == -1).all()
    markers = mem[mem["kind"] == "phase"]
    assert markers["detail"].astype(str).tolist() == PHASES[1:]
    assert (markers["bytes"] == 0).all()
    rss = mem["bytes"].cumsum()
    assert (rss > 10 * 2**20).all()  # a Python process with ORT loaded is well above 10 MiB
    assert mem["phase"].astype(str).unique().tolist() == PHASES


def test_metadata(yolo_run):
    meta = yolo_run.meta
    assert meta.tool == "onnxruntime" and meta.tool_version
    assert meta.extra["providers_used"][-1] == "CPUExecutionProvider"
    assert meta.extra["input_shapes"] == "images: 1x3x160x160 (float32)"
    assert meta.extra["iterations"] == 6 and meta.extra["warmup"] == 1
    assert meta.extra["partial"] is False and meta.sources[0].name == "yolov8n_320.onnx"
    assert "ORT_ENABLE_ALL" in meta.extra["session_settings"]
    assert not any(t.name == "gpuprof-rss" for t in threading.enumerate())


def test_saved_run_round_trips(yolo_run, tmp_path):
    from gpuprof.model import Profile

    loaded = Profile.load(yolo_run.save(tmp_path / "run.gpuprof"))
    assert len(loaded.layer_timings) == len(yolo_run.layer_timings)
    assert loaded.meta.extra["input_shapes"] == yolo_run.meta.extra["input_shapes"]


def test_auto_iterations_stop_at_the_minimum_count():
    profile = run_onnxruntime(OrtRunConfig(
        _real("ppocr_mobile_v2_cls.onnx"), iterations=None, min_iterations=4, min_seconds=0,
        warmup=0, layer_profile=False, shapes={"x": (1, 3, 48, 96)}))
    assert len(profile.iterations) == 4 and profile.layer_timings.empty
    assert "--no-layer-profile" in profile.meta.absent["layer_timings"]


def test_ort_profile_file_is_read_then_removed_unless_asked_for(tmp_path, monkeypatch):
    """Capture keeps ORT's profile only until the composer has read it into layer_timings:
    nothing is left in the temporary folder; a file asked for stays."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = OrtRunConfig(_real("ppocr_mobile_v2_cls.onnx"), iterations=3, warmup=0,
                          profile_iterations=2, profile_warmup=1, shapes={"x": (1, 3, 48, 96)})
    profile = run_onnxruntime(config)
    assert sorted(profile.layer_timings["iteration"].unique()) == [0, 1]
    assert profile.meta.clocks["onnxruntime_profile"].method == "run-bracket"
    assert list(scratch.iterdir()) == []
    kept = tmp_path / "ort.json"
    profile = run_onnxruntime(dataclasses.replace(config, raw_profile_path=kept))
    assert profile.meta.extra["raw_profile_file"] == "ort.json"
    assert isinstance(json.loads(kept.read_text()), list) and list(scratch.iterdir()) == []


# -- Ctrl-C -------------------------------------------------------------------------------

def _interrupt_at(phase_to_stop: str, after: int):
    def progress(phase, done, total):
        if phase == phase_to_stop and done >= after:
            raise KeyboardInterrupt
    return progress


def test_interrupt_in_timed_pass_keeps_what_was_captured():
    profile = run_onnxruntime(_small_run(iterations=1000), progress=_interrupt_at("timed", 1))
    assert profile.meta.extra["partial"] is True
    assert profile.meta.extra["interrupted_phase"] == "timed"
    assert 1 <= len(profile.iterations) < 1000 and profile.layer_timings.empty
    assert len(profile.memory_events) > 0
    assert not any(t.name == "gpuprof-rss" for t in threading.enumerate())


def test_interrupt_in_profiled_pass_keeps_profiled_iterations(tmp_path):
    raw = tmp_path / "ort.json"
    profile = run_onnxruntime(_small_run(profile_iterations=50, raw_profile_path=raw),
                              progress=_interrupt_at("profiled", 3))
    assert profile.meta.extra["interrupted_phase"] == "profiled"
    assert len(profile.iterations) == 6
    assert sorted(profile.layer_timings["iteration"].unique()) == [0, 1]  # 3 runs - 1 warm-up
    assert isinstance(json.loads(raw.read_text()), list)


# -- models ORT cannot run ----------------------------------------------------------------

def _save(model, tmp_path, name="m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _one_node(op, domain="", opset=17, dims=(1, 4)):
    node = helper.make_node(op, ["x"], ["y"], domain=domain, name="n0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op, domain", [("NotARealOp", ""), ("Foo", "com.example")])
def test_unsupported_operator_is_a_one_line_capture_error(tmp_path, op, domain):
    path = _save(_one_node(op, domain), tmp_path)
    with pytest.raises(CaptureError) as info:
        run_onnxruntime(OrtRunConfig(path, iterations=1, warmup=0, layer_profile=False))
    line = info.value.one_line()
    assert op in line and "\n" not in line and "[ONNXRuntimeError]" not in line
    assert "upgrade onnxruntime" in line
    assert not any(t.name == "gpuprof-rss" for t in threading.enumerate())


def test_shape_the_model_cannot_compute_is_a_run_error():
    # YOLOv8 concatenates feature maps at strides 8/16/32: 100x100 breaks that at run time.
    with pytest.raises(CaptureError, match="failed running") as info:
        run_onnxruntime(_small_run(shapes={"images": (1, 3, 100, 100)}, warmup=1))
    assert "--shapes" in info.value.one_line()


def test_shape_that_contradicts_fixed_dims_fails_before_loading():
    with pytest.raises(BadInputError, match="fixed to 3 on axis 1"):
        run_onnxruntime(_small_run(shapes={"images": (1, 4, 160, 160)}))


def test_interrupt_during_the_profile_warmup_gives_no_layers_and_no_error():
    profile = run_onnxruntime(_small_run(), progress=_interrupt_at("profiled", 1))
    assert profile.meta.extra["interrupted_phase"] == "profiled"
    assert profile.layer_timings.empty and len(profile.iterations) == 6
    assert "interrupted" in profile.meta.absent["layer_timings"]


def test_rss_sampler_reads_what_psutil_reads_and_sums_to_it():
    import psutil

    from gpuprof.capture.ort.rss import RssSampler, _rss_reader

    read = _rss_reader(os.getpid())
    assert abs(read() - psutil.Process().memory_info().rss) < 4 * 2**20  # same counter, moments apart
    with RssSampler(0.005) as sampler:
        sampler.set_phase("grow")
        # A fresh anonymous mapping with every page written is new RSS; np.ones could reuse
        # memory earlier tests left resident (glibc's mmap threshold grows after large frees).
        block = np.frombuffer(mmap.mmap(-1, 32 * 2**20), dtype=np.uint8)
        block[::4096] = 1
        sampler.sample()  # a reading inside "grow" whether or not the thread got to run
    now = read()
    table = sampler.table()
    # the cumulative sum of the deltas is the RSS: its last value is the reading at stop
    assert abs(table["bytes"].cumsum().iloc[-1] - now) < 4 * 2**20
    grew = table.loc[table["phase"] == "grow", "bytes"].sum()
    assert grew >= 24 * 2**20 and block.sum() == 32 * 2**20 // 4096
    assert not any(t.name == "gpuprof-rss" for t in threading.enumerate())


def test_token_model_with_int64_inputs_and_default_sequence_length(tmp_path):
    # Two int64 inputs sharing symbolic dims, an embedding Gather: the non-image default rule.
    table = onnx.numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed"),
             helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Unsqueeze", ["maskf", "axes"], ["mask3"], name="unsq"),
             helper.make_node("Mul", ["emb", "mask3"], ["y"], name="apply_mask")]
    axes = onnx.numpy_helper.from_array(np.array([2], dtype=np.int64), "axes")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("ids", "mask")]
    graph = helper.make_graph(nodes, "tokens", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[table, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = _save(model, tmp_path, "tokens.onnx")
    profile = run_onnxruntime(OrtRunConfig(path, iterations=3, warmup=1, profile_iterations=2,
                                           shapes={"ids": (2, 16)}))
    assert profile.meta.extra["input_shapes"] == "ids: 2x16 (int64); mask: 2x16 (int64)"
    assert {"Gather", "Mul"} <= set(profile.layer_timings["layer_type"].astype(str))
    default = run_onnxruntime(OrtRunConfig(path, iterations=1, warmup=0, layer_profile=False))
    assert default.meta.extra["inputs"][0]["shape"] == [1, 128]


# -- analysis on hand-made tables (exact numbers) -----------------------------------------

def _layers_frame():
    rows = [(0, "conv1", "Conv", 600), (0, "relu1", "Relu", 100), (0, "conv2", "Conv", 300),
            (1, "conv1", "Conv", 800), (1, "relu1", "Relu", 100), (1, "conv2", "Conv", 100)]
    return pd.DataFrame(rows, columns=["iteration", "layer", "layer_type", "duration_ns"])


def test_layer_table_exact():
    table = layer_times.layer_table(_layers_frame())
    assert table["layer"].tolist() == ["conv1", "conv2", "relu1"]
    assert table["total_ns"].tolist() == [1400, 400, 200]
    assert table["median_ns"].tolist() == [700, 200, 100]
    assert table["calls_per_iteration"].tolist() == [1.0, 1.0, 1.0]
    assert table["pct"].tolist() == pytest.approx([70.0, 20.0, 10.0])
    assert table["cum_pct"].tolist() == pytest.approx([70.0, 90.0, 100.0])
    assert layer_times.pareto(table, 2) == (2, pytest.approx(90.0))
    assert layer_times.pareto(table, 10) == (3, pytest.approx(100.0))
    assert layer_times.layers_for_share(table, 80) == 2
    types = layer_times.layer_type_table(_layers_frame())
    assert types[["layer_type", "layers", "calls", "total_ns"]].values.tolist() == [
        ["Conv", 2, 4, 1800], ["Relu", 1, 2, 200]]


def test_coverage_exact():
    cov = layer_times.coverage(_layers_frame(), pd.Series([1250, 2000], index=[0, 1]))
    assert cov["coverage_pct"].tolist() == pytest.approx([80.0, 50.0])


def test_iteration_table_exact():
    it = pd.DataFrame({"iteration": [0, 1, 2], "start_ns": [100, 250, 400],
                       "end_ns": [200, 390, 500]})
    it["latency_ns"] = it["end_ns"] - it["start_ns"]
    table = latency.iteration_table(it)
    assert table["offset_ns"].tolist() == [0, 150, 300]
    assert table["gap_ns"].tolist() == [0, 50, 10]
    assert table["vs_median"].tolist() == pytest.approx([1.0, 1.4, 1.0])
    summary = latency.latency_summary(it)
    assert summary["p50"] == 100 and summary["count"] == 3 and summary["method"] == "linear"


def test_memory_by_phase_exact():
    from gpuprof.analyze.memory_phases import memory_by_phase

    events = pd.DataFrame({
        "time_ns": [0, 1, 2, 3, 4, 5], "device_id": -1, "source": "process_rss",
        "bytes": [100, 0, 50, -20, 0, 30],
        "phase": ["baseline", "load", "load", "load", "timed", "timed"]})
    table = memory_by_phase(events)
    assert table["phase"].tolist() == ["baseline", "load", "timed"]
    assert table["start_bytes"].tolist() == [0, 100, 130]
    assert table["peak_bytes"].tolist() == [100, 150, 160]
    assert table["change_bytes"].tolist() == [100, 30, 30]


def test_sampler_is_coarser_during_the_timed_pass():
    profile = run_onnxruntime(OrtRunConfig(
        _real("ppocr_mobile_v2_cls.onnx"), iterations=None, min_seconds=0.5, warmup=0,
        layer_profile=False, shapes={"x": (1, 3, 48, 96)}, rss_timed_interval_s=0.2))
    mem = profile.memory_events
    timed = mem[(mem["phase"] == "timed") & (mem["kind"] == "sample")]
    # ~0.5 s at 200 ms: a few samples (50 at the 10 ms default); the phase's own rows excluded
    assert 1 <= len(timed) <= 8
    assert profile.meta.extra["rss_timed_interval_ms"] == 200
