"""Profile an unmodified program: ``GPUPROF_OUTPUT_PATH=trace.json python app.py``.

The ``gpuprof.pth`` start-up hook (``gpuprof_autostart.pth``, installed into site-packages)
calls ``start()`` only when the variable is set, so an interpreter without it pays one
environment lookup. The whole program is one record named after the script; the files are
written at exit -- normal exit, an uncaught exception or Ctrl-C (both run atexit) and SIGTERM
(handled here: files first, then the default action, so the exit status still says SIGTERM;
a program that installs its own SIGTERM handler replaces this one, and its files are then
written when it exits normally).
Any error inside the profiler is reported once on stderr and the program goes on unprofiled.

Only the first Python process of the program is profiled: its children (subprocesses,
multiprocessing workers) inherit the variable but see ``OWNER_ENV`` naming another process,
and a forked child drops the profiler it inherited.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

ENV = "GPUPROF_OUTPUT_PATH"
ORT_NODES_ENV = "GPUPROF_ORT_NODES"   # "1": also ONNX Runtime's per-node profile
OWNER_ENV = "GPUPROF_PROFILED_PID"    # the process that writes the files

_state: dict = {}


def start() -> None:
    """Begin profiling this process (called from the .pth hook when ``ENV`` is set)."""
    output = os.environ.get(ENV)
    owner = os.environ.get(OWNER_ENV)
    if not output or (owner and owner != str(os.getpid())) or _state:
        return
    os.environ[OWNER_ENV] = str(os.getpid())
    try:
        _begin(output)
    except Exception as exc:
        _report(exc)


def _begin(output: str) -> None:
    from .pyprofile import Profiler

    profiler = Profiler(output, ort_nodes=os.environ.get(ORT_NODES_ENV) == "1", whole_program=True)
    profiler.__enter__()
    record = profiler.record(_program_label())
    record.__enter__()
    _state.update(profiler=profiler, record=record)
    _at_exit(finish)
    os.register_at_fork(after_in_child=_forget)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _at_exit(func) -> None:
    """Run ``func`` at interpreter exit, before thread pools refuse work.

    Plain atexit handlers run after ``threading`` has shut concurrent.futures down, and
    writing the saved run (pyarrow converts columns on a thread pool) then fails. Threading's
    own exit hooks run first, newest first: importing concurrent.futures.thread now registers
    its hook before ours, so ours runs before it. atexit stays as the fallback."""
    import concurrent.futures.thread  # noqa: F401
    import threading

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(func)
    atexit.register(func)


def finish() -> None:
    """End the record and write the files (at exit, or on SIGTERM); runs once."""
    profiler, record = _state.pop("profiler", None), _state.pop("record", None)
    if profiler is None:
        return
    try:
        record.__exit__(None, None, None)
        profiler.finish()
        count = len(profiler.run.iterations)
        print(f"gpuprof: {count} inference calls profiled: trace {profiler.output}, "
              f"saved run {profiler.saved}", file=sys.stderr)
    except Exception as exc:
        _report(exc)


def _on_sigterm(signum, frame) -> None:
    finish()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _forget() -> None:
    """In a forked child: the parent writes the files, not this copy."""
    _state.clear()


def _program_label() -> str:
    argv = getattr(sys, "argv", None) or [""]
    name = os.path.basename(argv[0]) if argv[0] not in ("", "-c", "-m") else ""
    return name or "program"


def _report(exc: BaseException) -> None:
    if not _state.get("reported"):
        _state["reported"] = True
        from ..errors import GpuprofError

        why = exc.one_line() if isinstance(exc, GpuprofError) else f"{exc.__class__.__name__}: {exc}"
        print(f"gpuprof: {ENV} is set but profiling failed ({why}); the program runs "
              "unprofiled", file=sys.stderr)
        if os.environ.get("GPUPROF_DEBUG"):
            import traceback

            traceback.print_exception(exc)
