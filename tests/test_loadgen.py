"""Load-test logic without a server: ranges, shapes, input JSON, stability, CSV layout.

The CSV column names are checked against perf_analyzer's own words in real logs from
``../shared/fixtures/perf_analyzer`` (the -f column names it prints as "p50 latency", ...).
"""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pandas as pd
import pytest

from gpuprof.analyze import perf
from gpuprof.capture.loadgen.inputs import (
    ModelInfo,
    TensorInfo,
    make_payloads,
    read_input_json,
    request_shapes,
)
from gpuprof.capture.loadgen.options import LoadSpec, parse_range, parse_shape
from gpuprof.capture.loadgen.server_api import cumulative_stats, stats_delta
from gpuprof.capture.loadgen.transport import Record, split_url
from gpuprof.capture.loadgen.windows import RecordCursor
from gpuprof.capture.triton_repo import config_pbtxt, model_name_for, onnx_io
from gpuprof.errors import BadInputError
from gpuprof.pipeline.sweep import level_table
from gpuprof.render import perf_report
from tests.conftest import REPO, fixture_path

PA_HEADER = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
             "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
             "p50 latency,p90 latency,p95 latency,p99 latency")


def _info(max_batch=0, shape=(-1, 3, -1, -1), datatype="FP32"):
    return ModelInfo("m", "1", (TensorInfo("x", datatype, shape),),
                     (TensorInfo("y", "FP32", (-1, 2)),), max_batch)


# --- options -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [("1", [1]), ("1:4", [1, 2, 3, 4]),
                                           ("2:8:2", [2, 4, 6, 8]), ("1:2:1", [1, 2])])
def test_parse_range(text, expected):
    assert parse_range(text) == expected


def test_parse_range_float_rates():
    assert parse_range("50:100:25", integer=False) == [50.0, 75.0, 100.0]


@pytest.mark.parametrize("bad", ["", "0:2", "3:1", "1:2:0", "a:b", "1:2:3:4", "1.5:2"])
def test_parse_range_rejects(bad):
    with pytest.raises(BadInputError):
        parse_range(bad)


def test_parse_shape_keeps_colons_in_names():
    assert parse_shape("x:1,3,64,64") == ("x", (1, 3, 64, 64))
    assert parse_shape("ns:input:0:1,2") == ("ns:input:0", (1, 2))
    with pytest.raises(BadInputError):
        parse_shape("x1,3")


def test_spec_validate_rejects_unknown_modes():
    with pytest.raises(BadInputError):
        LoadSpec(model="m", protocol="udp").validate()
    with pytest.raises(BadInputError):
        LoadSpec(model="m", measurement_mode="forever").validate()


def test_split_url():
    assert split_url("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert split_url("http://localhost:9/") == ("localhost", 9)
    with pytest.raises(BadInputError):
        split_url("localhost")


# --- shapes and input data -----------------------------------------------------------------

def test_variable_dims_need_shape_like_perf_analyzer():
    with pytest.raises(BadInputError, match="needs its shape fully defined"):
        request_shapes(_info(), {}, 1)
    assert request_shapes(_info(), {"x": (1, 3, 48, 192)}, 1) == {"x": (1, 3, 48, 192)}


def test_shape_must_fit_fixed_dims_and_known_names():
    with pytest.raises(BadInputError, match="does not fit"):
        request_shapes(_info(), {"x": (1, 4, 48, 192)}, 1)
    with pytest.raises(BadInputError, match="unknown input"):
        request_shapes(_info(), {"x": (1, 3, 8, 8), "z": (1,)}, 1)


def test_batching_models_get_the_batch_dim_from_b():
    info = _info(max_batch=8, shape=(-1, 3, 8, 8))
    assert request_shapes(info, {}, 4) == {"x": (4, 3, 8, 8)}
    with pytest.raises(BadInputError, match="does not support batching"):
        request_shapes(_info(), {"x": (1, 3, 8, 8)}, 2)


def test_random_and_zero_payloads_have_the_right_dtype():
    shapes = {"x": (1, 3, 4, 4)}
    rnd = make_payloads(_info(), shapes, "random")[0]["x"]
    assert rnd.dtype == np.float32 and rnd.shape == (1, 3, 4, 4)
    assert not make_payloads(_info(), shapes, "zero")[0]["x"].any()


def test_input_json_perf_analyzer_format(tmp_path):
    doc = {"data": [{"x": list(range(6))},
                    {"x": {"content": [1.5] * 4, "shape": [1, 1, 2, 2]}}]}
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    info = _info(shape=(1, 1, -1, -1))
    payloads = read_input_json(path, info, {"x": (1, 1, 2, 3)})
    assert payloads[0]["x"].shape == (1, 1, 2, 3) and payloads[0]["x"][0, 0, 1, 2] == 5
    assert payloads[1]["x"].shape == (1, 1, 2, 2) and payloads[1]["x"].dtype == np.float32


def test_input_json_errors_are_clear(tmp_path):
    info = _info(shape=(1, 2))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"x": [1, 2, 3]}]}))
    with pytest.raises(BadInputError, match="has 3 values"):
        read_input_json(bad, info, {"x": (1, 2)})
    bad.write_text(json.dumps({"data": [{"other": [1, 2]}]}))
    with pytest.raises(BadInputError, match="lacks input"):
        read_input_json(bad, info, {"x": (1, 2)})
    with pytest.raises(BadInputError, match="not found"):
        read_input_json(tmp_path / "none.json", info, {"x": (1, 2)})


