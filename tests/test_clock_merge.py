"""The general clock merge: sources moved onto the reference clock by their anchors, and the
nsys anchor from the session's UTC start, checked against plain SQL on a real export."""

from __future__ import annotations

import time

import pandas as pd

from gpuprof.align.clock import merge, nsys_anchor, realtime_to_monotonic
from gpuprof.model import ClockDomain, Profile
from tests.conftest import nsys_profile, nsys_sql

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"


def test_realtime_to_monotonic_matches_the_two_clocks():
    found = realtime_to_monotonic()
    direct = time.time_ns() - time.monotonic_ns()
    assert abs(found.offset_ns - direct) < 5_000_000   # the same offset, read a moment apart
    assert 0 <= found.error_ns < 1_000_000


def test_an_export_without_clock_marks_is_anchored_by_its_utc_session_start():
    nsys = nsys_profile(RESNET)
    clock = nsys_anchor(nsys)
    (utc,), = nsys_sql(RESNET, "SELECT utcEpochNs FROM TARGET_INFO_SESSION_START_TIME")
    expect = utc - (time.time_ns() - time.monotonic_ns())
    assert abs(clock.offset_ns - expect) < 5_000_000
    assert clock.method.startswith("utc-anchor") and clock.error_ns >= 1_000_000


def test_merge_moves_each_source_by_its_anchor_and_records_it():
    nsys = nsys_profile(RESNET)
    reference = Profile(tables={"network_events": pd.DataFrame({
        "time_ns": [5, 6], "pid": [1, 1], "local_port": [1, 1], "remote_port": [2, 2],
        "direction": ["send", "recv"], "bytes": [1, 1]})})
    merged = merge(reference, (nsys, ClockDomain("nsys", 1_000, "test anchor", 7)))
    (first,), = nsys_sql(RESNET, "SELECT MIN(start) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    assert merged.kernels["start_ns"].min() == first + 1_000
    assert len(merged.network_events) == 2 and merged.network_events["time_ns"].min() == 5
    assert merged.meta.clocks["nsys"].error_ns == 7
    assert "kernels" not in merged.meta.absent
