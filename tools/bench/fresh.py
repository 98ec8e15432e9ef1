"""One command in a fresh process, timed as a user runs it: wall seconds, the child's own peak
resident memory (``os.wait4``'s ``ru_maxrss``) and its CPU time, for every benchmark that times
a command.

Linux carries a process's peak RSS over ``exec``, and Python starts children with ``vfork``,
so a child's ``ru_maxrss`` is never below the parent's own peak when it was started (a parent
that peaked at 600 MiB gives ``python -c pass`` 611 MiB). ``floor_bytes`` is that parent peak:
a figure near it is the parent's, not the command's. Keep the timing parent small; do heavy
preparation in a child process.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FreshRun:
    seconds: float          # wall time from spawn to exit
    peak_bytes: int         # the child's own peak RSS (wait4), at least floor_bytes
    cpu_seconds: float      # user + system of the command and every child it waited for
    returncode: int
    stdout: str
    stderr: str
    floor_bytes: int        # this parent's peak RSS at spawn: what any child inherits at exec


def run_fresh(argv: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
              check: bool = True, while_running: Callable[[int], None] | None = None,
              poll_s: float = 0.05) -> FreshRun:
    """Run ``argv`` to its end in a new process and return what it cost. ``check``: a
    non-zero exit stops the benchmark with the command and its stderr's tail.
    ``while_running(pid)`` is called every ``poll_s`` until the child exits (e.g. to sample
    a process tree's memory), so only pass it when that sampling is wanted."""
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        status, usage = _wait(child.pid, while_running, poll_s)  # reaped here, with its rusage
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if check and child.returncode != 0:
        raise SystemExit(f"failed (exit {child.returncode}): {' '.join(map(str, argv))}\n{stderr[-2000:]}")
    return FreshRun(seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime,
                    child.returncode, stdout, stderr, floor)


def _wait(pid: int, while_running: Callable[[int], None] | None, poll_s: float):
    if while_running is None:
        _, status, usage = os.wait4(pid, 0)
        return status, usage
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        while_running(pid)
        time.sleep(poll_s)
