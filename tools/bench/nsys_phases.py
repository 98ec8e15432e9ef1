"""Time and memory of each phase of `gpuprof nsys`, to see what sets the peak.

    python tools/bench/nsys_phases.py /tmp/bench/r5m.sqlite -o /tmp/r.json

Runs `gpuprof nsys ARGS...` in this process (from the current checkout) with every step that
GPUPROF_SECTION_TIMES times (the read, each report section, the write) also printing the
resident memory before and after it and the process's peak so far (ru_maxrss), to stderr.
"""

from __future__ import annotations

import contextlib
import os
import resource
import runpy
import sys
import time

sys.path.insert(0, os.getcwd())  # the checkout this is run from, not the installed one


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def timed(name: str):
    start, before = time.perf_counter(), resident_mib()
    try:
        yield
    finally:
        print(f"  {name:18s} {time.perf_counter() - start:6.2f} s  resident {before:6.0f} -> "
              f"{resident_mib():6.0f} MiB  peak so far {peak_mib():6.0f} MiB",
              file=sys.stderr, flush=True)


def main() -> None:
    import gpuprof.cli.nsys  # noqa: F401  (imported so that its timed() is the one patched)
    import gpuprof.render.nsys_full
    import gpuprof.render.nsys_report
    import gpuprof.render.section_times

    for module in (gpuprof.render.section_times, gpuprof.render.nsys_full,
                   gpuprof.render.nsys_report):
        module.timed = timed
    sys.argv = ["gpuprof", "nsys", *sys.argv[1:]]
    runpy.run_module("gpuprof", run_name="__main__")


if __name__ == "__main__":
    main()
