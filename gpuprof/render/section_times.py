"""Opt-in timing of report sections: ``GPUPROF_SECTION_TIMES=1`` prints one line per
section (and per reading step the command times) to stderr, so the next bottleneck of a
large report is visible without a profiler. Off by default: nothing is measured or printed."""

from __future__ import annotations

import contextlib
import os
import sys
import time

ENV = "GPUPROF_SECTION_TIMES"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


@contextlib.contextmanager
def timed(name: str):
    """Time the block as ``name`` when enabled (a plain pass-through otherwise)."""
    if not enabled():
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        print(f"gpuprof section {name}: {time.perf_counter() - start:.3f} s", file=sys.stderr,
              flush=True)
