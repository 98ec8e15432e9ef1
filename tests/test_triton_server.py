"""The bundled tritonserver serving a real ONNX model through the python backend.

One server for the whole module (about 10 s to start). The last test stops it and checks that
no process of its group is left and that the trace written at shutdown is readable.
"""

from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import pytest

from gpuprof.capture import triton_backends
from gpuprof.capture.triton_server import TraceConfig, TritonServer, free_port, serve_onnx
from gpuprof.errors import BadInputError, CaptureError, MissingDependencyError
from tests.conftest import REPO

MODEL = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
SHAPE = (1, 3, 48, 192)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    trace = TraceConfig(tmp_path_factory.mktemp("trace") / "trace.json")
    server = serve_onnx(MODEL, trace=trace)
    yield server
    server.stop()


def _infer(server, request_id: str, data: np.ndarray):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        tensor = httpclient.InferInput("x", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        return client.infer(server.model_name, [tensor], request_id=request_id)
    finally:
        client.close()


@pytest.mark.triton
def test_serves_the_onnx_model_like_onnxruntime(served):
    import onnxruntime as ort

    data = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    result = _infer(served, "check-1", data)
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": data})[0]
    got = result.as_numpy("save_infer_model/scale_0.tmp_1")
    assert got.shape == expected.shape == (1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.triton
def test_listens_on_loopback_only(served):
    import psutil

    listening = [c.laddr for c in psutil.Process(served.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    ports = {addr.port for addr in listening}
    assert {served.http_port, served.grpc_port} <= ports
    assert all(_loopback(addr.ip) for addr in listening), listening


@pytest.mark.triton
def test_the_server_runs_on_jemalloc_where_it_is_installed(served):
    """Preloaded so that tritonserver 2.51's trace use-after-free does not land in glibc's
    free lists (docs/BENCHMARKS.md): the running server and its python stub map it."""
    from gpuprof.capture.triton_server import jemalloc

    path = jemalloc()
    if path is None:
        pytest.skip("libjemalloc2 is not installed (tools/setup.sh installs it as root)")
    import psutil

    server = psutil.Process(served.pid)
    for process in [server, *server.children(recursive=True)]:
        mapped = {m.path for m in process.memory_maps()}
        assert any("libjemalloc" in m for m in mapped), process.cmdline()[:1]


def test_glibc_is_chosen_by_the_environment(monkeypatch):
    from gpuprof.capture import triton_server

    install = triton_backends.TritonInstall(REPO, REPO, REPO)  # only libs_dir is read
    monkeypatch.setenv("GPUPROF_TRITON_MALLOC", "system")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert triton_server.jemalloc() is None
    assert "LD_PRELOAD" not in triton_server.server_env(install)


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # gRPC listens on ::ffff:127.0.0.1
    return (mapped or addr).is_loopback


@pytest.mark.triton
def test_model_metadata_comes_from_the_onnx_graph(served):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(served.http_url)
    try:
        meta = client.get_model_metadata(served.model_name)
    finally:
        client.close()
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == \
        [("x", "FP32", [-1, 3, -1, -1])]
    assert meta["outputs"][0]["name"] == "save_infer_model/scale_0.tmp_1"


@pytest.mark.triton
def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    server = TritonServer(tmp_path / "no-such-repository", ready_timeout_s=30)
    with pytest.raises(CaptureError) as info:
        server.start()
    assert "tritonserver exited" in info.value.message
    assert "no-such-repository" in info.value.message  # the server's own log line
    assert not server.running()


def test_missing_pytriton_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytriton" else real(name, *a))
    with pytest.raises(MissingDependencyError) as info:
        triton_backends.find_triton()
    assert "pip install nvidia-pytriton" in info.value.one_line()


def test_a_failed_repository_write_removes_the_temporary_repository(tmp_path, monkeypatch):
    from gpuprof.capture import triton_server

    repo = tmp_path / "repo"

    def mkdtemp(**kwargs):
        repo.mkdir()
        return str(repo)

    monkeypatch.setattr(triton_server.tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(BadInputError, match="not found"):
        serve_onnx(tmp_path / "missing.onnx")
    assert not repo.exists()


def test_free_port_is_bindable_on_loopback():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.triton
def test_a_load_test_leaves_no_traceback_in_the_server_log(served):
    """The model gpuprof writes hands every output over cleanly: a two-level HTTP load test
    adds no traceback and no error line to the server's log (it used to add one traceback per
    response: numpy's DLPack capsule destructor rejecting the name the stub gives it)."""
    from gpuprof.capture.loadgen import LoadSpec
    from gpuprof.pipeline.sweep import level_table, run_sweep

    start = served.log_path.stat().st_size  # the start-up lines have their own CUDA errors
    result = run_sweep(LoadSpec(model=served.model_name, url=served.http_url,
                                shapes={"x": SHAPE}, levels=[1, 2], measurement_interval_ms=300,
                                max_trials=3, warmup_ms=100, max_duration_s=30,
                                max_requests=2000))
    assert not result.partial and level_table(result)["errors"].eq(0).all()
    with open(served.log_path, errors="replace") as log:
        log.seek(start)
        written = log.read()
    assert "Traceback" not in written and "Error" not in written, written[:2000]


@pytest.mark.triton
def test_stop_leaves_nothing_and_writes_the_trace(served):
    from gpuprof.ingest.triton_trace import read_triton_trace

    _infer(served, "traced-7", np.zeros(SHAPE, dtype=np.float32))
    pgid = served.pid
    assert served.stop() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # no process of the server's group (python stubs included) is left
    assert served.stop() is None  # idempotent
    requests = read_triton_trace(served.trace.file).profile.tables["requests"]
    stages = set(requests.loc[requests["request_id"] == "traced-7", "stage"].astype(str))
    assert {"REQUEST", "QUEUE", "COMPUTE_INFER"} <= stages


def test_signal_handler_chains(monkeypatch):
    from gpuprof.capture import children

    calls = []
    monkeypatch.setattr(children, "stop_all", lambda: calls.append("stop"))
    children.make_handler(lambda s, f: calls.append(s))(signal.SIGTERM, None)
    assert calls == ["stop", signal.SIGTERM]
    with pytest.raises(SystemExit):
        children.make_handler(signal.SIG_DFL)(signal.SIGTERM, None)


@pytest.mark.triton
def test_serve_command_prints_urls_and_stops_by_itself(tmp_path):
    from click.testing import CliRunner

    from gpuprof.cli.triton_serve import serve_command

    trace = tmp_path / "t.json"
    result = CliRunner().invoke(serve_command, [str(MODEL), "--max-seconds", "0.5",
                                                "--trace-file", str(trace), "--log-frequency", "5"])
    assert result.exit_code == 0, result.output
    assert "HTTP  http://127.0.0.1:" in result.output and "gRPC  127.0.0.1:" in result.output
    assert f"trace {trace}" in result.output


@pytest.mark.triton
def test_server_dies_with_a_killed_parent(tmp_path):
    """Even SIGKILL (no atexit, no handler) leaves no server: Linux's parent-death signal."""
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os\nfrom gpuprof.capture.triton_server import serve_onnx\n"
        f"server = serve_onnx({str(MODEL)!r})\n"
        "print(server.pid, server.model_repository, server.log_path, flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    pid, repo, log = out.stdout.split()
    pid = int(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid)
    shutil.rmtree(repo, ignore_errors=True)  # what the killed parent could not clean up
    os.unlink(log)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(")")[-1].split()[0] != "Z"
