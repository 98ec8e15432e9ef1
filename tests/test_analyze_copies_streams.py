"""Copy summary and GPU/stream busy time: exact hand-built cases, a brute-force property check,
and real exports checked against plain SQL plus a plain-Python interval union."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.analyze.copies import copy_summary
from gpuprof.analyze.streams import busy_by, gpu_busy, largest_gaps, stream_busy
from gpuprof.model import conform
from tests.conftest import copies_per_kind, fixture_path, gpu_activity_rows, nsys_profile

EXPORTS = [
    "caoye310__Lower-Triangular-Solves__la.sqlite",
    "Lianhang666__gpu4__report2.sqlite",
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
    "PolPuigPuy__OpenACC_Project_PolPuig__report2.sqlite",
    "kamalchowdhury326__HW5_helper__report1.sqlite",
    "SpaceManV3__cp3__report5.sqlite",
]


def _intervals(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["device_id", "stream_id", "start_ns", "end_ns"])
    return conform("kernels", frame.assign(pid=1))


def _idle(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of each idle gap, by merging sorted intervals one by one (the obvious way)."""
    intervals = sorted(intervals)
    gaps = []
    cur_end = intervals[0][1]
    for start, end in intervals[1:]:
        if start > cur_end:
            gaps.append((cur_end, start))
        cur_end = max(cur_end, end)
    return gaps


def _union(intervals: list[tuple[int, int]]) -> dict:
    """Busy time, span and gaps from ``_idle``."""
    gaps = [end - start for start, end in _idle(intervals)]
    span = max(e for _, e in intervals) - min(s for s, _ in intervals)
    return {"busy_ns": span - sum(gaps), "span_ns": span, "gap_count": len(gaps),
            "gap_total_ns": sum(gaps), "gap_max_ns": max(gaps, default=0)}




# -- copies -------------------------------------------------------------------------------

def test_copy_summary_bandwidth_and_sizes():
    copies = conform("copies", pd.DataFrame({
        "start_ns": [0, 100, 0], "end_ns": [1000, 1100, 0], "bytes": [4000, 2000, 64],
        "kind": pd.Categorical(["memcpy", "memcpy", "memset"]),
        "direction": pd.Categorical(["HtoD", "HtoD", None]),
    }))
    out = copy_summary(copies).set_index(["kind", "direction"])
    h2d = out.loc[("memcpy", "HtoD")]
    assert (h2d["count"], h2d["total_bytes"], h2d["total_ns"]) == (2, 6000, 2000)
    assert h2d["bandwidth_bytes_per_s"] == pytest.approx(6000 / 2000e-9)
    assert (h2d["min_bytes"], h2d["mean_bytes"], h2d["max_bytes"]) == (2000, 3000, 4000)
    assert pd.isna(out.loc[("memset", "n/a"), "bandwidth_bytes_per_s"])  # zero time: no rate


@pytest.mark.parametrize("name", EXPORTS)
def test_copy_summary_matches_sql(name):
    expected = copies_per_kind(fixture_path("nsys", name), where='WHERE "end" >= start')
    out = copy_summary(nsys_profile(name).copies)
    got = {(r.kind, r.direction): (r.count, r.total_bytes, r.total_ns, r.min_bytes, r.max_bytes)
           for r in out.itertuples()}
    assert got == expected
    rate = out["total_bytes"] / (out["total_ns"] / 1e9)
    assert out["bandwidth_bytes_per_s"].to_numpy() == pytest.approx(rate.to_numpy(), nan_ok=True)


# -- busy time ----------------------------------------------------------------------------

