"""Memory over time: running use, peaks and phases per kind of memory, their labels; and a
plain message when not captured."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.analyze.memory import ONE_KIND, memory_summary, memory_timeline, on_host
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import Profile, conform
from gpuprof.render.memory_labels import memory_label, memory_labels
from gpuprof.render.nsys_report import memory_section
from tests.conftest import fixture_path

MIB = 1 << 20


def _events(rows, phases=None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["time_ns", "device_id", "source", "bytes"])
    frame["source"] = frame["source"].astype("category")
    if phases is not None:
        frame["phase"] = pd.Categorical(phases)
    return conform("memory_events", frame)


def test_timeline_is_a_running_sum_per_source_and_device():
    events = _events([(30, 0, "nsys", -100), (10, 0, "nsys", 100), (20, 0, "nsys", 50),
                      (15, 1, "nsys", 7), (12, 0, "trt", 1000)])
    timeline = memory_timeline(events)
    assert list(timeline["time_ns"]) == [10, 12, 15, 20, 30]
    assert list(timeline["used_bytes"]) == [100, 1000, 7, 150, 50]


def test_summary_peak_time_phase_and_counts():
    events = _events([(0, 0, "alloc", 10 * MIB), (5, 0, "alloc", 20 * MIB),
                      (6, 0, "alloc", -20 * MIB), (9, 0, "alloc", 5 * MIB)],
                     phases=["load", "infer", "infer", "teardown"])
    row = memory_summary(events).iloc[0]
    assert (row["peak_bytes"], row["peak_time_ns"], row["peak_phase"]) == (30 * MIB, 5, "infer")
    assert (row["final_bytes"], row["allocations"], row["frees"]) == (15 * MIB, 3, 1)
    assert (row["allocated_bytes"], row["freed_bytes"]) == (35 * MIB, 20 * MIB)


def test_same_instant_events_keep_their_order():
    # allocate then free at one timestamp: the short-lived peak must not vanish
    row = memory_summary(_events([(5, 0, "a", 64), (5, 0, "a", -64)])).iloc[0]
    assert (row["peak_bytes"], row["final_bytes"]) == (64, 0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(-1000, 1000)), min_size=1, max_size=40))
def test_summary_matches_a_plain_loop(items):
    events = _events([(t, 0, "s", b) for t, b in items])
    used, peak, peak_time = 0, None, None
    for t, b in sorted(items, key=lambda item: item[0]):  # sorted() is stable, like the analysis
        used += b
        if peak is None or used > peak:
            peak, peak_time = used, t
    row = memory_summary(events).iloc[0]
    assert (row["peak_bytes"], row["peak_time_ns"], row["final_bytes"]) == (peak, peak_time, used)
    assert row["allocations"] == sum(1 for _, b in items if b > 0)


def test_empty_events_give_empty_frames():
    empty = conform("memory_events", pd.DataFrame())
    assert memory_timeline(empty).empty and memory_summary(empty).empty
    assert "peak_bytes" in memory_summary(empty).columns


def test_report_says_how_to_capture_memory_when_absent():
    profile = read_nsys(fixture_path("nsys", "Lianhang666__gpu4__report2.sqlite"))
    assert profile.memory_events.empty
    section = memory_section(profile)
    assert section.table is None
    assert "not captured" in section.notes[0]
    assert "nsys profile --cuda-memory-usage=true" in section.notes[0]


def test_report_memory_section_in_mib_from_first_event():
    profile = Profile(tables={
        "kernels": pd.DataFrame({"start_ns": [1_000_000], "end_ns": [2_000_000]}),
        "memory_events": _events([(3_000_000, 0, "nsys", 256 * MIB),
                                  (4_000_000, 0, "nsys", -128 * MIB)])})
    table = memory_section(profile).table
    assert table["Peak (MiB)"].iloc[0] == 256 and table["Final (MiB)"].iloc[0] == 128
    assert table["Peak at (ms)"].iloc[0] == pytest.approx(2.0)
    assert pd.isna(table["Phase at peak"].iloc[0])


def _kinded(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["time_ns", "device_id", "memory_kind", "bytes"])
    frame["source"] = "nsys"
    return conform("memory_events", frame)


def test_kinds_are_summed_apart():
    # pinned host memory recorded under GPU 0's context is not GPU 0's device memory
    events = _kinded([(0, 0, "device", 10 * MIB), (1, 0, "pinned", 80 * MIB),
                      (2, 0, "device", 5 * MIB), (3, 0, "pinned", -80 * MIB),
                      (4, 0, "device", -15 * MIB), (5, 1, "device", 7 * MIB)])
    summary = memory_summary(events).set_index(["device_id", "memory_kind"])
    assert summary.loc[(0, "device"), "peak_bytes"] == 15 * MIB
    assert summary.loc[(0, "device"), "peak_time_ns"] == 2
    assert summary.loc[(0, "pinned"), "peak_bytes"] == 80 * MIB
    assert summary.loc[(1, "device"), "peak_bytes"] == 7 * MIB
    timeline = memory_timeline(events)
    device0 = timeline[(timeline["device_id"] == 0) & (timeline["memory_kind"] == "device")]
    assert device0["used_bytes"].tolist() == [10 * MIB, 15 * MIB, 0]


def test_events_without_a_kind_keep_one_line_per_source_and_device():
    events = _events([(0, 0, "trt_allocator", 64), (1, -1, "process_rss", 4096)])
    summary = memory_summary(events)
    assert summary["memory_kind"].tolist() == [ONE_KIND, ONE_KIND]
    assert memory_labels(summary) == ["host", "GPU 0"]  # rows sorted by source


def test_labels_say_where_the_memory_lives():
    assert memory_label(0, "device") == "GPU 0 device"
    assert memory_label(1, "device_static") == "GPU 1 device static"
    assert memory_label(0, "pinned") == "host pinned"
    assert memory_label(0, "pageable") == "host pageable"
    assert memory_label(2, "managed") == "managed (GPU 2)"
    assert on_host(0, "pinned") and on_host(-1, ONE_KIND) and not on_host(0, "device")


def test_host_kinds_from_several_gpus_stay_distinct():
    events = _kinded([(0, 0, "pinned", 8), (1, 1, "pinned", 16), (2, 0, "device", 4),
                      (3, 1, "device", 2)])
    summary = memory_summary(events)
    labels = memory_labels(summary)
    assert len(set(labels)) == len(labels) == 4
    assert "host pinned (GPU 1 context)" in labels and "GPU 1 device" in labels


def test_report_rows_per_kind_in_mib():
    profile = Profile(tables={"memory_events": _kinded([
        (1_000_000, 0, "device", 256 * MIB), (2_000_000, 0, "pinned", 1024 * MIB),
        (3_000_000, 0, "pinned", -1024 * MIB)])})
    section = memory_section(profile)
    table = section.table.set_index("Memory")
    assert table.loc["GPU 0 device", "Peak (MiB)"] == 256
    assert table.loc["host pinned", "Peak (MiB)"] == 1024
    assert table.loc["host pinned", "Final (MiB)"] == 0
    assert table.loc["host pinned", "Peak at (ms)"] == pytest.approx(1.0)
    assert any("not GPU memory" in note for note in section.notes)
