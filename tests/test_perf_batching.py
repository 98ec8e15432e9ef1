"""Dynamic batching for real: `gpuprof triton serve --dynamic-batching` (Triton's batcher in a
real server, one ONNX Runtime call per batch) and `gpuprof perf --trace` telling which requests
shared an execution; the grouping and shares are recomputed here in plain Python from the
server's own trace files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from gpuprof.capture.triton_repo import Batching, TensorSpec, batched_specs, config_pbtxt
from gpuprof.errors import BadInputError
from tests.conftest import CLS_MODEL

OUTPUT = "save_infer_model/scale_0.tmp_1"
BATCH = Batching(max_batch_size=8, max_queue_delay_us=20_000)
ROWS = 2          # -b: rows per request, so at concurrency 4 a batch is full (8) at 4 requests


def test_batched_config_drops_the_free_batch_dim(tmp_path):
    specs = [TensorSpec("x", "TYPE_FP32", (-1, 3, -1, -1)), TensorSpec("n", "TYPE_INT64", (-1,))]
    inputs = batched_specs(specs, "m.onnx")
    assert [s.dims for s in inputs] == [(3, -1, -1), ()]
    text = config_pbtxt("m", tmp_path / "m.onnx", inputs, inputs, batching=BATCH)
    assert "max_batch_size: 8" in text
    assert "dynamic_batching { max_queue_delay_microseconds: 20000 }" in text
    assert 'name: "x" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }' in text
    # a graph tensor [batch] is [batch, 1] on the wire, reshaped back by Triton
    assert 'name: "n" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } }' in text
    assert "max_batch_size: 0" in config_pbtxt("m", tmp_path / "m.onnx", specs, specs)


def test_a_fixed_first_dim_cannot_be_batched():
    with pytest.raises(BadInputError) as info:
        batched_specs([TensorSpec("x", "TYPE_FP32", (1, 3))], "fixed.onnx")
    assert info.value.one_line() == (
        "'fixed.onnx' cannot be batched: the first dim of 'x' [1, 3] is not a free batch dim. "
        "Serve it without --dynamic-batching, or export the ONNX model with a dynamic first "
        "(batch) dim")


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpuprof", "triton", "serve", *args],
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_model_without_a_batch_dim_in_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value], [out])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph), str(path))
    done = _serve(str(path), "--dynamic-batching")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "Error: 'fixed.onnx' cannot be batched: the first dim of 'x' [1, 4] is not a free "
        "batch dim")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--max-queue-delay-us", "100"], "Error: --max-batch-size and --max-queue-delay-us need "
                                      "--dynamic-batching. Add --dynamic-batching"),
    (["--dynamic-batching", "--max-batch-size", "0"],
     "Error: --max-batch-size must be at least 1, not 0. E.g. --max-batch-size 8"),
])
def test_serve_option_mistakes_are_one_clear_line(args, message, tmp_path):
    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    done = _serve(str(CLS_MODEL), *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [message]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The classifier behind Triton's dynamic batcher; tracing off until perf switches it on."""
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    root = tmp_path_factory.mktemp("batched")
    trace = TraceConfig(root / "trace.json", levels=("OFF",))
    with serve_onnx(CLS_MODEL, trace=trace, batching=BATCH) as srv:
        yield srv, root


def _stats(srv) -> tuple[int, int]:
    url = f"http://{srv.http_url}/v2/models/{srv.model_name}/stats"
    with urllib.request.urlopen(url, timeout=10) as reply:
        stats = json.load(reply)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"]), int(stats["execution_count"])


def _infer_together(srv, datas: list[np.ndarray]) -> list[np.ndarray]:
    """All requests sent at once (one thread each), so the batcher can put them together."""
    import tritonclient.http as httpclient

    results: dict[int, np.ndarray] = {}
    clients = [httpclient.InferenceServerClient(srv.http_url) for _ in datas]
    go = threading.Barrier(len(datas))

    def send(k: int) -> None:
        tensor = httpclient.InferInput("x", list(datas[k].shape), "FP32")
        tensor.set_data_from_numpy(datas[k])
        go.wait()
        results[k] = clients[k].infer(srv.model_name, [tensor]).as_numpy(OUTPUT)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()
    return [results[k] for k in range(len(datas))]


@pytest.mark.triton
def test_one_execution_for_a_batch_answers_like_onnxruntime_per_request(server):
    import onnxruntime as ort

    srv, _ = server
    session = ort.InferenceSession(str(CLS_MODEL), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    datas = [rng.random((1 + k % 3, 3, 48, 192), dtype=np.float32) for k in range(5)]
    before = _stats(srv)
    for _ in range(3):   # the batcher's timing decides; a batch nearly always forms at once
        got = _infer_together(srv, datas)
        for data, output in zip(datas, got):
            np.testing.assert_allclose(output, session.run(None, {"x": data})[0],
                                       rtol=1e-4, atol=1e-5)
        after = _stats(srv)
        if after[1] - before[1] < after[0] - before[0]:
            break
        before = after
    assert after[1] - before[1] < after[0] - before[0], "no two requests were batched"


@pytest.fixture(scope="module")
def run(server, tmp_path_factory):
    srv, root = server
    out = tmp_path_factory.mktemp("perf-batching")
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u", srv.http_url,
           "--shape", "x:3,48,192", "-b", str(ROWS), "--concurrency-range", "4", "-p", "400",
           "-r", "3", "--warmup", "200", "--trace", "--trace-rate", "1",
           "--trace-csv", str(out / "requests.csv"), "-o", str(out / "report.json"), "--no-live"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every file the server wrote: this run's request ids are its own (gpuprof's prefix)
    parts = sorted(root.glob("trace.json*"))
    return {"csv": pd.read_csv(out / "requests.csv"), "parts": parts,
            "report": json.loads((out / "report.json").read_text()), "stdout": proc.stdout}


