"""Child processes gpuprof starts (tritonserver, bpftrace) never outlive it.

Each child runs in its own process group (``start_new_session``) so stopping it reaches its
own children too; ``die_with_parent`` asks Linux to signal it when the thread that started it
dies, which covers a SIGKILLed gpuprof (atexit and signal handlers cannot run then); and every
live child registered here is stopped at exit and on SIGTERM/SIGHUP.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Protocol


class Stoppable(Protocol):
    def stop(self): ...


class Child:
    """``with child: ...`` starts it and stops it whatever happens (a subclass defines both)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: dict[int, Stoppable] = {}
_LOCK = threading.Lock()
_HOOKS_INSTALLED = False


def die_with_parent(sig: int):
    """A pre-exec hook: Linux sends ``sig`` to the child when the thread that started it dies.
    Start children from a thread that lives as long as they should (the main thread)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the child only calls
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, sig)
    return hook


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def register(child: Stoppable) -> None:
    with _LOCK:
        _LIVE[id(child)] = child
        _install_hooks()


def unregister(child: Stoppable) -> None:
    with _LOCK:
        _LIVE.pop(id(child), None)


def stop_all() -> None:
    for child in list(_LIVE.values()):
        child.stop()


def _install_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers us
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        signal.signal(sig, make_handler(previous))


def make_handler(previous):
    def handler(signum, frame):
        stop_all()
        if previous == signal.SIG_IGN:
            return
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)
    return handler
