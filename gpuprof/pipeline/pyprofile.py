"""``gpuprof.profile()``: profile the inference calls of the user's own program.

    with gpuprof.profile(output="trace.json") as prof:
        with prof.record("warm up"):
            session.run(None, feeds)
        prof.pause(); session.run(None, feeds); prof.resume()   # left out
        with prof.record("trace"):
            session.run(None, feeds)
    prof.summary(); prof.inferences()

On exit it writes the Chrome/Perfetto trace at ``output`` and the saved run beside it
(``trace.gpuprof``, which ``gpuprof.load()`` reopens with the same reports), both atomically.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from ..capture.pyprofile.capture import Capture, Options
from ..errors import BadInputError
from ..model.profile import SUFFIX
from .pyprofile_tables import build_profile

_ACTIVE: list[Profiler] = []
_LOCK = threading.Lock()


def saved_run_path(output: Path) -> Path:
    """Where the saved run goes: beside the trace, same stem (trace.json -> trace.gpuprof)."""
    return output.with_suffix(SUFFIX)


def check_output(output: str | os.PathLike) -> Path:
    path = Path(output)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInputError(f"the output folder '{parent}' does not exist",
                            "Create it first or pass another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"the output folder '{parent}' is not writable",
                            "Pass an output path in a folder you can write to")
    if path.is_dir():
        raise BadInputError(f"the output '{path}' is a folder", "Pass a file name such as trace.json")
    if path.suffix == SUFFIX:
        raise BadInputError(f"the output '{path.name}' would be the saved run's name",
                            f"Name the trace (e.g. trace.json): the saved run goes beside it as {SUFFIX}")
    return path


def _check_not_nested(profiler: Profiler) -> None:
    """A profile() inside another is an error -- except inside the whole-program one that
    GPUPROF_OUTPUT_PATH started: the program must run as it does without the variable, so its
    own profile() runs nested (each capture has its own hooks, stacked, and its own files)."""
    if not _ACTIVE:
        return
    if all(active.whole_program for active in _ACTIVE):
        import sys

        print(f"gpuprof: note: GPUPROF_OUTPUT_PATH already profiles the whole program "
              f"({_ACTIVE[0].output}); this profile() runs inside it", file=sys.stderr)
        return
    raise BadInputError(f"gpuprof.profile() is already active (writing {_ACTIVE[-1].output})",
                        "Profile once per process: use prof.record(label) for parts of the run")


class Profiler:
    """The context ``gpuprof.profile()`` returns; its reports exist after the block ends."""

    def __init__(self, output: str | os.PathLike = "trace.json", *, ort_nodes: bool = False,
                 memory_interval_s: float = 0.01, gpu_memory: bool = True,
                 whole_program: bool = False):
        self.output = Path(output)
        self.whole_program = whole_program  # started by GPUPROF_OUTPUT_PATH (autostart)
        self.options = Options(ort_nodes=ort_nodes, memory_interval_s=memory_interval_s,
                               gpu_memory=gpu_memory)
        self._capture: Capture | None = None
        self._run = None
        self.saved: Path | None = None

    # -- the context ------------------------------------------------------------------------
    def __enter__(self) -> Profiler:
        self.output = check_output(self.output)
        with _LOCK:
            _check_not_nested(self)
            _ACTIVE.append(self)
        capture = None
        try:
            capture = Capture(self.options)
            capture.start()
        except BaseException:
            _ACTIVE.remove(self)
            if capture is not None:  # put back whatever it had patched or started
                with contextlib.suppress(Exception):
                    capture.stop()
                capture.cleanup()
            raise
        self._capture = capture
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def finish(self) -> None:
        """Stop capturing and write the trace and the saved run (what ``__exit__`` does)."""
        capture, self._capture = self._capture, None
        if capture is None:
            return
        try:
            profile = build_profile(capture.stop())
        finally:
            capture.cleanup()
            with _LOCK:
                _ACTIVE.remove(self)
        from ..api import Run

        self._run = Run.of(profile)
        self.saved = self._run.save(saved_run_path(self.output))
        self._run.write_trace(self.output)

    # -- records, pause, resume -------------------------------------------------------------
    def record(self, label: str):
        """``with prof.record("warm up"):`` -- an NVTX range and a gpuprof record."""
        return self._active("record()").record(str(label))

    def pause(self) -> None:
        """Leave the inference calls from here to ``resume()`` out (and stop nsys's capture)."""
        capture = self._active("pause()")
        if capture.recorder.paused:
            capture.recorder.warn("pause() while already paused: ignored")
            return
        capture.pause()

    def resume(self) -> None:
        capture = self._active("resume()")
        if not capture.recorder.paused:
            capture.recorder.warn("resume() without pause(): ignored")
            return
        capture.resume()

    def _active(self, what: str) -> Capture:
        if self._capture is None:
            raise BadInputError(f"prof.{what} outside the profile's 'with' block",
                                "Call it inside 'with gpuprof.profile(...) as prof:'")
        return self._capture

    # -- reports (the same on gpuprof.load(saved)) -------------------------------------------
    @property
    def run(self):
        if self._run is None:
            raise BadInputError("the profile's reports exist once its 'with' block has ended",
                                "Call prof.summary() and the others after the block")
        return self._run

    def summary(self, unit: str = "ns"):
        return self.run.summary(unit)

    def inferences(self):
        return self.run.inferences()

    def executions(self):
        return self.run.executions()

    def operators(self):
        return self.run.operators()

    def cpu_operators(self):
        return self.run.cpu_operators()

    def frame(self):
        return self.run.frame()