def test_input_json_batches_repeat_the_entry(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"data": [{"x": [1, 2]}]}))
    info = _info(max_batch=4, shape=(-1, 2))
    assert read_input_json(path, info, {"x": (3, 2)})[0]["x"].shape == (3, 2)


# --- statistics, windows, stability ---------------------------------------------------------

def _stats(queue_ns, infer_ns, count):
    stage = lambda ns: {"count": count, "ns": ns}  # noqa: E731
    return {"model_stats": [{"name": "m", "version": "1", "inference_count": count,
                             "execution_count": count,
                             "inference_stats": {"success": stage(0), "fail": stage(0),
                                                 "queue": stage(queue_ns),
                                                 "compute_input": stage(0),
                                                 "compute_infer": stage(infer_ns),
                                                 "compute_output": stage(0)}}]}


def test_stats_delta_and_per_request_averages():
    before = cumulative_stats(_stats(1000, 10_000, 10))
    after = cumulative_stats(_stats(3000, 50_000, 30))
    avg = perf.server_averages(stats_delta(before, after))
    assert avg["server_queue_ns"] == 100 and avg["server_compute_infer_ns"] == 2000


def test_grpc_stats_with_string_numbers():
    raw = _stats(0, 0, 0)
    raw["model_stats"][0]["inference_stats"]["queue"] = {"count": "4", "ns": "4000"}
    assert cumulative_stats(raw)["queue"] == (4, 4000)


def _records(latencies_ns, start=1_000):
    out, t = [], start
    for i, lat in enumerate(latencies_ns):
        out.append(Record(i, 0, t, t + 10, t + lat - 10, t + lat, None))
        t += lat
    return out


def test_window_metrics_from_records():
    frame = perf.records_frame(_records([1_000_000] * 100), "p-")
    m = perf.window_metrics(frame, 100_000_000, {}, batch_size=2)
    assert m["samples"] == 100 and m["throughput_infer_s"] == pytest.approx(2000)
    assert m["latency_p50_ns"] == 1_000_000 and m["send_ns"] == 10 and m["receive_ns"] == 10
    assert frame["request_id"].iloc[3] == "p-3"


def test_errors_are_counted_but_not_timed():
    recs = _records([1000] * 3) + [Record(9, 0, 5, 6, 6, 6, "HTTP 400: bad")]
    m = perf.window_metrics(perf.records_frame(recs), 1_000_000, {})
    assert m["errors"] == 1 and m["samples"] == 3


def test_stability_rule():
    win = lambda tput, lat: {"throughput_infer_s": tput, "latency_mean_ns": lat}  # noqa: E731
    assert perf.is_stable([win(100, 10), win(105, 10.5), win(103, 10.2)], 10)
    assert not perf.is_stable([win(100, 10), win(105, 10.5)], 10)          # fewer than 3
    assert not perf.is_stable([win(100, 10), win(125, 10.5), win(103, 10)], 10)
    assert not perf.is_stable([win(100, 10), win(100, 13), win(100, 10)], 10)
    assert not perf.is_stable([win(0, 10), win(0, 10), win(0, 10)], 10)
    assert perf.is_stable([win(50, 1), win(100, 10), win(104, 10.2), win(101, 10)], 5)


