"""Putting sources on one clock, and merging their tables.

A run gpuprof drives emits NVTX marks whose text carries ``time.monotonic_ns()`` taken just
before the mark (``gpuprof-clock monotonic_ns=N at=LABEL``). In the nsys export each mark has a
session-clock timestamp, so ``N - mark.start_ns`` is the offset from nsys's clock to the host
monotonic clock (the clock Triton traces and bpftrace use too). With two or more marks, the
spread of their offsets bounds the error.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import ClockDomain, Profile
from ..model.tables import time_columns

CLOCK_MARK = re.compile(r"gpuprof-clock monotonic_ns=(\d+)")
# Taking the clock and emitting the mark are two calls: allow a few microseconds between them.
MIN_ERROR_NS = 5_000
# a UTC anchor is only as good as the system clock between the capture and now: NTP slews it
# by up to 500 ppm, so 1 ms covers about 2 s of slewing; the method says drift is not bounded
UTC_ANCHOR_ALLOWANCE_NS = 1_000_000


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


def shifted(name: str, frame: pd.DataFrame, offset_ns: int) -> pd.DataFrame:
    """Table ``name``'s ``frame`` with every instant moved by ``offset_ns`` (missing times,
    -1, stay)."""
    if offset_ns == 0:
        return frame
    out = frame.copy()
    for col in time_columns(name):
        if col in out:
            values = out[col].to_numpy()
            out[col] = np.where(values >= 0, values + offset_ns, values)
    return out


def merge(reference: Profile, *sources: tuple[Profile, ClockDomain]) -> Profile:
    """The reference run's tables plus each source's, moved onto the reference clock by the
    source's anchor (``ClockDomain.offset_ns``, recorded in ``meta.clocks`` with its method
    and error bound). Tables the reference already filled keep its rows and gain the
    source's (e.g. allocator and nsys memory events side by side, told apart by ``source``).
    """
    tables = dict(reference.tables)
    meta = reference.meta
    for profile, clock in sources:
        for name, frame in tables.items():
            theirs = shifted(name, profile.tables[name], clock.offset_ns)
            if not theirs.empty:
                tables[name] = theirs if frame.empty else pd.concat([frame, theirs],
                                                                    ignore_index=True)
        meta.clocks[clock.name] = clock
        meta.sources = [*meta.sources, *profile.meta.sources]
    for name in list(meta.absent):
        if not tables[name].empty:
            del meta.absent[name]
    return Profile(tables=tables, meta=meta)


def nsys_anchor(nsys: Profile) -> ClockDomain:
    """How to put an nsys export on the host's CLOCK_MONOTONIC: gpuprof's clock marks where
    gpuprof drove the run, else the session's UTC start and the realtime-to-monotonic offset
    measured now (right only for a capture made on this machine since its last boot, and
    loose: the system clock may have been slewed since), else nothing."""
    marks = offset_from_marks(nsys.nvtx_ranges)
    if marks is not None:
        return marks
    if nsys.meta.session_start_utc_ns is not None:
        now = realtime_to_monotonic()
        return ClockDomain("nsys", nsys.meta.session_start_utc_ns - now.offset_ns,
                           "utc-anchor: TARGET_INFO_SESSION_START_TIME plus the realtime-to-"
                           "monotonic offset measured at merge time (same machine and boot "
                           "assumed; clock drift since the capture is not bounded)", error_ns=now.error_ns + UTC_ANCHOR_ALLOWANCE_NS)
    return ClockDomain("nsys", 0, "none: no gpuprof clock marks and no session start time",
                       error_ns=-1)


@dataclass
class RealtimeOffset:
    offset_ns: int    # CLOCK_REALTIME - CLOCK_MONOTONIC
    error_ns: int     # half the time between the two monotonic reads around the realtime one


def realtime_to_monotonic(tries: int = 5) -> RealtimeOffset:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, read between two monotonic reads; the tightest
    of a few tries. Subtract it from a wall-clock (UTC epoch) time to get monotonic time."""
    best = None
    for _ in range(tries):
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        found = RealtimeOffset(wall - (before + after) // 2, (after - before + 1) // 2)
        best = found if best is None or found.error_ns < best.error_ns else best
    return best


def merge_nsys(run: Profile, nsys: Profile) -> Profile:
    """A driven run plus the nsys export gpuprof captured of it (anchored by clock marks)."""
    clock = offset_from_marks(nsys.nvtx_ranges) or ClockDomain(
        "nsys", 0, "none: no gpuprof clock marks found", error_ns=-1)
    merged = merge(run, (nsys, clock))
    merged.meta.extra["nsys_version"] = nsys.meta.tool_version
    # whether the export's return values, payloads and launch configurations were read: the
    # API calls are the export's, and a trace must not show unread return values as success
    if "details" in nsys.meta.extra:
        merged.meta.extra["details"] = nsys.meta.extra["details"]
    return merged
