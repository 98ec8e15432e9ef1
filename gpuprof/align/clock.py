"""Putting sources on one clock, and merging their tables.

A run gpuprof drives emits NVTX marks whose text carries ``time.monotonic_ns()`` taken just
before the mark (``gpuprof-clock monotonic_ns=N at=LABEL``). In the nsys export each mark has a
session-clock timestamp, so ``N - mark.start_ns`` is the offset from nsys's clock to the host
monotonic clock (the clock Triton traces and bpftrace use too). With two or more marks, the
spread of their offsets bounds the error.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..model import ClockDomain, Profile

CLOCK_MARK = re.compile(r"gpuprof-clock monotonic_ns=(\d+)")
TIME_COLUMNS = ("start_ns", "end_ns", "time_ns")
# Taking the clock and emitting the mark are two calls: allow a few microseconds between them.
MIN_ERROR_NS = 5_000


def offset_from_marks(nvtx_ranges: pd.DataFrame) -> ClockDomain | None:
    """The offset (add to nsys times) found from gpuprof clock marks, or None without marks."""
    marks = nvtx_ranges[nvtx_ranges["range_kind"] == "mark"]
    texts = marks["text"].astype(object).astype(str)
    found = texts.str.extract(CLOCK_MARK, expand=False).dropna()
    if found.empty:
        return None
    offsets = found.astype("int64").to_numpy() - marks.loc[found.index, "start_ns"].to_numpy()
    center = int(np.median(offsets))
    error = max(MIN_ERROR_NS, int(np.abs(offsets - center).max()))
    return ClockDomain("nsys", offset_ns=center, method=f"nvtx-clock-marks (n={len(offsets)})",
                       error_ns=error)


def shifted(frame: pd.DataFrame, offset_ns: int) -> pd.DataFrame:
    """``frame`` with every time column moved by ``offset_ns`` (missing times, -1, stay)."""
    out = frame.copy()
    for col in TIME_COLUMNS:
        if col in out:
            values = out[col].to_numpy()
            out[col] = np.where(values >= 0, values + offset_ns, values)
    return out


def merge_nsys(run: Profile, nsys: Profile) -> Profile:
    """The driven run's tables plus the nsys export's, all on the run's (monotonic) clock.

    Tables the run already filled keep the run's rows and gain the export's (e.g. allocator
    and nsys memory events side by side, told apart by ``source``).
    """
    clock = offset_from_marks(nsys.nvtx_ranges)
    offset = clock.offset_ns if clock else 0
    tables = {}
    for name, frame in run.tables.items():
        theirs = shifted(nsys.tables[name], offset)
        tables[name] = frame if theirs.empty else (theirs if frame.empty else
                                                  pd.concat([frame, theirs], ignore_index=True))
    meta = run.meta
    meta.clocks["nsys"] = clock or ClockDomain("nsys", 0, "none: no gpuprof clock marks found",
                                              error_ns=-1)
    meta.sources = [*meta.sources, *nsys.meta.sources]
    meta.extra["nsys_version"] = nsys.meta.tool_version
    for name in list(meta.absent):
        if not tables[name].empty:
            del meta.absent[name]
    return Profile(tables=tables, meta=meta)