def test_the_composer_decides_stability_on_the_chosen_latency():
    """The measuring loop asks SweepMeasures, not analyze: with --percentile 95 a wobbling
    p95 is unstable though the mean is steady; without, the mean decides."""
    from gpuprof.pipeline.sweep import SweepMeasures

    steady = {"throughput_infer_s": 100.0, "latency_mean_ns": 1e6, "latency_p95_ns": 2e6}
    windows = [steady, steady | {"latency_p95_ns": 3e6}, steady]
    assert SweepMeasures(LoadSpec(model="m")).stable(windows)
    assert not SweepMeasures(LoadSpec(model="m", percentile=95)).stable(windows)
    assert SweepMeasures(LoadSpec(model="m")).counted_windows == perf.STABILITY_WINDOWS


def test_the_composer_merges_windows_as_one_pooled_window():
    """A level's result: the windows' requests pooled, durations and deltas summed."""
    from gpuprof.pipeline.sweep import SweepMeasures

    measures = SweepMeasures(LoadSpec(model="m", batch_size=2))
    a, b = _records([1_000, 3_000]), _records([2_000, 9_000, 4_000], start=50_000)
    (fa, _), (fb, _) = (measures.window(r, "p", 10**9, {"success": (len(r), 0)}) for r in (a, b))
    merged = measures.merged([fa, fb], 3 * 10**9, [{"success": (2, 0)}, {"success": (3, 0)}])
    latencies = sorted([1_000, 3_000, 2_000, 9_000, 4_000])
    assert merged["requests"] == 5 and merged["server_requests"] == 5
    assert merged["latency_p50_ns"] == latencies[2] and merged["duration_ns"] == 3 * 10**9
    assert merged["throughput_infer_s"] == pytest.approx(5 * 2 / 3)


def test_record_cursor_splits_by_completion_time():
    records = _records([10, 10, 10, 10], start=0)   # ends at 10, 20, 30, 40
    cursor = RecordCursor(records)
    assert [r.end_ns for r in cursor.take(0, 25)] == [10, 20]
    assert records == []                               # trimmed as it goes
    records.extend(_records([5], start=45))            # ends at 50
    assert [r.end_ns for r in cursor.take(25, 60)] == [30, 40, 50]


def test_network_misc_is_floored_at_zero():
    m = {"latency_mean_ns": 1000.0, "send_ns": 100.0, "receive_ns": 100.0,
         "server_queue_ns": 900.0, "server_compute_input_ns": 0.0,
         "server_compute_infer_ns": 0.0, "server_compute_output_ns": 0.0}
    assert perf.network_misc_ns(m) == 0
    m["server_queue_ns"] = 300.0
    assert perf.network_misc_ns(m) == 500


# --- CSV layout ----------------------------------------------------------------------------

def _table():
    m = perf.window_metrics(perf.records_frame(_records([2_500_700] * 50)), 125_035_000,
                            {"queue": (50, 5_000_000), "compute_input": (50, 1_000_000),
                             "compute_infer": (50, 90_000_000), "compute_output": (50, 500_000),
                             "success": (50, 0)})
    return perf.level_table([{"level": 1, "stable": True, "windows": 3, **m},
                             {"level": 2, "stable": False, "windows": 10, **m}])


def test_csv_header_is_perf_analyzers_then_extras(tmp_path):
    path = perf_report.write_perf_csv(_table(), "concurrency", tmp_path / "out.csv")
    header = path.read_text().splitlines()[0]
    assert header.startswith(PA_HEADER + ",")
    assert header.split(",")[13:] == ["p97 latency", "p99.9 latency", "Avg latency", "Samples", "Errors",
                                      "Stable"]
    rows = pd.read_csv(path)
    assert rows["Concurrency"].tolist() == [1, 2]
    assert rows["p50 latency"].iloc[0] == 2500                   # integer microseconds
    assert rows["Server Compute Infer"].iloc[0] == 1800
    assert rows["Network+Server Send/Recv"].iloc[0] == (2_500_700 - 20 - 1_930_000) // 1000


def test_request_rate_csv_starts_with_request_rate(tmp_path):
    table = _table().assign(level=[12.5, 25.0])
    path = perf_report.write_perf_csv(table, "request_rate", tmp_path / "r.csv")
    assert path.read_text().splitlines()[0].startswith("Request Rate,Inferences/Second,")
    assert pd.read_csv(path)["Request Rate"].tolist() == [12.5, 25]


