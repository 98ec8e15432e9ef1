"""Nsight Systems command lines for a profiled TensorRT run, and a careful way to run them.

Commands are argument lists, never shell strings: plan paths and model names can hold any
character and must never reach a shell. The profiled process is the runner child
(``python -m gpuprof.capture.trt.runner``), which brackets only the timed iterations with
``cudaProfilerStart/Stop``, so ``--capture-range=cudaProfilerApi`` keeps the engine build,
deserialisation and warm-up out of the report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import CaptureError, MissingToolError

NSYS_HINT = "Install Nsight Systems (https://developer.nvidia.com/nsight-systems) and put 'nsys' on PATH"
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class NsysOptions:
    """What ``nsys profile`` records. CUDA graphs hide their kernels unless traced per node."""

    trace: tuple[str, ...] = ("cuda", "nvtx", "osrt")
    cuda_memory_usage: bool = True
    cuda_graph_trace_node: bool = False


def runner_argv(plan: str | os.PathLike, out_dir: str | os.PathLike, extra: Sequence[str] = (),
                python: str | None = None) -> list[str]:
    """The profiled child: the runner module under the current interpreter."""
    return [python or sys.executable, "-m", "gpuprof.capture.trt.runner",
            "--plan", str(plan), "--out", str(out_dir), *extra]


def profile_argv(report_base: str | os.PathLike, child: Sequence[str],
                 options: NsysOptions = NsysOptions(), nsys: str = "nsys",
                 range_end: str = "stop") -> list[str]:
    """``nsys profile`` capturing only the cudaProfilerStart/Stop window of ``child``.

    ``report_base`` is the output name without extension; nsys appends ``.nsys-rep``.
    ``range_end`` is nsys's --capture-range-end: "stop" ends the capture at the first
    cudaProfilerStop, "none" captures from the first cudaProfilerStart to the program's end.
    """
    argv = [nsys, "profile", "--capture-range=cudaProfilerApi", f"--capture-range-end={range_end}",
            "-t", ",".join(options.trace),
            f"--cuda-memory-usage={'true' if options.cuda_memory_usage else 'false'}"]
    if options.cuda_graph_trace_node:
        argv.append("--cuda-graph-trace=node")
    return [*argv, "-o", str(report_base), "--force-overwrite", "true", *child]


def export_argv(report_base: str | os.PathLike, nsys: str = "nsys") -> list[str]:
    """``nsys export`` of ``report_base.nsys-rep`` to ``report_base.sqlite``."""
    base = str(report_base)
    return [nsys, "export", "--type", "sqlite", "-o", f"{base}.sqlite", "--force-overwrite", "true",
            f"{base}.nsys-rep"]


def find_nsys() -> str:
    """Absolute path of nsys, or ``MissingToolError``."""
    path = shutil.which("nsys")
    if path is None:
        raise MissingToolError("Nsight Systems ('nsys') is not on PATH", NSYS_HINT)
    return path


def run_tool(argv: Sequence[str], timeout_s: float | None = None, what: str = "nsys") -> str:
    """Run ``argv`` in its own process group; return its stdout.

    On Ctrl-C or timeout the whole group (nsys and the profiled child) is killed, so no orphan
    keeps the GPU. A non-zero exit raises ``CaptureError`` carrying the last stderr lines.
    """
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise MissingToolError(f"'{argv[0]}' is not installed or not on PATH", NSYS_HINT)
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise CaptureError(f"{what} did not finish within {timeout_s:g} s and was stopped",
                           "Use fewer iterations or a longer timeout") from exc
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        raise CaptureError(f"{what} failed with exit code {proc.returncode}: {_tail(err)}",
                           "See the message above; re-run with --debug for the full command")
    return out


def _kill_group(proc: subprocess.Popen) -> None:
    # The child runs in its own session, so its process id is also its group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:]) or "(no stderr)"


def profile_and_export(plan: str | os.PathLike, out_dir: str | os.PathLike,
                       runner_extra: Sequence[str] = (), options: NsysOptions = NsysOptions(),
                       timeout_s: float | None = 600) -> Path:
    """Profile the runner under nsys and export SQLite; return the ``.sqlite`` path."""
    nsys = find_nsys()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = out / "trace"
    child = runner_argv(plan, out, runner_extra)
    run_tool(profile_argv(base, child, options, nsys), timeout_s, "nsys profile")
    run_tool(export_argv(base, nsys), timeout_s, "nsys export")
    return Path(f"{base}.sqlite")
