"""Soak: repeated `gpuprof perf` HTTP sweeps must leave the Triton server they measure alive.

The server is the issue-9 one, fresh for this module: a python-backend `double` model
(max_batch_size 8, one CPU instance). Each run is a real `gpuprof perf` process (concurrency
1:4 over HTTP, short windows, so levels and windows start and end often); afterwards the
server must be alive, must have failed no request, must have answered at least every request
the windows counted, and its log must hold no crash and no traceback. Bounded: 4 runs of at
most ~8 s of load each.

tritonserver 2.51 risks a crash with every request it traces (a use-after-free in its trace
release, upstream triton-inference-server/server#7795; docs/BENCHMARKS.md). The server here
has a trace file with tracing off, and the sweeps leave it off. `gpuprof perf --trace` samples
and gpuprof's servers run on jemalloc to make that crash rare, not impossible, so a traced soak
would fail CI by chance and is measured by tools/repro/perf_trace_soak.py instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.triton, pytest.mark.slow]

RUNS = 4
CRASH_MARKS = ("Signal (", "free():", "Non-graceful termination", "Traceback")



@pytest.fixture(scope="module")
def double_server(tmp_path_factory):
    from gpuprof.capture.triton_backends import find_triton
    from gpuprof.capture.triton_server import TritonServer
    from gpuprof.errors import GpuprofError

    try:
        find_triton()
    except GpuprofError as exc:
        pytest.skip(exc.message)

    root = tmp_path_factory.mktemp("soak")
    model = root / "repo" / "double"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(_repro().CONFIG)
    (model / "1" / "model.py").write_text(_model_source())
    _write_stuck_model(root / "repo" / "stuck")
    _write_stuck_model(root / "repo" / "stalls", answered=1)
    from gpuprof.capture.triton_server import TraceConfig

    trace = TraceConfig(root / "trace" / "trace.json", levels=("OFF",))
    trace.file.parent.mkdir()
    server = TritonServer(root / "repo", keep_log=True, trace=trace)
    server.start()
    yield server
    server.stop()


def _repro():
    """The repro script, whose `double` model the crash counts were taken with."""
    import importlib.util

    path = REPO / "tools" / "repro" / "triton_http_trace_crash.py"
    spec = importlib.util.spec_from_file_location("triton_http_trace_crash", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_source() -> str:
    return _repro().MODEL



def _stats(server) -> dict:
    url = f"http://{server.http_url}/v2/models/double/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["model_stats"][0]["inference_stats"]


def _perf(server, tmp_path, run: int, *extra: str) -> tuple[pd.DataFrame, str]:
    windows = tmp_path / f"windows{run}.csv"
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", "double", "-u", server.http_url,
           "--concurrency-range", "1:4", "-p", "400", "--warmup", "100", "-r", "3",
           "--max-duration", "30", "--no-live", "-f", str(tmp_path / f"out{run}.csv"),
           "--windows-csv", str(windows), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=REPO, env=env)
    assert done.returncode == 0, f"run {run}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return pd.read_csv(windows), done.stdout


STUCK_S = 3  # the `stuck` model answers each batch after this long


def _write_stuck_model(model, answered: int = 0) -> None:
    """`double`, but every execution after the first ``answered`` first sleeps: a live server
    whose model stops answering in time (what a hung backend looks like to a client)."""
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(_repro().CONFIG.replace('"double"', f'"{model.name}"'))
    source = _model_source().replace(
        "    def execute(self, requests):\n",
        "    calls = 0\n\n    def execute(self, requests):\n"
        f"        TritonPythonModel.calls += 1\n"
        f"        if TritonPythonModel.calls > {answered}: import time; time.sleep({STUCK_S})\n")
    assert "time.sleep" in source
    (model / "1" / "model.py").write_text(source)


def test_a_live_server_whose_model_never_answers_is_not_called_bad_input(double_server):
    # the probe's timeout once read "the server rejected a request ... Check --shape": a hung
    # model sent users to their shapes
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", "stuck", "-u", double_server.http_url,
           "--request-timeout", "1", "--no-live"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "is live but 'stuck' did not answer a request within 1 s" in lines[0]
    assert "--shape" not in lines[0] and "--request-timeout" in lines[0]


def test_a_model_that_stops_answering_mid_run_keeps_the_partial_report(double_server):
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", "stalls", "-u", double_server.http_url,
           "--request-timeout", "1", "--no-live", "-p", "1500", "--warmup", "100"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "the run stopped early (Triton at" in done.stderr
    assert "is live but answered no request in a window (TimeoutError" in done.stderr
    assert "results above are partial" in done.stderr


def test_repeated_http_sweeps_leave_the_server_alive_and_answering(double_server, tmp_path):
    counted = 0
    for run in range(RUNS):
        windows, _ = _perf(double_server, tmp_path, run)
        assert double_server.running(), f"the server died in run {run}:\n{double_server.log_tail()}"
        assert sorted(windows["level"].unique()) == [1, 2, 3, 4]
        assert (windows["errors"] == 0).all()
        counted += int(windows["requests"].sum())
    stats = _stats(double_server)
    assert int(stats["fail"]["count"]) == 0
    # warm-up requests and the probes are answered but not counted in any window
    assert int(stats["success"]["count"]) >= counted > 0
    log = double_server.log_path.read_text(errors="replace")
    assert not [mark for mark in CRASH_MARKS if mark in log], double_server.log_tail()