def test_overlap_on_two_streams_counts_once_per_gpu():
    # stream 1: [0,10) [20,30); stream 2: [5,25) -> GPU busy [0,30) with no gap
    kernels = _intervals([(0, 1, 0, 10), (0, 1, 20, 30), (0, 2, 5, 25)])
    empty = conform("copies", pd.DataFrame())
    gpu = gpu_busy(kernels, empty).iloc[0]
    assert (gpu["busy_ns"], gpu["work_ns"], gpu["span_ns"], gpu["gap_count"]) == (30, 40, 30, 0)
    assert gpu["utilisation"] == 1.0
    streams = stream_busy(kernels, empty).set_index("stream_id")
    assert streams.loc[1, "busy_ns"] == 20 and streams.loc[1, "gap_total_ns"] == 10
    assert streams.loc[1, "utilisation"] == pytest.approx(20 / 30)
    assert streams.loc[2, "gap_count"] == 0


def test_nested_intervals_and_gaps():
    # [0,100) contains [10,20); then gaps of 50 and 5
    kernels = _intervals([(0, 1, 10, 20), (0, 1, 0, 100), (0, 1, 150, 160), (0, 1, 165, 170)])
    row = gpu_busy(kernels, conform("copies", pd.DataFrame())).iloc[0]
    assert (row["busy_ns"], row["span_ns"]) == (115, 170)
    assert (row["gap_count"], row["gap_total_ns"], row["gap_max_ns"]) == (2, 55, 50)


def test_copies_count_as_busy():
    kernels = _intervals([(0, 1, 0, 10)])
    copies = conform("copies", pd.DataFrame({
        "device_id": [0], "stream_id": [7], "pid": [1], "start_ns": [20], "end_ns": [30],
        "kind": pd.Categorical(["memcpy"])}))
    row = gpu_busy(kernels, copies).iloc[0]
    assert (row["count"], row["busy_ns"], row["gap_total_ns"]) == (2, 20, 10)


intervals_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 1000), st.integers(0, 200)), min_size=1,
    max_size=60)


@settings(max_examples=50, deadline=None)
@given(intervals_strategy)
def test_busy_time_equals_brute_force_union(items):
    frame = pd.DataFrame([(g, s, s + d) for g, s, d in items],
                         columns=["device_id", "start_ns", "end_ns"])
    out = busy_by(frame, ["device_id"]).set_index("device_id")
    for device, group in frame.groupby("device_id"):
        expected = _union(list(zip(group["start_ns"], group["end_ns"], strict=True)))
        assert out.loc[device, list(expected)].to_dict() == expected


@settings(max_examples=50, deadline=None)
@given(intervals_strategy)
def test_busy_time_on_the_many_groups_path_equals_brute_force_union(items):
    """Past FEW_GROUPS groups the running maximum lifts every group into one cumulative max;
    no fixture has that many streams, so the same check runs with the threshold at 0."""
    from unittest import mock

    from gpuprof.analyze import streams

    with mock.patch.object(streams, "FEW_GROUPS", 0):
        test_busy_time_equals_brute_force_union.hypothesis.inner_test(items)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60), st.integers(0, 6)),
                min_size=1, max_size=40), st.integers(0, 4))
def test_longest_gaps_with_ties_equal_brute_force(items, top):
    """Small integer times make equal gaps common: the partition's threshold must keep every
    tie and the order must be longest first, earliest first among equals."""
    kernels = _intervals([(g, 1, s, s + d) for g, s, d in items])
    got = largest_gaps(kernels, conform("copies", pd.DataFrame()), top=top)
    for device in sorted({g for g, _, _ in items}):
        intervals = [(s, s + d) for g, s, d in items if g == device]
        expected = sorted(_idle(intervals), key=lambda g: (g[0] - g[1], g[0]))[:top]
        mine = got[got["device_id"] == device]
        assert list(zip(mine["gap_start_ns"], mine["gap_end_ns"], strict=True)) == expected