def test_csv_column_names_match_real_perf_analyzer_logs():
    """perf_analyzer's log names each latency the way its CSV header does."""
    name = "NguyenTranDat__test-docker__result__throughput__triton.client.log"
    log = fixture_path("perf_analyzer", name).read_text()
    printed = set(re.findall(r"^\s+(p\d+ latency):", log, flags=re.M))
    assert printed == {"p50 latency", "p90 latency", "p95 latency", "p99 latency"}
    assert printed <= set(perf_report.PA_COLUMNS)
    # the server breakdown words of the log map onto the CSV's server columns
    for word in ("queue", "compute input", "compute infer", "compute output"):
        assert word in log and f"Server {word.title()}" in perf_report.PA_COLUMNS


def test_windows_csv(tmp_path):
    rows = [{"level": 1, "trial": i, "counted": i > 0, "start_ns": 10**9 * (i + 1),
             "run_start_ns": 0, **_table().iloc[0].to_dict()} for i in range(4)]
    path = perf_report.write_windows_csv(pd.DataFrame(rows), tmp_path / "w.csv")
    frame = pd.read_csv(path)
    assert len(frame) == 4 and frame["start_s"].tolist() == [1, 2, 3, 4]
    assert "latency_p99_9_us" in frame.columns
    assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in frame.columns)  # machine keys


# --- the model repository ------------------------------------------------------------------

def test_repository_config_from_a_real_onnx_model():
    model = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
    if not model.exists():
        pytest.skip("run tools/fetch_models.py first")
    inputs, outputs = onnx_io(model)
    assert [(t.name, t.data_type, t.dims) for t in inputs] == [("x", "TYPE_FP32", (-1, 3, -1, -1))]
    text = config_pbtxt(model_name_for(model), model, inputs, outputs)
    assert 'backend: "python"' in text and "max_batch_size: 0" in text
    assert '"save_infer_model/scale_0.tmp_1"' in text and "dims: [ -1, 2 ]" in text
    assert model_name_for("a b/c-d.v2.onnx") == "c-d.v2"


# === against a real server (one per module) ===================================================

MODEL = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
SHAPE = {"x": (1, 3, 48, 192)}


@pytest.fixture(scope="module")
def server(cls_triton_server):
    return cls_triton_server


def _spec(server, **kw) -> LoadSpec:
    base = dict(model=server.model_name, url=server.http_url, shapes=SHAPE, levels=[1],
                measurement_interval_ms=300, max_trials=3, warmup_ms=100, max_duration_s=30,
                max_requests=5000)
    return LoadSpec(**(base | kw))


@pytest.mark.triton
def test_concurrency_sweep_writes_perf_analyzer_csv(server, tmp_path):
    from gpuprof.pipeline.sweep import run_sweep

    events = []
    result = run_sweep(_spec(server, levels=[1, 2]), progress=lambda k, d: events.append(k))
    assert not result.partial and [lv.level for lv in result.levels] == [1, 2]
    table = level_table(result)
    assert (table["samples"] > 0).all() and (table["errors"] == 0).all()
    assert (table["throughput_infer_s"] > 0).all()
    # every answered request was counted by the server too (windows may cut a few at edges)
    assert (table["server_requests"] > 0).all() and (table["server_compute_infer_ns"] > 0).all()
    assert {"level", "window", "level_done"} <= set(events)
    path = perf_report.write_perf_csv(table, "concurrency", tmp_path / "out.csv")
    assert path.read_text().splitlines()[0].startswith(PA_HEADER)
    windows = result.windows_table()
    assert len(windows) == sum(len(lv.windows) for lv in result.levels)


@pytest.mark.triton
def test_grpc_and_count_windows(server):
    from gpuprof.pipeline.sweep import run_sweep

    result = run_sweep(_spec(server, url=server.grpc_url, protocol="grpc",
                             measurement_mode="count_windows", measurement_request_count=20))
    level = result.levels[0]
    assert all(w.metrics["requests"] >= 20 for w in level.windows)
    assert level.metrics["errors"] == 0 and level.metrics["server_queue_ns"] >= 0


@pytest.mark.triton
def test_poisson_request_rate(server):
    from gpuprof.pipeline.sweep import run_sweep

    result = run_sweep(_spec(server, mode="request_rate", levels=[40.0],
                             distribution="poisson", max_threads=4))
    metrics = result.levels[0].metrics
    assert metrics["samples"] > 0 and metrics["errors"] == 0
    assert (result.requests_table()["sched_ns"] > 0).all()  # every request had a due time


