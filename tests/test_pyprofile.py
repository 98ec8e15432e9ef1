"""gpuprof.profile() on a real ONNX Runtime model, end to end: records and pause/resume
really leave calls out (counted by the test's own loops), the summary is recomputed with numpy
on the per-inference table, the per-operator table against ONNX Runtime's own profile read as
plain JSON, the saved run reopens with the same reports, the runtime is restored on exit, and
Chrome DevTools' trace engine reads the trace."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

import gpuprof
from gpuprof.errors import BadInputError

from .conftest import CLS_MODEL

WARM_UP, PAUSED, TRACE = 3, 5, 10


def _session(ort, **kwargs):
    return ort.InferenceSession(str(CLS_MODEL), providers=["CPUExecutionProvider"], **kwargs)


def _feeds(session):
    rng = np.random.default_rng(0)
    return {session.get_inputs()[0].name: rng.random((1, 3, 48, 192), dtype=np.float32)}


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    if not CLS_MODEL.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not found (run tools/fetch_models.py)")
    import onnxruntime as ort

    out = tmp_path_factory.mktemp("profile") / "trace.json"
    with gpuprof.profile(output=out, ort_nodes=True) as prof:
        session = _session(ort)
        feeds = _feeds(session)
        with prof.record("warm up"):
            for _ in range(WARM_UP):
                session.run(None, feeds)
        prof.pause()
        for _ in range(PAUSED):
            session.run(None, feeds)
        prof.resume()
        with prof.record("trace"):
            for _ in range(TRACE):
                session.run(None, feeds)
    return prof


def test_records_label_calls_and_pause_leaves_calls_out(profiled):
    table = profiled.inferences()
    assert Counter(table["record"]) == {"warm up": WARM_UP, "trace": TRACE}
    assert list(table["record"]) == ["warm up"] * WARM_UP + ["trace"] * TRACE  # call order
    assert profiled.run.meta.extra["calls_left_out_paused"] == PAUSED
    assert set(table["runtime"]) == {"onnxruntime"}
    # every call lies inside its record on the real clock
    spans = profiled.run.nvtx_ranges.set_index("text")
    for row in table.itertuples():
        span = spans.loc[row.record]
        assert span.start_ns <= row.start_ns and row.start_ns + row.latency_ns <= span.end_ns


def test_summary_is_numpy_on_the_per_inference_table(profiled):
    latency = profiled.inferences()["latency_ns"].to_numpy()
    summary = profiled.summary()["latency_ns"]
    assert summary["count"] == len(latency) == WARM_UP + TRACE
    assert summary["min"] == latency.min() and summary["max"] == latency.max()
    assert summary["mean"] == pytest.approx(latency.mean())
    for name, q in [("median", 50), ("p90", 90), ("p95", 95), ("p97", 97), ("p99", 99),
                    ("p99.9", 99.9)]:
        assert summary[name] == pytest.approx(np.percentile(latency, q, method="linear")), name
    attrs = profiled.summary().attrs
    assert attrs["n"] == len(latency) and attrs["percentile_method"] == "linear"
    in_ms = profiled.summary("ms")["latency_ms"]
    assert in_ms["p97"] == pytest.approx(summary["p97"] / 1e6)


def _nodes_per_run_from_ort(tmp_path) -> Counter:
    """One run of a session ONNX Runtime profiles for the test, read as plain JSON."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "own")
    session = _session(ort, sess_options=options)
    session.run(None, _feeds(session))
    events = json.loads(open(session.end_profiling()).read())
    return Counter(e["args"]["op_name"] for e in events
                   if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"))


def test_operators_count_only_kept_runs_and_average_their_nodes(profiled, tmp_path):
    per_run = _nodes_per_run_from_ort(tmp_path)
    operators = profiled.operators().set_index("name")
    kept = WARM_UP + TRACE
    assert operators["count"].to_dict() == {op: n * kept for op, n in per_run.items()}
    durations = defaultdict(list)  # plain Python over the same node rows
    for row in profiled.run.layer_timings.itertuples():
        durations[row.layer_type].append(row.duration_ns)
    for op, values in durations.items():
        assert operators.loc[op, "average_elapsed_ns"] == pytest.approx(sum(values) / len(values))
    assert list(operators["average_elapsed_ns"]) == sorted(operators["average_elapsed_ns"], reverse=True)


def test_cpu_operators_and_executions_agree_with_the_nodes(profiled):
    cpu = profiled.cpu_operators()
    assert len(cpu) == len(profiled.run.layer_timings)  # CPU provider only here
    first = cpu[cpu["inference"] == 0]
    assert list(first["operator_index"]) == list(range(len(first)))
    executions = profiled.executions().set_index("inference")
    node_sums = profiled.run.layer_timings.groupby("iteration")["duration_ns"].sum()
    assert executions["operators_ns"].astype("int64").to_dict() == node_sums.to_dict()
    assert (executions["operators_ns"] <= executions["latency_ns"]).all()  # nodes inside the call
    assert executions["gpu_ns"].isna().all()  # no CUDA events without a GPU


def test_saved_run_reopens_with_the_same_reports(profiled):
    assert profiled.saved.exists() and profiled.saved.name == "trace.gpuprof"
    run = gpuprof.load(profiled.saved)
    for report in ("inferences", "executions", "operators", "cpu_operators", "frame"):
        assert getattr(run, report)().equals(getattr(profiled, report)()), report
    assert run.summary().equals(profiled.summary())


def test_memory_samples_carry_their_record(profiled):
    memory = profiled.run.memory_events
    rss = memory[memory["source"] == "process_rss"]
    assert rss["bytes"].sum() > 0
    assert {"warm up", "trace"} <= set(rss["phase"].astype(object))


def test_runtime_is_restored_after_the_block(profiled):
    import onnxruntime as ort

    assert "run" not in ort.InferenceSession.__dict__
    assert "__init__" in ort.InferenceSession.__dict__
    assert not hasattr(ort.InferenceSession.__init__, "__gpuprof_original__")


def test_devtools_reads_the_trace(profiled):
    from .test_chrome_trace_devtools import _summary, _written_tracks

    summary = _summary(profiled.output)
    slices, _ = _written_tracks(profiled.output)
    read = {(t["pid"], t["tid"]): t["slices"] for t in summary["tracks"]}
    for key, count in slices.items():
        assert read.get(key) == count, key
    events = json.loads(profiled.output.read_text())["traceEvents"]
    names = Counter(e["name"] for e in events if e["ph"] == "X" and e.get("cat") == "gpuprof")
    assert names == {"warm up": 1, "trace": 1}
    assert sum(1 for e in events if e["ph"] == "X" and e.get("cat") == "iteration") == WARM_UP + TRACE


# -- bad input ----------------------------------------------------------------------------

def test_output_in_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        with gpuprof.profile(output=tmp_path / "nope" / "trace.json"):
            pass


@pytest.mark.parametrize("name", ["trace.gpuprof", "."])
def test_output_that_is_a_folder_or_the_saved_run_s_name_is_a_clear_error(tmp_path, name):
    with pytest.raises(BadInputError, match="is a folder|saved run's name"):
        with gpuprof.profile(output=tmp_path / name if name != "." else tmp_path):
            pass


def test_nested_profile_is_a_clear_error(tmp_path):
    with gpuprof.profile(output=tmp_path / "a.json"):
        with pytest.raises(BadInputError, match="already active"):
            with gpuprof.profile(output=tmp_path / "b.json"):
                pass
    assert (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


def test_pause_outside_the_block_and_resume_without_pause(tmp_path, capsys):
    prof = gpuprof.profile(output=tmp_path / "t.json")
    with pytest.raises(BadInputError, match="outside"):
        prof.pause()
    with prof:
        prof.resume()
        prof.pause()
        prof.pause()
        prof.resume()
    err = capsys.readouterr().err
    assert "resume() without pause()" in err and "pause() while already paused" in err
    with pytest.raises(BadInputError, match="unknown time unit"):
        prof.summary("minutes")


def test_reports_before_the_block_ends_are_a_clear_error(tmp_path):
    with gpuprof.profile(output=tmp_path / "t.json") as prof:
        with pytest.raises(BadInputError, match="once its 'with' block has ended"):
            prof.summary()


def test_each_thread_s_calls_get_that_thread_s_record(tmp_path):
    """Records on two threads overlap in time; a call belongs to its own thread's record."""
    import threading

    import onnxruntime as ort

    session = _session(ort)
    feeds = _feeds(session)
    both_open = threading.Barrier(2)

    def work(prof, label: str, calls: int) -> None:
        with prof.record(label):
            both_open.wait(timeout=30)
            for _ in range(calls):
                session.run(None, feeds)
            both_open.wait(timeout=30)

    with gpuprof.profile(output=tmp_path / "t.json") as prof:
        threads = [threading.Thread(target=work, args=(prof, "a", 3)),
                   threading.Thread(target=work, args=(prof, "b", 4))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    table = prof.inferences()
    assert Counter(table["record"]) == {"a": 3, "b": 4}
    assert table.groupby("record")["thread"].nunique().to_dict() == {"a": 1, "b": 1}


def test_a_runtime_without_the_entry_point_is_a_warning(tmp_path, capsys):
    """Another version's API (here a real module without the client class): a warning, and
    the profile goes on."""
    import tritonclient.utils

    from gpuprof.capture.pyprofile.recorder import Recorder
    from gpuprof.capture.pyprofile.triton_hook import TritonHook

    recorder = Recorder()
    TritonHook(recorder).install("tritonclient.http", tritonclient.utils)
    assert recorder.warnings == ["tritonclient.http has no InferenceServerClient; its calls are "
                                 "not captured"]
    assert "warning" in capsys.readouterr().err


def test_a_session_the_program_profiles_itself_keeps_its_own_file(tmp_path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "mine")
    with gpuprof.profile(output=tmp_path / "t.json", ort_nodes=True) as prof:
        session = _session(ort, sess_options=options)
        session.run(None, _feeds(session))
    own = json.loads(open(session.end_profiling()).read())  # still the program's to end
    assert any(e.get("cat") == "Node" for e in own)
    assert len(prof.inferences()) == 1 and prof.operators().empty
    assert "ort_nodes" in prof.run.meta.absent["layer_timings"]


def test_report_numbers_recomputed_in_plain_python(profiled):
    """What `gpuprof run` prints for a run: per record, per operator and the memory peak."""
    from itertools import accumulate

    from gpuprof.render.profile_report import profile_report

    report = profile_report(profiled.run)
    calls = profiled.inferences()
    records = report.section("records").table.set_index("record")
    for label, group in calls.groupby("record"):
        latency = group["latency_ns"].to_numpy()
        row = records.loc[label]
        assert row["inferences"] == len(latency)
        assert row["mean (µs)"] == round(latency.mean() / 1000, 1)
        for q in (50, 90, 99):
            assert row[f"p{q} (µs)"] == round(np.percentile(latency, q) / 1000, 1)
    durations = defaultdict(list)
    for row in profiled.run.layer_timings.itertuples():
        durations[row.layer_type].append(row.duration_ns)
    operators = report.section("operators").table.set_index("operator")
    for op, values in durations.items():
        assert operators.loc[op, "count"] == len(values)
        assert operators.loc[op, "average (µs)"] == round(sum(values) / len(values) / 1000, 2)
        assert operators.loc[op, "total (ms)"] == round(sum(values) / 1e6, 3)
    rss = profiled.run.memory_events
    rss = rss[rss["source"] == "process_rss"].sort_values("time_ns", kind="stable")
    peak = max(accumulate(int(b) for b in rss["bytes"]))
    memory = report.section("memory").table.set_index("memory")
    assert memory.loc["host (process_rss)", "peak (MiB)"] == round(peak / 2**20, 1)


def test_records_joined_with_an_nsys_export_get_their_kernels():
    """`gpuprof run --nsys`: the records carry no nsys thread id of their own; joined with the
    export they take it, and the GPU time per record equals the export's own attribution of
    the same ranges. Real export: its 50 ranges of the "default" domain play the records."""
    from gpuprof.align.program_nsys import join_nsys
    from gpuprof.api import Run
    from gpuprof.ingest.nsys import read_nsys
    from gpuprof.model import Profile
    from gpuprof.render.profile_report import profile_report

    from .conftest import fixture_path

    export = fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite")
    exported = read_nsys(export)
    ranges = exported.nvtx_ranges
    own = ranges[ranges["domain"] == "default"].assign(domain="gpuprof", global_tid=-1)
    joined = Run.of(join_nsys(Profile(tables={"nvtx_ranges": own}), exported, "gpuprof"))
    expected = gpuprof.load(export).gpu_time_by_range("default").set_index("name")
    got = joined.gpu_time_by_range("gpuprof").set_index("name")
    assert expected["total_ns"].sum() > 0
    assert got["total_ns"].to_dict() == expected["total_ns"].to_dict()
    assert got["calls"].to_dict() == expected["calls"].to_dict()
    section = profile_report(joined).section("gpu").table.set_index("record")
    for name, total in expected["total_ns"].items():
        assert section.loc[name, "GPU total (ms)"] == round(total / 1e6, 3)


def test_io_binding_runs_are_captured_too(tmp_path):
    import onnxruntime as ort

    def bound(session):
        (name, value), = _feeds(session).items()
        binding = session.io_binding()
        binding.bind_cpu_input(name, value)
        binding.bind_output(session.get_outputs()[0].name)
        return binding

    session = _session(ort)
    with gpuprof.profile(output=tmp_path / "t.json", ort_nodes=True) as prof:
        fresh = _session(ort)  # created inside: ORT profiles its nodes
        fresh.run_with_iobinding(bound(fresh))
        session.run_with_iobinding(bound(session))
        with pytest.raises(ValueError):  # another session's binding: ORT refuses, no run
            fresh.run_with_iobinding(bound(session))
        fresh.run(None, _feeds(fresh))
    assert len(prof.inferences()) == 3
    assert prof.run.meta.extra["calls_that_raised"] == 1
    # fresh's two runs matched to ORT's profile in order, the failed call not among them
    assert sorted(set(prof.run.layer_timings["iteration"])) == [0, 2]
    assert "run_with_iobinding" not in ort.InferenceSession.__dict__
