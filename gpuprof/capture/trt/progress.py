"""Build progress: an ``IProgressMonitor`` subclass that forwards phases to a listener.

Library code never prints: the monitor records phases and calls an optional listener (the CLI
draws a rich progress bar from it). Cancelling is cooperative: ``step_complete`` returns False
once ``cancel()`` was called, and TensorRT then stops the build and returns no plan. Ctrl-C is
turned into such a cancel by ``cancel_on_sigint`` because a KeyboardInterrupt cannot be raised
through TensorRT's C++ build loop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .interfaces import interface_subclass

# (event, phase, parent, step_or_num_steps): event is "start", "step" or "finish".
Listener = Callable[[str, str, "str | None", int], None]


@dataclass
class PhaseRecord:
    name: str
    parent: str | None
    num_steps: int
    steps_done: int = 0
    start_ns: int = field(default_factory=time.monotonic_ns)
    end_ns: int | None = None


class ProgressState:
    """What TensorRT reported, plus the cancel flag (thread-safe: TensorRT may call from threads)."""

    def __init__(self, listener: Listener | None = None):
        self.listener = listener
        self.phases: list[PhaseRecord] = []
        self._open: dict[str, PhaseRecord] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def phase_names(self) -> list[str]:
        return [p.name for p in self.phases]

    def start(self, phase: str, parent: str | None, num_steps: int) -> None:
        with self._lock:
            record = PhaseRecord(phase, parent, num_steps)
            self.phases.append(record)
            self._open[phase] = record
        self._notify("start", phase, parent, num_steps)

    def step(self, phase: str, step: int) -> bool:
        with self._lock:
            record = self._open.get(phase)
            if record is not None:
                record.steps_done = max(record.steps_done, step + 1)
        self._notify("step", phase, record.parent if record else None, step)
        return not self.cancelled

    def finish(self, phase: str) -> None:
        with self._lock:
            record = self._open.pop(phase, None)
            if record is not None:
                record.end_ns = time.monotonic_ns()
        self._notify("finish", phase, record.parent if record else None, 0)

    def _notify(self, event: str, phase: str, parent: str | None, value: int) -> None:
        if self.listener is not None:
            # A broken progress bar must not break (or crash) a build.
            with contextlib.suppress(Exception):
                self.listener(event, phase, parent, value)


def monitor_class(trt: ModuleType) -> type:
    """A subclass of ``trt.IProgressMonitor`` for this TensorRT flavour (cached)."""
    return interface_subclass(trt, "IProgressMonitor", _make_monitor_class)


def progress_monitor(trt: ModuleType, state: ProgressState) -> Any:
    """A monitor to set as ``config.progress_monitor``; it must outlive the build."""
    return monitor_class(trt)(state)


def _make_monitor_class(base: Any) -> type:
    class ProgressMonitor(base):
        def __init__(self, state: ProgressState):
            base.__init__(self)
            self.state = state

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.state.start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return self.state.step(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            self.state.finish(phase_name)

    return ProgressMonitor


@contextlib.contextmanager
def cancel_on_sigint(state: ProgressState) -> Iterator[None]:
    """While building, make Ctrl-C request a cancel instead of raising inside TensorRT.

    A second Ctrl-C restores the default behaviour (KeyboardInterrupt) in case the build does
    not reach another progress step. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if state.cancelled:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        state.cancel()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