@pytest.mark.triton
def test_trace_joins_client_and_server_and_agrees_with_statistics(server):
    """Stats deltas and the trace's stage sums come from the same server timestamps: over a
    whole run they agree in count exactly and in time within 1 %."""
    from gpuprof.analyze import perf_trace
    from gpuprof.capture.loadgen.server_api import ServerAPI
    from gpuprof.pipeline.sweep import run_sweep

    api = ServerAPI(server.http_url)
    before = api.stats(server.model_name)
    # every request traced (1 in 1, warm-up included), so the counts can agree exactly
    result = run_sweep(_spec(server, trace=True, trace_rate=1))
    delta = stats_delta(before, api.stats(server.model_name))
    api.close()
    assert result.trace_files and result.trace_error is None
    trace = result.trace_requests
    totals = perf_trace.stage_totals(trace, result.prefix)
    for stage, (count, ns) in totals.items():
        assert count == delta[stage][0], stage
        assert ns == pytest.approx(delta[stage][1], rel=0.01, abs=20_000), stage
    joined = perf_trace.join_requests(result.requests_table(),
                                      perf_trace.server_spans(trace, result.prefix))
    assert len(joined) == result.levels[0].metrics["samples"] + sum(
        w.metrics["samples"] for w in result.levels[0].windows[:-3])
    assert perf_trace.clock_issues(joined) == 0
    assert (joined[perf_trace.SEGMENTS].sum(axis=1) == joined["client_latency_ns"]).all()
    # tracing was switched back off
    assert ServerAPI(server.http_url).trace_settings(server.model_name)["trace_level"] == ["OFF"]


@pytest.mark.triton
def test_trace_level_tensors_records_each_traced_requests_tensors(server):
    """--trace-level TIMESTAMPS,TENSORS: the trace files hold, for every traced request, its
    input and output tensors (read here as plain JSON), and the join still works."""
    from gpuprof.analyze import perf_trace
    from gpuprof.pipeline.sweep import run_sweep

    # 1 in 25: a tensor record holds the input's data as text (27,648 floats)
    result = run_sweep(_spec(server, trace=True, trace_rate=25,
                             trace_level=("TIMESTAMPS", "TENSORS")))
    assert result.trace_files and result.trace_error is None
    # without a log frequency the live server keeps its list open: close it to read it
    texts = [path.read_text().rstrip() for path in result.trace_files]
    records = [r for text in texts
               for r in json.loads(text if text.endswith("]") else text.rstrip(",") + "]")]
    stamped = {r["id"] for r in records if "timestamps" in r}
    tensors: dict[int, set] = {}
    for r in records:
        if "tensor" in r:
            tensors.setdefault(r["id"], set()).add((r["activity"], r["tensor"]["name"]))
    # the module's server keeps one trace file: ids before this run's first are earlier tests'
    assert tensors, "no tensor recorded"
    this_run = {i for i in stamped if i >= min(tensors)}
    assert set(tensors) == this_run
    for seen in tensors.values():
        assert ("TENSOR_QUEUE_INPUT", "x") in seen
        assert any(activity == "TENSOR_BACKEND_OUTPUT" for activity, _ in seen)
    joined = perf_trace.join_requests(result.requests_table(),
                                      perf_trace.server_spans(result.trace_requests,
                                                              result.prefix))
    assert len(joined) and perf_trace.clock_issues(joined) == 0


def test_trace_level_is_checked_before_any_load():
    from gpuprof.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown trace level 'BOGUS'"):
        LoadSpec(model="m", trace=True, trace_level=("BOGUS",)).validate()


@pytest.mark.triton
def test_back_to_back_traced_runs_each_collect_their_own_traces(server):
    from gpuprof.analyze import perf_trace
    from gpuprof.pipeline.sweep import run_sweep

    for _ in range(2):
        result = run_sweep(_spec(server, trace=True, url=server.grpc_url, protocol="grpc",
                                 max_trials=1, trace_rate=1))
        spans = perf_trace.server_spans(result.trace_requests, result.prefix)
        measured = result.requests_table()
        assert set(measured["request_id"]) <= set(spans["request_id"])


@pytest.mark.triton
def test_unknown_model_and_wrong_shapes_are_clear(server):
    from gpuprof.pipeline.sweep import run_sweep

    with pytest.raises(BadInputError, match="not available") as info:
        run_sweep(_spec(server, model="no_such_model"))
    assert server.model_name in info.value.hint
    with pytest.raises(BadInputError, match="does not fit"):
        run_sweep(_spec(server, shapes={"x": (1, 4, 48, 192)}))
    with pytest.raises(BadInputError, match="rejected a request"):
        run_sweep(_spec(server, shapes={"x": (1, 3, 0, 0)}))


