"""Clock alignment through gpuprof's NVTX clock marks, merging an nsys export into a driven
TensorRT run, and the three-way layer reconciliation — on the real TensorRT ResNet-50 export."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from gpuprof.align.clock import MIN_ERROR_NS, merge_nsys, offset_from_marks
from gpuprof.analyze.layers import ENGINE_WRAPPER
from gpuprof.analyze.reconcile import profiler_overhead, reconcile_layers
from gpuprof.api import Run
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import ClockDomain, Profile, RunMeta, conform
from gpuprof.render.engine_report import build_engine_report
from gpuprof.render.report import render

from .conftest import SQL_KERNEL_LAUNCHES, SQL_TENSORRT_DOMAIN, fixture_path, nsys_sql
from .test_layers import RESNET, SQL_LAYER_TOTALS

OFFSET = 7_000_000_000  # monotonic clock minus nsys session clock in the synthetic run


def _marks(starts_and_values) -> pd.DataFrame:
    return conform("nvtx_ranges", pd.DataFrame({
        "start_ns": [s for s, _ in starts_and_values], "end_ns": [s for s, _ in starts_and_values],
        "range_kind": pd.Categorical(["mark"] * len(starts_and_values)),
        "domain": pd.Categorical(["gpuprof"] * len(starts_and_values)),
        "text": pd.Categorical([f"gpuprof-clock monotonic_ns={v} at=x" for _, v in starts_and_values]),
    }))


def test_offset_from_marks_and_error_bound():
    clock = offset_from_marks(_marks([(500, 1_000_500), (9_000, 1_009_000)]))
    assert (clock.offset_ns, clock.error_ns) == (1_000_000, MIN_ERROR_NS)
    drifting = offset_from_marks(_marks([(500, 1_000_500), (9_000, 1_029_000)]))
    assert drifting.error_ns == 10_000  # half the 20 µs disagreement around the median
    assert offset_from_marks(_marks([])) is None


@pytest.fixture(scope="module")
def nsys_with_marks():
    """The real export plus the two clock marks a gpuprof runner would have emitted."""
    profile = read_nsys(fixture_path("nsys", RESNET))
    first = int(profile.kernels["start_ns"].min())
    marks = _marks([(first - 1000, first - 1000 + OFFSET), (first + 10**8, first + 10**8 + OFFSET)])
    ranges = pd.concat([profile.nvtx_ranges, marks], ignore_index=True)
    return Profile(tables={**profile.tables, "nvtx_ranges": ranges}, meta=profile.meta)


def _iprofiler_run(layer_ns: dict[str, float], iterations: int = 3, compute_ns: int = 4_000_000):
    """A TensorRT runner's own tables: IProfiler layer times and CUDA-event iterations."""
    rows = [{"iteration": i, "layer": name, "duration_ns": int(ns), "source": "iprofiler"}
            for i in range(iterations) for name, ns in layer_ns.items()]
    its = pd.DataFrame({"iteration": range(iterations), "compute_ns": [compute_ns] * iterations,
                        "source": "cuda_events"})
    meta = RunMeta(tool="tensorrt", clocks={"host_monotonic": ClockDomain("host_monotonic")},
                   absent={"kernels": "the run recorded no rows"})
    return Profile(tables={"layer_timings": pd.DataFrame(rows), "iterations": its}, meta=meta)


def _sql_per_call():
    con = sqlite3.connect(f"file:{fixture_path('nsys', RESNET)}?mode=ro", uri=True)
    totals = pd.DataFrame(con.execute(SQL_LAYER_TOTALS).fetchall(), columns=["layer", "total_ns", "kernels"])
    con.close()
    totals = totals.dropna().set_index("layer")
    return totals["total_ns"] / 50  # 50 inferences, each layer once per inference


def test_merge_puts_nsys_on_the_run_clock(nsys_with_marks):
    run = _iprofiler_run({"a": 1000})
    merged = merge_nsys(run, nsys_with_marks)
    assert merged.meta.clocks["nsys"].offset_ns == OFFSET
    assert merged.meta.clocks["nsys"].method.startswith("nvtx-clock-marks")
    assert len(merged.kernels) == 3251 and "kernels" not in merged.meta.absent
    original = nsys_with_marks.kernels["start_ns"].to_numpy()
    assert (merged.kernels["start_ns"].to_numpy() == original + OFFSET).all()
    assert len(merged.layer_timings) == 3  # the run's own tables are kept
    # the export was read without details: the merged run says so, so its trace shows no
    # return value for the export's API calls (the unread column is no success code)
    assert nsys_with_marks.meta.extra["details"] is False
    assert merged.meta.extra["details"] is False


def test_reconciliation_against_sql(nsys_with_marks):
    per_call = _sql_per_call()
    # IProfiler reports 10% more than the kernels for every layer (event overhead, say)
    run = _iprofiler_run({name: ns * 1.1 for name, ns in per_call.items()})
    table = reconcile_layers(merge_nsys(run, nsys_with_marks)).set_index("layer")
    common = per_call.index
    assert table.loc[common, "kernel_ns"].to_numpy() == pytest.approx(per_call.to_numpy())
    assert (table["span_ns"].dropna() >= table["kernel_ns"].dropna() - 1e-6).all()
    no_gaps = table["gaps_ns"] == 0
    # int() truncation of the synthetic IProfiler times costs under 0.01%
    assert table.loc[no_gaps & table["iprofiler_ns"].notna(), "iprofiler_vs_span"].to_numpy() \
        == pytest.approx(0.1, abs=1e-3)


