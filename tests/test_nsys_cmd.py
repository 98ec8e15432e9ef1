"""Nsight Systems command lines (exact argv, never a shell) and the process-group runner."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gpuprof.capture.trt import nsys_cmd
from gpuprof.capture.trt.nsys_cmd import (
    NsysOptions,
    export_argv,
    profile_argv,
    run_tool,
    runner_argv,
)
from gpuprof.errors import CaptureError, MissingToolError


def test_runner_argv():
    argv = runner_argv("engines/m a;b.plan", "out dir", ["-n", "20"], python="/usr/bin/python3")
    assert argv == ["/usr/bin/python3", "-m", "gpuprof.capture.trt.runner", "--plan",
                    "engines/m a;b.plan", "--out", "out dir", "-n", "20"]


def test_profile_argv_exact():
    child = ["python", "-m", "gpuprof.capture.trt.runner", "--plan", "p.plan", "--out", "o"]
    assert profile_argv("o/trace", child) == [
        "nsys", "profile", "--capture-range=cudaProfilerApi", "--capture-range-end=stop",
        "-t", "cuda,nvtx,osrt", "--cuda-memory-usage=true",
        "-o", "o/trace", "--force-overwrite", "true", *child]


def test_profile_argv_cuda_graph_nodes_and_options():
    options = NsysOptions(trace=("cuda", "nvtx"), cuda_memory_usage=False, cuda_graph_trace_node=True)
    argv = profile_argv(Path("r"), ["x"], options, nsys="/opt/nsys/bin/nsys")
    assert argv == ["/opt/nsys/bin/nsys", "profile", "--capture-range=cudaProfilerApi",
                    "--capture-range-end=stop", "-t", "cuda,nvtx", "--cuda-memory-usage=false",
                    "--cuda-graph-trace=node", "-o", "r", "--force-overwrite", "true", "x"]


def test_export_argv_exact():
    assert export_argv("out/trace") == ["nsys", "export", "--type", "sqlite", "-o",
                                        "out/trace.sqlite", "--force-overwrite", "true",
                                        "out/trace.nsys-rep"]


def test_names_with_shell_characters_stay_one_argument():
    nasty = "m$(touch pwned)`id`;|&.plan"
    argv = profile_argv("r", runner_argv(nasty, "o"))
    assert nasty in argv


def test_find_nsys_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="nsys"):
        nsys_cmd.find_nsys()
    with pytest.raises(MissingToolError):
        run_tool(["nsys", "--version"])


def test_run_tool_returns_stdout():
    assert run_tool([sys.executable, "-c", "print('ok')"]) == "ok\n"


def test_run_tool_failure_quotes_last_stderr_lines():
    code = "import sys; [print(f'line {i}', file=sys.stderr) for i in range(40)]; sys.exit(3)"
    with pytest.raises(CaptureError) as info:
        run_tool([sys.executable, "-c", code], what="nsys profile")
    text = info.value.one_line()
    assert "nsys profile failed with exit code 3" in text
    assert "line 39" in text and "line 20" in text and "line 19 " not in text


def test_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    # The child starts a grandchild (as nsys starts the profiled runner) and both hang.
    code = ("import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(CaptureError, match="did not finish"):
        run_tool([sys.executable, "-c", code], timeout_s=3)
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(grandchild):
            break
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.nsys
@pytest.mark.gpu
@pytest.mark.trt_runtime
def test_profile_and_export_real_run(tmp_path):
    """End to end under real nsys: needs nsys, a GPU and a plan built for it."""
    from gpuprof.capture.trt.build import build_engine
    from gpuprof.capture.trt.options import BuildOptions

    model = Path(__file__).resolve().parents[1] / "models" / "ppocr_mobile_v2_cls.onnx"
    result = build_engine(model, BuildOptions(shapes={"x": (1, 3, 64, 64)}), cache_dir=tmp_path / "e")
    sqlite = nsys_cmd.profile_and_export(result.plan, tmp_path / "run", ["-n", "10", "--warmup", "2"])
    assert sqlite.exists() and (tmp_path / "run" / "run.json").exists()