def test_a_server_that_accepts_but_never_answers_is_one_clear_error():
    """A listener that takes the connection and says nothing (a hung server): each control
    call has a deadline, so the load test ends with one line instead of hanging."""
    import socket

    from gpuprof.capture.loadgen.server_api import ServerGone
    from gpuprof.pipeline.sweep import run_sweep

    pytest.importorskip("tritonclient.http")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ServerGone, match="cannot reach Triton") as info:
            run_sweep(LoadSpec(model="m", url=url, shapes=SHAPE, request_timeout_s=1))
    assert "\n" not in info.value.one_line()


def test_a_grpc_server_that_takes_calls_and_never_answers_is_one_clear_error():
    """gRPC has no client-wide timeout: a server that accepts each call and never answers (as
    a hung Triton does) once held `perf -i grpc` forever at its first control call."""
    from concurrent import futures

    import grpc

    from gpuprof.capture.loadgen.server_api import ServerGone
    from gpuprof.pipeline.sweep import run_sweep

    pytest.importorskip("tritonclient.grpc")
    released = threading.Event()

    def never(request, context):
        released.wait(60)
        return b""

    class Hung(grpc.GenericRpcHandler):
        def service(self, details):
            return grpc.unary_unary_rpc_method_handler(never)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Hung(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    outcome: list = []

    def load_test():
        try:
            run_sweep(LoadSpec(model="m", url=f"127.0.0.1:{port}", protocol="grpc",
                               shapes=SHAPE, request_timeout_s=1))
        except Exception as exc:  # what the caller would see
            outcome.append(exc)

    runner = threading.Thread(target=load_test, daemon=True)
    runner.start()
    runner.join(30)  # the deadline is 1 s: a hang is a hang, not a slow machine
    released.set()
    server.stop(0)
    assert not runner.is_alive(), "perf -i grpc still waits on a server that never answers"
    assert len(outcome) == 1 and isinstance(outcome[0], ServerGone), outcome
    assert "cannot reach Triton" in outcome[0].message


def test_server_down_is_one_clear_error():
    from gpuprof.capture.loadgen.server_api import ServerGone
    from gpuprof.capture.triton_server import free_port
    from gpuprof.pipeline.sweep import run_sweep

    pytest.importorskip("tritonclient.http")
    with pytest.raises(ServerGone, match="cannot reach Triton") as info:
        run_sweep(LoadSpec(model="m", url=f"127.0.0.1:{free_port()}", shapes=SHAPE))
    assert "\n" not in info.value.one_line()


@pytest.mark.triton
def test_server_dying_mid_run_keeps_partial_results(server):
    """Last test of the module: it kills the module's server."""
    import threading

    from gpuprof.pipeline.sweep import run_sweep

    killer = threading.Timer(1.5, server.stop)
    killer.start()
    try:
        result = run_sweep(_spec(server, levels=[1, 2, 3, 4], max_trials=10,
                                 stability_pct=0.001))
    finally:
        killer.cancel()
    assert result.partial and "Triton" in result.reason
    assert result.levels and result.levels[0].windows


def test_stability_on_a_percentile():
    spec = LoadSpec(model="m", percentile=95).validate()
    assert perf.stable_latency_key(spec.percentile) == "latency_p95_ns"
    with pytest.raises(BadInputError, match="not offered"):
        LoadSpec(model="m", percentile=97).validate()


def test_trace_needs_a_server_trace_file():
    from gpuprof.capture.loadgen.tracing import TraceSession
    from gpuprof.ingest.triton_trace import check_part

    class NoTraceFile:  # the trace-setting answer of a server started without a trace file
        url = "127.0.0.1:1"

        def trace_settings(self, model=None):
            return {"trace_level": ["OFF"], "trace_rate": "1000", "trace_file": ""}

    with pytest.raises(BadInputError, match="writes no trace file") as info:
        TraceSession(NoTraceFile(), "m", check_part).start()
    assert "--trace-file" in info.value.hint


def test_trace_parts_are_parsed_once_while_waiting_for_the_flush(tmp_path, monkeypatch):
    """Regression: every poll parsed every new part again. A whole part is parsed once; one
    still being written is parsed again only after it changed."""
    import time
    from types import SimpleNamespace

    from gpuprof.capture.loadgen import tracing
    from gpuprof.ingest import triton_trace

    trace_file = tmp_path / "trace.json"
    whole, growing = tmp_path / "trace.json.0", tmp_path / "trace.json.1"

    class FlushingServer:  # writes one whole part and half of another when tracing is restored
        url = "127.0.0.1:1"

        def trace_settings(self, model=None):
            return {"trace_level": ["OFF"], "trace_rate": "1000", "trace_file": str(trace_file)}

        def update_trace_settings(self, settings, model=None):
            if settings.get("trace_level") == ["OFF"]:
                whole.write_text('[{"id": 1}]')
                growing.write_text('[{"id": 2}')

    polls = []

    def poll(seconds):  # the growing part is finished after a few idle polls
        polls.append(seconds)
        if len(polls) == 4:
            growing.write_text('[{"id": 2}, {"id": 3}]')

    parsed = _count_part_parses(monkeypatch)
    monkeypatch.setattr(tracing, "time", SimpleNamespace(monotonic=time.monotonic, sleep=poll))
    session = tracing.TraceSession(FlushingServer(), "m", triton_trace.check_part).start()
    assert session.finish() == [whole, growing]
    assert len(polls) == 4
    assert parsed.count(whole.name) == 1 and parsed.count(growing.name) == 2


def _count_part_parses(monkeypatch) -> list[str]:
    """Names of the files ingest's part parser reads, in call order."""
    from gpuprof.ingest import triton_trace

    parsed: list[str] = []
    parse = triton_trace.parse_trace_part
    monkeypatch.setattr(triton_trace, "parse_trace_part",
                        lambda path, **kw: parsed.append(path.name) or parse(path, **kw))
    return parsed


def _triton_objects(trace_id: int, t0: int) -> list[dict]:
    names = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START", "COMPUTE_START",
             "COMPUTE_END", "REQUEST_END", "HTTP_SEND_START", "HTTP_SEND_END"]
    return [{"id": trace_id, "model_name": "m", "model_version": 1,
             "request_id": f"r{trace_id}"},
            *({"id": trace_id, "timestamps": [{"name": n, "ns": t0 + i * 100}]}
              for i, n in enumerate(names))]


