"""`gpuprof triton TRACE`: the command end to end on the real fixture, and on trace files that
a real tritonserver (bundled in nvidia-pytriton) writes while serving HTTP and gRPC requests."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from gpuprof.cli.main import main
from gpuprof.model import Profile
from tests.conftest import fixture_path

FIXTURE = "cmpark0126__ml-serving-system-building__sync_poison.json"


@pytest.fixture
def trace_file() -> Path:
    return fixture_path("triton", FIXTURE)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_trace_as_first_argument(capsys, trace_file):
    code, out, _ = run(capsys, "triton", trace_file)
    assert code == 0
    for text in ("Stages per model", "Timeline: resnet50", "COMPUTE_INFER", "HTTP_RECV_START",
                 "All 200 request(s)"):
        assert text in out
    # piped, tables are as wide as their columns (a terminal's own width applies on a tty,
    # tests/test_names.py); the stage table carries every percentile the seeds list
    assert "p97 (µs)" in out and "p99.9 (µs)" in out


def test_parse_subcommand_writes_markdown_and_chrome_trace(capsys, trace_file, tmp_path):
    md, chrome = tmp_path / "out.md", tmp_path / "out.trace.json"
    code, _, err = run(capsys, "triton", "parse", trace_file, "-o", md, "--chrome-trace", chrome)
    assert code == 0 and "Wrote" in err
    text = md.read_text()
    assert text.startswith("# Triton trace") and "| resnet50 | QUEUE |" in text
    doc = json.loads(chrome.read_text())
    assert {e["ph"] for e in doc["traceEvents"]} == {"M", "X"}


def test_options_before_the_trace(capsys, trace_file, tmp_path):
    out = tmp_path / "summary.csv"
    code, _, _ = run(capsys, "triton", "-o", out, trace_file)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["stage"] for r in rows} >= {"QUEUE", "COMPUTE_INFER", "END_TO_END"}
    assert all(r["count"] == "200" for r in rows)


def test_csv_table_choice_and_json(capsys, trace_file):
    code, out, _ = run(capsys, "triton", trace_file, "--format", "csv", "--table", "requests")
    assert code == 0
    assert len(list(csv.DictReader(io.StringIO(out)))) == 200 * 9
    code, out, _ = run(capsys, "triton", trace_file, "--format", "json")
    doc = json.loads(out)
    assert [s["key"] for s in doc["sections"]][:2] == ["summary", "timeline:resnet50:HTTP"]


def test_model_filter(capsys, trace_file):
    code, out, _ = run(capsys, "triton", trace_file, "--model", "resnet50", "--format", "csv")
    assert code == 0 and "resnet50" in out
    code, _, err = run(capsys, "triton", trace_file, "--model", "nope")
    assert code == 2
    assert err.startswith("Error: no requests for model 'nope'") and "resnet50" in err


def test_save_round_trip(capsys, trace_file, tmp_path):
    code, _, _ = run(capsys, "triton", trace_file, "--save", tmp_path / "run", "--format", "json")
    assert code == 0
    run_ = Profile.load(tmp_path / "run.gpuprof")
    assert run_.meta.tool == "triton" and len(run_.requests) == 1800


def test_user_errors_are_one_line(capsys, tmp_path):
    code, out, err = run(capsys, "triton", tmp_path / "absent.json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: no Triton trace file found")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1} {"id": 2}]')
    code, _, err = run(capsys, "triton", bad)
    assert code == 2 and "not valid JSON" in err


def test_partial_trace_is_labelled(capsys, trace_file, tmp_path):
    text = trace_file.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    code, out, _ = run(capsys, "triton", cut)
    assert code == 0
    assert "PARTIAL" in out and "truncated" in out


def test_group_help_lists_parse(capsys):
    code, out, _ = run(capsys, "triton", "--help")
    assert code == 0 and "parse" in out
    code, out, _ = run(capsys, "triton", "parse", "--help")
    assert code == 0 and "--chrome-trace" in out


# --- a real server -------------------------------------------------------------------------

# Models pass tensors through DLPack: the python stub bundled with Triton 2.51 mis-sizes
# outputs made from numpy>=2 arrays, and this test is about traces, not numpy.
PRELUDE = '''
import os
import sys

# the python stub embeds the system Python and ignores PYTHONPATH: gpuprof's server helper
# passes its site-packages in GPUPROF_SITE_PACKAGES (see capture/triton_server.py)
for _var in ("GPUPROF_SITE_PACKAGES", "PYTHONPATH"):
    sys.path += [p for p in os.environ.get(_var, "").split(os.pathsep) if p and p not in sys.path]

import triton_python_backend_utils as pb_utils  # noqa: E402
'''

IDENTITY = PRELUDE + '''

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").to_dlpack())])
            for r in requests]
'''

BLS = PRELUDE + '''

class TritonPythonModel:
    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        child = pb_utils.InferenceRequest(
            model_name="identity", requested_output_names=["OUTPUT0"],
            inputs=[pb_utils.get_input_tensor_by_name(request, "INPUT0")], trace=request.trace())
        response = child.exec()
        if response.has_error():
            raise pb_utils.TritonModelException(response.error().message())
        tensor = pb_utils.get_output_tensor_by_name(response, "OUTPUT0")
        return pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack("OUTPUT0", tensor.to_dlpack())])
'''

IO = '''
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
'''

ENSEMBLE = '''name: "pipeline"
platform: "ensemble"
max_batch_size: 0
''' + IO + '''
ensemble_scheduling { step [
  { model_name: "identity" model_version: -1
    input_map { key: "INPUT0" value: "INPUT0" } output_map { key: "OUTPUT0" value: "mid" } },
  { model_name: "bls" model_version: -1
    input_map { key: "INPUT0" value: "mid" } output_map { key: "OUTPUT0" value: "OUTPUT0" } }
] }
'''


def _python_model(repo: Path, name: str, code: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n{IO}\n'
        'instance_group [ { kind: KIND_CPU, count: 1 } ]\n')
    (repo / name / "1" / "model.py").write_text(code)


def _repository(root: Path) -> Path:
    """identity; bls, which calls identity; pipeline, an ensemble of identity then bls."""
    repo = root / "repo"
    _python_model(repo, "identity", IDENTITY)
    _python_model(repo, "bls", BLS)
    (repo / "pipeline" / "1").mkdir(parents=True)
    (repo / "pipeline" / "config.pbtxt").write_text(ENSEMBLE)
    return repo


def _send_http(url: str, model: str, count: int) -> None:
    import urllib.request

    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}).encode()
    for _ in range(count):
        req = urllib.request.Request(f"http://{url}/v2/models/{model}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as response:
            assert json.loads(response.read())["outputs"][0]["data"] == [1, 2, 3, 4]


def _send_grpc(url: str, model: str, count: int) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("INPUT0", [4], "FP32")
    tensor.set_data_from_numpy(np.arange(4, dtype=np.float32))
    try:
        for _ in range(count):
            assert client.infer(model, [tensor]).as_numpy("OUTPUT0").tolist() == [0, 1, 2, 3]
    finally:
        client.close()


def _csv_counts(out: str) -> dict[tuple[str, str], int]:
    return {(r["model"], r["stage"]): int(r["count"]) for r in csv.DictReader(io.StringIO(out))}


@pytest.fixture(scope="module")
def served_trace(tmp_path_factory) -> Path:
    """A trace written by a real tritonserver: HTTP and gRPC requests, an ensemble and BLS."""
    pytest.importorskip("tritonclient.grpc", reason="needs tritonclient[grpc]")
    from gpuprof.capture.triton_server import TraceConfig, TritonServer

    root = tmp_path_factory.mktemp("served")
    trace = TraceConfig(root / "trace.json", levels=("TIMESTAMPS", "TENSORS"))
    with TritonServer(_repository(root), trace=trace) as server:
        _send_http(server.http_url, "identity", 3)
        _send_grpc(server.grpc_url, "identity", 3)
        _send_http(server.http_url, "pipeline", 2)
    assert trace.file.is_file(), "tritonserver writes the trace file at shutdown"
    return trace.file


@pytest.mark.triton
@pytest.mark.slow
def test_real_server_http_and_grpc(capsys, served_trace, tmp_path):
    chrome = tmp_path / "t.trace.json"
    code, out, err = run(capsys, "triton", served_trace, "--model", "identity", "--format", "csv",
                         "--chrome-trace", chrome)
    assert code == 0, err
    counts = _csv_counts(out)
    for stage in ("HTTP_RECV", "HTTP_SEND", "GRPC_WAITREAD", "GRPC_SEND"):
        assert counts[("identity", stage)] == 3, stage
    # 6 top-level requests plus 4 children (one under the ensemble, one under its BLS step)
    assert counts[("identity", "END_TO_END")] == 6
    assert counts[("identity", "REQUEST")] == counts[("identity", "COMPUTE_INFER")] == 10
    assert json.loads(chrome.read_text())["traceEvents"]


@pytest.mark.triton
@pytest.mark.slow
def test_real_server_ensemble_and_bls(capsys, served_trace):
    code, out, err = run(capsys, "triton", served_trace, "--format", "json")
    assert code == 0, err
    doc = {s["key"]: s for s in json.loads(out)["sections"]}
    assert doc["incomplete"]["rows"] == []
    assert {"timeline:identity:HTTP", "timeline:identity:gRPC", "timeline:pipeline:HTTP",
            "timeline:bls:in pipeline", "timeline:identity:in bls"} <= set(doc)
    rows = doc["requests"]["rows"]
    parents = {r["trace_id"]: r["parent_id"] for r in rows}
    models = {r["trace_id"]: r["model"] for r in rows}
    bls = [t for t, m in models.items() if m == "bls"]
    assert len(bls) == 2 and all(models[parents[t]] == "pipeline" for t in bls)
    under_bls = [t for t, p in parents.items() if p in bls]
    assert len(under_bls) == 2 and all(models[t] == "identity" for t in under_bls)
    tensors = {(r["model"], r["activity"]) for r in doc["tensors"]["rows"]}
    assert ("identity", "TENSOR_QUEUE_INPUT") in tensors


@pytest.mark.triton
@pytest.mark.slow
def test_real_server_log_frequency_parts(capsys, tmp_path):
    from gpuprof.capture.triton_server import TraceConfig, TritonServer

    trace = tmp_path / "traces" / "trace.json"
    trace.parent.mkdir()
    server = TritonServer(_repository(tmp_path), trace=TraceConfig(trace, log_frequency=2))
    with server:
        _send_http(server.http_url, "identity", 5)
    parts = sorted(p.name for p in trace.parent.iterdir())
    assert "trace.json.0" in parts and "trace.json.1" in parts, parts
    for spec in (trace, trace.parent, f"{trace}.*"):
        code, out, err = run(capsys, "triton", spec, "--format", "csv")
        assert code == 0, err
        counts = _csv_counts(out)
        assert counts[("identity", "REQUEST")] == 5 and counts[("identity", "END_TO_END")] == 5


def test_model_names_are_data(capsys, tmp_path):
    name = "<b>x|y</b> $(rm -rf ~)"
    objs = [{"id": 1, "model_name": name, "model_version": 1}]
    objs += [{"id": 1, "timestamps": [{"name": n, "ns": 1000 * i}]} for i, n in
             enumerate(["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "REQUEST_END",
                        "HTTP_SEND_START", "HTTP_SEND_END"])]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(objs))
    code, out, _ = run(capsys, "triton", path, "--format", "md", "--chrome-trace", tmp_path / "c.json")
    assert code == 0
    assert "<b>" not in out and "x\\|y" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert any(e["args"].get("name") == f"triton: {name}" for e in doc["traceEvents"] if e["ph"] == "M")
    code, out, _ = run(capsys, "triton", path, "--model", name, "--format", "csv")
    assert code == 0 and "REQUEST" in out


def test_several_traces_as_arguments(capsys, tmp_path, trace_file):
    # what a shell passes for an unquoted trace.json.*
    objs = [{"id": 7, "model_name": "other", "model_version": 1}]
    objs += [{"id": 7, "timestamps": [{"name": n, "ns": 10 * i}]}
             for i, n in enumerate(["REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_END",
                                    "REQUEST_END"])]
    second = tmp_path / "second.json"
    second.write_text(json.dumps(objs))
    code, out, err = run(capsys, "triton", trace_file, second, "--format", "csv")
    assert code == 0, err
    models = {r["model"] for r in csv.DictReader(io.StringIO(out))}
    assert models == {"resnet50", "other"}
