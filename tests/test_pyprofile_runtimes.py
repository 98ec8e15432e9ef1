"""gpuprof.profile() on the other runtimes, for real: tritonclient calls against the bundled
tritonserver (their client times hold the server's own trace of each request: one clock),
and TensorRT's execute_async_v3 with CUDA-event GPU times (needs a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuprof

from .conftest import CLS_MODEL, build_cls_engine

SHAPE = (1, 3, 48, 192)


@pytest.fixture(scope="module")
def traced_server(tmp_path_factory):
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    server = serve_onnx(CLS_MODEL, trace=TraceConfig(tmp_path_factory.mktemp("trace") / "trace.json"))
    yield server
    server.stop()


def _infer(module, client, server, request_id: str):
    tensor = module.InferInput("x", list(SHAPE), "FP32")
    tensor.set_data_from_numpy(np.zeros(SHAPE, dtype=np.float32))
    client.infer(server.model_name, [tensor], request_id=request_id)


@pytest.mark.triton
def test_tritonclient_calls_hold_their_server_requests(traced_server, tmp_path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from gpuprof.ingest.triton_trace import read_triton_trace

    http = httpclient.InferenceServerClient(traced_server.http_url)
    grpc = grpcclient.InferenceServerClient(traced_server.grpc_url)
    ids = []
    with gpuprof.profile(output=tmp_path / "t.json") as prof:
        with prof.record("http"):
            for i in range(4):
                ids.append(f"http-{i}")
                _infer(httpclient, http, traced_server, ids[-1])
        prof.pause()
        _infer(httpclient, http, traced_server, "paused")
        prof.resume()
        with prof.record("grpc"):
            for i in range(3):
                ids.append(f"grpc-{i}")
                _infer(grpcclient, grpc, traced_server, ids[-1])
    http.close()
    grpc.close()
    assert httpclient.InferenceServerClient.infer.__name__ == "infer"
    assert not hasattr(httpclient.InferenceServerClient.infer, "__gpuprof_original__")
    calls = prof.inferences()
    assert list(calls["runtime"]) == ["tritonclient.http"] * 4 + ["tritonclient.grpc"] * 3
    assert list(calls["record"]) == ["http"] * 4 + ["grpc"] * 3
    traced_server.stop()
    requests = read_triton_trace(traced_server.trace.file).profile.tables["requests"]
    stages = {stage: requests[requests["stage"].astype(str) == stage].set_index("request_id")
              for stage in ("REQUEST", "COMPUTE_INFER")}
    for request_id, call in zip(ids, calls.itertuples(), strict=True):
        # on the one host clock the server receives the request after the client sent it
        # and computes before the client has the answer (Triton stamps REQUEST_END only
        # after the response went out: that end may follow the client's)
        assert call.start_ns <= stages["REQUEST"].loc[request_id, "start_ns"]
        assert stages["COMPUTE_INFER"].loc[request_id, "end_ns"] <= call.start_ns + call.latency_ns


@pytest.mark.gpu
@pytest.mark.trt_runtime
def test_tensorrt_calls_carry_cuda_event_gpu_times(tmp_path_factory, tmp_path):
    from gpuprof.capture.trt import api
    from gpuprof.capture.trt.runner import ProfiledRun, _read_plan, parse_args, read_sidecar

    plan = build_cls_engine(tmp_path_factory, {"x": (1, 3, 64, 64)}).plan
    settings = parse_args(["--plan", str(plan), "--out", str(tmp_path / "out")])
    sidecar = read_sidecar(settings.plan)
    trt = api.runtime_module(sidecar.get("tensorrt", {}).get("module", "tensorrt"))
    session = ProfiledRun(trt, settings, sidecar)
    try:
        session.load(_read_plan(settings.plan))
        session.prepare()
        with gpuprof.profile(output=tmp_path / "t.json") as prof:
            with prof.record("trt"):
                for _ in range(5):
                    session._execute()  # context.execute_async_v3(stream)
            prof.pause()
            session._execute()
            prof.resume()
        session.cuda.call("cudaStreamSynchronize", session.stream)
    finally:
        session.close()
    table = prof.executions()
    assert list(table["runtime"]) == [f"{trt.__name__}.execute_async_v3"] * 5
    assert (table["gpu_ns"] > 0).all()
    assert prof.run.meta.extra["calls_left_out_paused"] == 1