def test_trace_parts_are_parsed_once_across_the_flush_wait_and_ingest(tmp_path, monkeypatch):
    """The records read while waiting for the flush are the ones ingest uses: the JSON of each
    part is parsed once per version of it (the part still being written twice), not again by
    the composer's read, which gives the table read_triton_trace gives for exactly these parts."""
    import shutil
    import time
    from types import SimpleNamespace

    from gpuprof.capture.loadgen import tracing
    from gpuprof.ingest import triton_trace
    from gpuprof.pipeline.sweep import read_trace_requests

    trace_file = tmp_path / "trace.json"
    stale = tmp_path / "trace.json.7"  # an earlier server run's part: same ids, not this run's
    stale.write_text(json.dumps(_triton_objects(1, 10**9)))
    first, last = tmp_path / "trace.json.0", tmp_path / "trace.json.1"
    last_text = json.dumps(_triton_objects(2, 5000) + _triton_objects(3, 9000))

    class FlushingServer:
        url = "127.0.0.1:1"

        def trace_settings(self, model=None):
            return {"trace_level": ["OFF"], "trace_rate": "1000", "trace_file": str(trace_file)}

        def update_trace_settings(self, settings, model=None):
            if settings.get("trace_level") == ["OFF"]:
                first.write_text(json.dumps(_triton_objects(1, 1000)))
                last.write_text(last_text[: len(last_text) // 2])  # still being written

    def poll(seconds):
        last.write_text(last_text)

    loads = []
    real_loads = json.loads
    monkeypatch.setattr(triton_trace, "json", SimpleNamespace(
        loads=lambda text, **kw: loads.append(len(text)) or real_loads(text, **kw),
        JSONDecoder=json.JSONDecoder, JSONDecodeError=json.JSONDecodeError))
    parsed = _count_part_parses(monkeypatch)
    monkeypatch.setattr(tracing, "time", SimpleNamespace(monotonic=time.monotonic, sleep=poll))
    session = tracing.TraceSession(FlushingServer(), "m", triton_trace.check_part).start()
    files = session.finish()
    assert files == [first, last]
    polled = (list(parsed), list(loads))
    assert polled[0] == [first.name, last.name, last.name]
    got = triton_trace.read_trace_parts(files, session.take_parsed(),
                                        open_lists=True).profile.tables["requests"]
    assert (parsed, loads) == polled  # ingest parsed nothing again
    assert sorted(got["request_id"].unique()) == ["r1", "r2", "r3"]

    monkeypatch.undo()
    by_files = tmp_path / "copies"  # the old way: exactly these parts, copied and read again
    by_files.mkdir()
    for path in files:
        shutil.copyfile(path, by_files / path.name)
    expected = triton_trace.read_triton_trace(by_files).profile.tables["requests"]
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(read_trace_requests(list(files)), expected)


class _FlushingServer:
    """The trace-setting API of a server writing to ``trace_file``: restoring the settings
    (tracing OFF) writes ``flush`` ({path: text}), as Triton flushes its last traces."""

    url = "127.0.0.1:1"

    def __init__(self, trace_file, flush: dict):
        self.trace_file, self.flush = trace_file, flush

    def trace_settings(self, model=None):
        return {"trace_level": ["OFF"], "trace_rate": "1000", "trace_file": str(self.trace_file)}

    def update_trace_settings(self, settings, model=None):
        if settings.get("trace_level") == ["OFF"]:
            for path, text in self.flush.items():
                path.write_text(text)


def _swept(tmp_path, monkeypatch, flush: dict):
    """A SweepResult after the runner collected the trace that ``flush`` writes."""
    from gpuprof.capture.loadgen import runner, tracing
    from gpuprof.ingest.triton_trace import check_part
    from gpuprof.pipeline.sweep import read_trace

    monkeypatch.setattr(tracing, "FLUSH_WAIT_S", 0.3)
    result = runner.SweepResult(LoadSpec(model="m", trace=True), None, {}, "r")
    session = tracing.TraceSession(_FlushingServer(tmp_path / "trace.json", flush), "m",
                                   check_part).start()
    runner._finish_trace(session, result)  # what the capture collects
    read_trace(result)                     # what the composer reads at once
    assert session.parsed == {} and result.trace_parsed == {}  # no raw record outlives the read
    return result


def test_a_part_still_written_at_the_deadline_is_salvaged_and_reported(tmp_path, monkeypatch):
    """Regression: at the flush deadline a part Triton was still writing was dropped without a
    word. It is read like any cut-short file: its complete objects kept, the damage reported."""
    first, last = tmp_path / "trace.json.0", tmp_path / "trace.json.1"
    last_text = json.dumps(_triton_objects(2, 5000) + _triton_objects(3, 9000))
    parsed = _count_part_parses(monkeypatch)
    result = _swept(tmp_path, monkeypatch, {first: json.dumps(_triton_objects(1, 1000)),
                                            last: last_text[:-30]})  # never finished
    assert result.trace_files == [first, last] and result.trace_error is None
    assert sorted(result.trace_requests["request_id"].unique()) == ["r1", "r2", "r3"]
    assert any(last.name in issue and "truncated" in issue for issue in result.trace_issues)
    # the whole part once; the cut one once while waiting, once salvaged by ingest
    assert parsed.count(first.name) == 1 and parsed.count(last.name) == 2


def test_a_trace_ingest_cannot_read_is_a_trace_error(tmp_path, monkeypatch):
    """Any error reading the trace (here: its only part is a Chrome trace) leaves the run's
    results and says why there is no trace, as a server gone during the flush does."""
    only = tmp_path / "trace.json.0"
    result = _swept(tmp_path, monkeypatch, {only: '{"traceEvents": []}'})
    assert result.trace_files == [only] and result.trace_requests is None
    assert "Chrome trace" in result.trace_error


def test_grpc_trace_settings_are_unified():
    from gpuprof.capture.loadgen.tracing import _plain

    grpc = {"settings": {"trace_level": {"value": ["TIMESTAMPS"]}, "trace_file": {"value": ["/t"]},
                         "log_frequency": {"value": ["0"]}}}
    assert _plain(grpc) == {"trace_level": ["TIMESTAMPS"], "trace_file": "/t", "log_frequency": "0"}


def test_parse_infer_response_checks_the_binary_layout():
    from gpuprof.capture.loadgen.transport import parse_infer_response

    header = json.dumps({"outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2],
                                      "parameters": {"binary_data_size": 8}}]}).encode()
    body = header + np.zeros(2, np.float32).tobytes()
    assert parse_infer_response(body, len(header)) is None
    assert "malformed" in parse_infer_response(body[:-1], len(header))
    assert parse_infer_response(json.dumps({"outputs": []}).encode(), None) is None