def test_layers_without_kernels_or_without_iprofiler_are_kept(nsys_with_marks):
    run = _iprofiler_run({"/fc/Gemm": 20_000, "only-in-iprofiler": 5_000})
    table = reconcile_layers(merge_nsys(run, nsys_with_marks)).set_index("layer")
    assert np.isnan(table.loc["only-in-iprofiler", "span_ns"])
    assert np.isnan(table.loc["/conv1/Conv + /relu/Relu", "iprofiler_ns"])


def test_reconciliation_reuses_the_runs_cached_projection(nsys_with_marks, monkeypatch):
    """Regression: reconcile projected kernels onto NVTX ranges again instead of using the
    projection a loaded Run caches (and its layer table has already made)."""
    import sys

    from gpuprof.align import nvtx

    merged = merge_nsys(_iprofiler_run({"/fc/Gemm": 20_000}), nsys_with_marks)
    expected = reconcile_layers(merged)
    projections = []
    project = nvtx.project_to_ranges
    # count through every module that imported the projection by name
    for module in [m for name, m in sys.modules.items() if name.startswith("gpuprof")]:
        if getattr(module, "project_to_ranges", None) is project:
            monkeypatch.setattr(module, "project_to_ranges",
                                lambda *args: projections.append(1) or project(*args))
    run = Run.of(merged)
    run.layers()
    table = run.reconcile()
    assert len(projections) == 1
    pd.testing.assert_frame_equal(table, expected)


# Per TensorRT push/pop range instance: the kernels whose runtime call (same correlation id, same
# process) falls inside it on its thread, innermost range first; their first start, last end and
# summed durations. Then per layer name, the mean over the instances that launched kernels.
SQL_SPANS_PER_CALL = f"""
WITH ranges AS (
  SELECT n.rowid AS id, n.start, n.end, n.globalTid, COALESCE(n.text, s.value) AS name
  FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
  WHERE n.eventType = 59 AND n.domainId IN {SQL_TENSORRT_DOMAIN}),
launched AS (
  SELECT k.start AS ks, k.end AS ke,
         (SELECT g.id FROM ranges g WHERE g.globalTid = r.globalTid AND g.start <= r.start
            AND g.end >= r.end ORDER BY g.start DESC, g.end ASC LIMIT 1) AS range_id
  FROM {SQL_KERNEL_LAUNCHES}),
calls AS (
  SELECT range_id, MAX(ke) - MIN(ks) AS span, SUM(ke - ks) AS kernels
  FROM launched WHERE range_id IS NOT NULL GROUP BY range_id)
SELECT g.name, AVG(c.span), AVG(c.kernels), COUNT(*)
FROM calls c JOIN ranges g ON g.id = c.range_id GROUP BY g.name
"""


def test_span_and_gaps_match_sql(nsys_with_marks):
    """GPU span and gaps per call, recomputed from the export's own rows with plain SQL."""
    expected = {name: (span, kernels) for name, span, kernels, _ in
                nsys_sql(RESNET, SQL_SPANS_PER_CALL) if not ENGINE_WRAPPER.match(name)}
    run = Run.of(merge_nsys(_iprofiler_run({"/fc/Gemm": 20_000}), nsys_with_marks))
    table = run.reconcile().set_index("layer")
    measured = table[table["span_ns"].notna()]
    assert len(expected) > 50 and set(measured.index) == set(expected)
    for name, (span, kernels) in expected.items():
        assert measured.loc[name, "span_ns"] == pytest.approx(span, rel=1e-12)
        assert measured.loc[name, "kernel_ns"] == pytest.approx(kernels, rel=1e-12)
        assert measured.loc[name, "gaps_ns"] == pytest.approx(span - kernels, abs=1e-3)


def test_profiler_overhead_and_report_section(nsys_with_marks):
    per_call = _sql_per_call()
    run = _iprofiler_run({name: ns for name, ns in per_call.items()}, compute_ns=700_000)
    merged = merge_nsys(run, nsys_with_marks)
    overhead = profiler_overhead(merged)
    assert overhead["iprofiler_sum_ns"] == pytest.approx(per_call.astype("int64").sum())
    assert overhead["ratio"] == pytest.approx(overhead["iprofiler_sum_ns"] / 700_000)
    report = build_engine_report(Run.of(merged))
    section = report.section("reconcile")
    assert section is not None and "Profiler overhead" in " ".join(section.notes)
    assert "three measurements" in render(report, "md")


def test_describe_by_keeps_groups_with_missing_keys():
    """Regression: pandas 3 keeps NA through astype(str); such groups must not be dropped."""
    from gpuprof.analyze.stats import describe_by

    frame = pd.DataFrame({"layer": ["a", "b", "a", "b"],
                          "layer_type": pd.Series([None] * 4, dtype=object).astype(str),
                          "ns": [5, 6, 7, 8]})
    out = describe_by(frame, ["layer", "layer_type"], "ns").set_index("layer")
    assert out.loc["a", "count"] == 2 and out.loc["b", "total"] == 14
    assert out.loc["a", "p50"] == 6