def _raw_compute(parts) -> dict[str, tuple[int, int]]:
    """{request id: (COMPUTE_START, COMPUTE_END)} from Triton's trace files, read as JSON."""
    stamps: dict[tuple, dict] = defaultdict(dict)
    names: dict[tuple, str] = {}
    for part in parts:
        for record in _records(part.read_text()):
            key = (part.name, record["id"])
            if "request_id" in record:
                names[key] = record["request_id"]
            for stamp in record.get("timestamps", []):
                stamps[key][stamp["name"]] = stamp["ns"]
    return {names[k]: (s["COMPUTE_START"], s["COMPUTE_END"]) for k, s in stamps.items()
            if k in names and "COMPUTE_START" in s and "COMPUTE_END" in s}


def _records(text: str) -> list[dict]:
    """A trace file's records; the file the server keeps open has no closing bracket yet."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.rstrip().rstrip(",") + "]")


@pytest.mark.triton
@pytest.mark.slow
def test_requests_that_shared_an_execution_recomputed_from_the_trace_files(run):
    csv = run["csv"]
    raw = _raw_compute(run["parts"])
    mine = {rid: raw[rid] for rid in csv["request_id"]}
    groups: dict[tuple, list[str]] = defaultdict(list)
    for rid, key in mine.items():
        groups[key].append(rid)
    assert max(len(g) for g in groups.values()) > 1, "no execution was shared"
    table = csv.set_index("request_id")
    for members in groups.values():
        rows = table.loc[members]
        assert rows["execution_id"].nunique() == 1, members
        assert (rows["execution_requests"] == len(members)).all()
        assert (rows["execution_rows"] == ROWS * len(members)).all()
        assert np.allclose(rows["compute_share"], ROWS / (ROWS * len(members)))
    assert table["execution_id"].nunique() == len(groups)


@pytest.mark.triton
@pytest.mark.slow
def test_executions_section_is_recomputed_from_the_trace_files(run):
    csv = run["csv"]
    raw = _raw_compute(run["parts"])
    groups: dict[tuple, int] = defaultdict(int)
    for rid in csv["request_id"]:
        groups[raw[rid]] += 1
    by_size: dict[int, list[int]] = defaultdict(list)
    for (start, end), size in groups.items():
        by_size[size].append(end - start)
    section = next(s for s in run["report"]["sections"] if s["key"] == "executions")
    shown = {row["requests_per_execution"]: row for row in section["rows"]}
    assert set(shown) == set(by_size)
    for size, spans in by_size.items():
        row = shown[size]
        assert row["executions"] == len(spans) and row["requests"] == size * len(spans)
        assert row["rows_mean"] == pytest.approx(ROWS * size)
        assert row["compute_mean_ns"] == pytest.approx(sum(spans) / len(spans))


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.parametrize("net", [pytest.param([], id="trace"),
                                 pytest.param(["--net"], id="net", marks=pytest.mark.bpf)])
def test_perfetto_trace_draws_each_execution_once_with_an_arrow_from_each_request(
        server, tmp_path, net):
    """The per-request trace (server trace alone, or with eBPF) has an executions process: one
    slice per execution at its raw COMPUTE_START..COMPUTE_END, and an arrow from every drawn
    request's compute to it."""
    from tests.test_chrome_trace_devtools import _summary

    srv, root = server
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u", srv.http_url,
           "--shape", "x:3,48,192", "-b", str(ROWS), "--concurrency-range", "4", "-p", "300",
           "-r", "2", "--warmup", "200", "--trace", "--trace-rate", "1", *net,
           "--chrome-trace", str(tmp_path / "path.json"), "--no-live"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = _raw_compute(sorted(root.glob("trace.json*")))
    events = json.loads((tmp_path / "path.json").read_text())["traceEvents"]
    drawn = {e["args"]["request_id"] for e in events
             if e["ph"] == "X" and e["name"].startswith("request ")}
    executions = [e for e in events if e["ph"] == "X" and e["pid"] == 5]
    expected = defaultdict(set)
    for rid in drawn:
        expected[raw[rid]].add(rid)
    got = {(round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)):
           set(e["args"]["request_ids"]) for e in executions}
    assert len(executions) == len(expected) and max(map(len, expected.values())) > 1
    for (start, end), members in expected.items():
        assert got[(start, end)] == members
    arrows = [e for e in events if e.get("name") == "execution" and e["ph"] == "s"]
    assert len(arrows) == len(drawn)
    read = {(t["pid"], t["tid"]): t["slices"] for t in _summary(tmp_path / "path.json")["tracks"]}
    lanes = {e["tid"] for e in executions}
    assert sum(read[(5, lane)] for lane in lanes) == len(executions)
