"""``gpuprof run -- python app.py``: the program profiled by its start-up hook, optionally
under ``nsys profile``, then read back and (with nsys) merged onto one clock.

The child gets ``GPUPROF_OUTPUT_PATH`` (and ``GPUPROF_ORT_NODES``); its own profiler writes
the trace and the saved run at exit. Under nsys the capture range is the profiler's
cudaProfilerStart/Stop (so pauses are left out of the nsys capture too) and the export is put
on the host clock by the profiler's NVTX clock marks (``align.clock.merge_nsys``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..api import Run, load
from ..capture.program import Program
from ..capture.pyprofile.capture import NVTX_DOMAIN
from ..capture.trt.nsys_cmd import export_argv, find_nsys, profile_argv, run_tool
from ..errors import BadInputError, CaptureError
from .autostart import ENV, ORT_NODES_ENV, OWNER_ENV
from .pyprofile import check_output, saved_run_path

NSYS_MODES = ("auto", "on", "off")
HOOK_HINT = ("Is gpuprof installed in the program's Python? The start-up hook "
             "(gpuprof_autostart.pth) comes with `pip install gpuprof`; for an editable "
             "install run tools/setup.sh. Or profile in code with gpuprof.profile()")


@dataclass
class ProgramRun:
    exit_code: int
    run: Run
    trace: Path
    saved: Path
    nsys_note: str
    interrupted: bool


def choose_nsys(mode: str) -> tuple[str | None, str]:
    """nsys's path (None: without nsys) and a sentence saying which and why."""
    if mode not in NSYS_MODES:
        raise BadInputError(f"unknown --nsys mode '{mode}'", f"Use one of: {', '.join(NSYS_MODES)}")
    if mode == "off":
        return None, "nsys: off (--nsys off)"
    if mode == "on":
        return find_nsys(), "nsys: on"
    path = shutil.which("nsys")
    if path is None:
        return None, "nsys: not found, profiled without it (host side only; --nsys on requires it)"
    return path, "nsys: found, used (--nsys off to run without)"


def profile_program(argv: Sequence[str], trace: Path, nsys_mode: str = "auto",
                    ort_nodes: bool = False, say: Callable[[str], None] = lambda _: None) -> ProgramRun:
    if not argv:
        raise BadInputError("no program to run", "Give it after '--': gpuprof run -- python app.py")
    trace = check_output(trace).resolve()
    nsys, note = choose_nsys(nsys_mode)
    say(note)
    saved = saved_run_path(trace)
    for stale in (trace, saved):  # never report an earlier run's files as this one's
        stale.unlink(missing_ok=True)
    base = trace.with_name(f"{trace.stem}-nsys")
    child = Program(program_argv(argv, nsys, base), _child_env(trace, ort_nodes))
    child.start()
    code = child.wait()
    if not saved.exists():
        raise CaptureError(f"the program (exit code {code}) wrote no profile at {saved}", HOOK_HINT)
    run = load(saved)
    if nsys:
        run = _merged(run, nsys, base, trace, saved)
    return ProgramRun(code, run, trace, saved, note, child.interrupted)


def program_argv(argv: Sequence[str], nsys: str | None, base: Path) -> list[str]:
    """The program's command line, under ``nsys profile`` when ``nsys`` is given: capturing
    from the profiler's first cudaProfilerStart to the program's end ("none": a pause's
    cudaProfilerStop must not end the one report gpuprof reads back)."""
    return profile_argv(base, argv, nsys=nsys, range_end="none") if nsys else list(argv)


def _child_env(trace: Path, ort_nodes: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (OWNER_ENV, ORT_NODES_ENV)}
    env[ENV] = str(trace)
    if ort_nodes:
        env[ORT_NODES_ENV] = "1"
    return env


def _merged(run: Run, nsys: str, base: Path, trace: Path, saved: Path) -> Run:
    """The program's run plus the nsys export of it, on the host clock; saved and traced again."""
    from ..align.program_nsys import join_nsys
    from ..ingest.nsys import read_nsys

    if not Path(f"{base}.nsys-rep").exists():
        raise CaptureError("nsys wrote no report (did the program make any CUDA call while "
                           "profiling?)", "Run with --nsys off for the host side only")
    run_tool(export_argv(base, nsys), what="nsys export")
    exported = read_nsys(Path(f"{base}.sqlite"))
    merged = Run.of(join_nsys(run, exported, NVTX_DOMAIN))
    merged.save(saved)
    merged.write_trace(trace)
    return merged
