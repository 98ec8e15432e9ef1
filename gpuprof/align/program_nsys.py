"""A profiled program's run (``gpuprof.profile()`` rows) joined with the nsys export of the
same program, on the host clock (the profiler's NVTX clock marks: ``clock.merge_nsys``).

The profiler's records are the run's own; nsys's copies of them (same NVTX domain) are
dropped so each record appears once, and the records take nsys's global thread ids -- found
by process and thread id among the export's rows -- because the NVTX attribution of kernels
(``align.nvtx``) follows the launching thread by that id.
"""

from __future__ import annotations

import pandas as pd

from ..model import Profile
from ..model.tables import TABLE_NAMES
from .clock import merge_nsys

THREAD_TABLES = ("api_calls", "nvtx_ranges")


def join_nsys(run: Profile, exported: Profile, domain: str) -> Profile:
    ranges = exported.tables["nvtx_ranges"]
    exported.tables["nvtx_ranges"] = ranges[(ranges["domain"] != domain)
                                            | (ranges["range_kind"] == "mark")]
    tables = {name: run.tables[name] for name in TABLE_NAMES}  # decoded: merge adds rows
    tables["nvtx_ranges"] = with_global_tids(tables["nvtx_ranges"], exported)
    return merge_nsys(Profile(tables=tables, meta=run.meta), exported)


def with_global_tids(ranges: pd.DataFrame, exported: Profile) -> pd.DataFrame:
    """``ranges`` whose missing global thread ids (-1) are filled from ``exported``'s rows of
    the same (pid, tid); left -1 where nsys saw no such thread."""
    threads = pd.concat([exported.tables[t][["pid", "tid", "global_tid"]] for t in THREAD_TABLES])
    threads = threads[threads["global_tid"] >= 0].drop_duplicates(["pid", "tid"])
    found = ranges[["pid", "tid"]].merge(threads, on=["pid", "tid"], how="left")["global_tid"]
    known = ranges["global_tid"].to_numpy()
    filled = found.fillna(-1).astype("int64").to_numpy()
    return ranges.assign(global_tid=[k if k >= 0 else f for k, f in zip(known, filled)])