@pytest.mark.parametrize("name", EXPORTS)
def test_busy_time_matches_sql_and_plain_union(name):
    rows = gpu_activity_rows(name, 'WHERE "end" >= start')
    per_gpu, per_stream = defaultdict(list), defaultdict(list)
    for device, pid, stream, start, end in rows:
        per_gpu[device].append((start, end))
        per_stream[(device, pid, stream)].append((start, end))
    profile = nsys_profile(name)
    gpus = gpu_busy(profile.kernels, profile.copies).set_index("device_id")
    streams = stream_busy(profile.kernels, profile.copies).set_index(
        ["device_id", "pid", "stream_id"])
    assert sorted(gpus.index) == sorted(per_gpu)
    assert sorted(streams.index) == sorted(per_stream)
    for device, intervals in per_gpu.items():
        expected = _union(intervals)
        assert gpus.loc[device, list(expected)].to_dict() == expected
        assert gpus.loc[device, "count"] == len(intervals)
    for key, intervals in per_stream.items():
        expected = _union(intervals)
        assert streams.loc[key, list(expected)].to_dict() == expected


def test_largest_gaps_hand_built():
    kernels = _intervals([(0, 1, 0, 10), (0, 2, 5, 20), (0, 1, 50, 60), (0, 1, 65, 70),
                          (1, 1, 0, 10), (1, 1, 100, 110)])
    gaps = largest_gaps(kernels, conform("copies", pd.DataFrame()), top=1)
    assert gaps.to_dict("records") == [
        {"device_id": 0, "gap_start_ns": 20, "gap_end_ns": 50, "gap_ns": 30},
        {"device_id": 1, "gap_start_ns": 10, "gap_end_ns": 100, "gap_ns": 90}]


@pytest.mark.parametrize("name", EXPORTS[:4])
def test_largest_gaps_match_plain_union(name):
    rows = gpu_activity_rows(name, 'WHERE "end" >= start')
    per_gpu = defaultdict(list)
    for device, _, _, start, end in rows:
        per_gpu[device].append((start, end))
    profile = nsys_profile(name)
    got = largest_gaps(profile.kernels, profile.copies, top=5)
    for device, intervals in per_gpu.items():
        expected = sorted(_idle(intervals), key=lambda g: (g[0] - g[1], g[0]))[:5]
        mine = got[got["device_id"] == device]
        assert list(zip(mine["gap_start_ns"], mine["gap_end_ns"], strict=True)) == expected


def test_two_gpus_are_kept_apart():
    name = "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite"
    gpus = gpu_busy(nsys_profile(name).kernels, nsys_profile(name).copies)
    assert len(gpus) == 2
    assert (gpus["busy_ns"] <= gpus["work_ns"]).all()
    assert ((gpus["utilisation"] > 0) & (gpus["utilisation"] <= 1)).all()


def test_report_builds_each_gpu_timeline_once(monkeypatch):
    """Regression: the GPU, gap and stream sections each rebuilt the intervals, and the first
    two the same per-GPU timeline; one report builds the intervals once and each grouping's
    timeline once, with the same sections as separate calls give."""
    from gpuprof.analyze import streams
    from gpuprof.render import nsys_report

    profile = nsys_profile(EXPORTS[0])
    alone = {s.key: s.table for s in (nsys_report.gpu_section(profile),
                                      nsys_report.gap_section(profile),
                                      nsys_report.stream_section(profile))}
    built = {"intervals": 0, "timelines": []}
    intervals, timeline = streams.gpu_intervals, streams._Timeline

    def count_intervals(*args):
        built["intervals"] += 1
        return intervals(*args)

    def count_timelines(frame, keys):
        built["timelines"].append(tuple(keys))
        return timeline(frame, keys)

    monkeypatch.setattr(streams, "gpu_intervals", count_intervals)
    monkeypatch.setattr(streams, "_Timeline", count_timelines)
    sections = {s.key: s.table for s in nsys_report.build_sections(profile)}
    assert built["intervals"] == 1
    assert sorted(built["timelines"]) == [tuple(streams.GPU_KEYS), tuple(streams.STREAM_KEYS)]
    for key, table in alone.items():
        pd.testing.assert_frame_equal(sections[key], table)
