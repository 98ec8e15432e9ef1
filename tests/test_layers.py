"""NVTX projection and the TensorRT layer table, checked against plain SQL on the same export."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from gpuprof.align.nvtx import match_calls, project_to_ranges
from gpuprof.analyze.layers import layer_name, pareto
from gpuprof.api import load
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import conform

from .conftest import SQL_KERNEL_LAUNCHES, fixture_path, sql_domain

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"

def sql_range_totals(domain: str | None = None) -> str:
    """Independent computation, in plain SQL: for each kernel, its runtime call (same correlation
    id and process), then the innermost push/pop range enclosing that call on its thread, of NVTX
    domain ``domain`` only when given. Rows: (range name or NULL, total_ns, kernels)."""
    in_domain = "" if domain is None else f" AND n.domainId IN {sql_domain(domain)}"
    return f"""
WITH ranges AS (
  SELECT n.start, n.end, n.globalTid, COALESCE(n.text, s.value) AS name
  FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId WHERE n.eventType = 59{in_domain}),
launched AS (
  SELECT k.end - k.start AS dur, r.start AS rs, r.end AS re, r.globalTid AS tid
  FROM {SQL_KERNEL_LAUNCHES})
SELECT (SELECT name FROM ranges g WHERE g.globalTid = l.tid AND g.start <= l.rs AND g.end >= l.re
        ORDER BY g.start DESC, g.end ASC LIMIT 1) AS range_name,
       SUM(dur) AS total_ns, COUNT(*) AS kernels
FROM launched l GROUP BY range_name
"""


# The TensorRT layer table: kernels in the TensorRT domain's ranges.
SQL_LAYER_TOTALS = sql_range_totals("TensorRT")
# Any program's NVTX ranges (not TensorRT), as the independent side of the "GPU time by NVTX
# range" section and its coverage line.
SQL_RANGE_TOTALS = sql_range_totals()


@pytest.fixture(scope="module")
def resnet():
    return load(fixture_path("nsys", RESNET))


def test_layer_totals_equal_plain_sql(resnet):
    con = sqlite3.connect(f"file:{fixture_path('nsys', RESNET)}?mode=ro", uri=True)
    expected = pd.DataFrame(con.execute(SQL_LAYER_TOTALS).fetchall(), columns=["layer", "total_ns", "kernels"])
    con.close()
    expected = expected.dropna(subset=["layer"]).set_index("layer")
    layers = resnet.layers().set_index("layer")
    in_sql = expected.index
    assert len(layers) == 60
    assert (layers.loc[in_sql, "total_ns"].astype("int64") == expected["total_ns"]).all()
    assert (layers.loc[in_sql, "kernels"].astype("int64") == expected["kernels"]).all()
    # Layers that launched no kernel (e.g. a no-op reshape) are present with zero time.
    assert (layers.drop(index=in_sql)["total_ns"] == 0).all()


def test_resnet_layer_table_shape(resnet):
    layers = resnet.layers()
    assert layers["calls"].eq(50).all()  # 50 inferences, every layer once each
    assert layers["kernels"].sum() == 3250  # one of 3251 kernels ran outside the engine
    assert layers["share"].sum() == pytest.approx(1.0)
    assert layers["cumulative_share"].is_monotonic_increasing
    assert layers["total_ns"].is_monotonic_decreasing
    assert layers.loc[layers["reformat"], "layer"].str.startswith("Reformatting CopyNode").all()
    assert layers["reformat"].sum() == 3
    top = layers.iloc[0]
    assert top["layer"].startswith("/layer4/layer4.0/conv2/Conv")
    assert top["top_kernels"][0].startswith("sm75_xmma_fprop_implicit_gemm")
    assert resnet.nvtx_coverage("TensorRT") == pytest.approx(40976839 / 40978567)


def test_median_per_call_matches_numpy(resnet):
    attributed = resnet.attributed()  # all domains: innermost is the layer range here too
    ranges = resnet.nvtx_ranges
    layers = resnet.layers().set_index("layer")
    name = "/conv1/Conv + /relu/Relu"
    rows = np.flatnonzero((ranges["text"] == name).to_numpy())
    per_call = [attributed.loc[attributed["range_row"] == r, "duration_ns"].sum() for r in rows]
    assert layers.loc[name, "median_ns"] == np.median(per_call)
    assert layers.loc[name, "mean_ns"] == pytest.approx(np.mean(per_call))


def test_pareto_line():
    layers = pd.DataFrame({"total_ns": [50, 30, 15, 5]})
    layers["cumulative_share"] = layers["total_ns"].cumsum() / 100
    assert pareto(layers, 0.8) == (2, 0.8)
    assert pareto(layers, 0.81) == (3, 0.95)


@pytest.mark.parametrize("name", ["caoye310__Lower-Triangular-Solves__la.sqlite",
                                  "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
                                  "MohanadOdema__DLProf__w_Relu__nsys_profile.sqlite"])
def test_projection_equals_brute_force(name):
    profile = read_nsys(fixture_path("nsys", name))
    got = project_to_ranges(profile.kernels, profile.api_calls, profile.nvtx_ranges)
    calls = match_calls(profile.kernels, profile.api_calls)
    ranges = profile.nvtx_ranges
    push_pop = ranges[ranges["range_kind"] == "push_pop"]
    sample = np.linspace(0, len(got) - 1, num=min(300, len(got)), dtype=int)
    for i in sample:
        expected = -1
        if calls[i] >= 0:
            call = profile.api_calls.iloc[calls[i]]
            enclosing = push_pop[(push_pop.global_tid == call.global_tid) & (push_pop.start_ns <= call.start_ns)
                                 & (push_pop.end_ns >= call.end_ns)]
            if len(enclosing):
                inner = enclosing.sort_values(["start_ns", "end_ns"], ascending=[False, True]).index[0]
                expected = ranges.index.get_loc(inner)
        assert got[i] == expected


def _frames(ranges, calls, kernels):
    nvtx = conform("nvtx_ranges", pd.DataFrame(ranges, columns=["start_ns", "end_ns", "global_tid", "text"])
                   .assign(range_kind="push_pop", domain="d", pid=1))
    api = conform("api_calls", pd.DataFrame(calls, columns=["start_ns", "end_ns", "global_tid", "correlation_id"])
                  .assign(pid=1))
    work = conform("kernels", pd.DataFrame(kernels, columns=["correlation_id"]).assign(pid=1, start_ns=0, end_ns=1))
    return work, api, nvtx


def test_projection_nesting_and_threads():
    ranges = [(0, 100, 7, "outer"), (10, 50, 7, "mid"), (20, 30, 7, "inner"), (60, 70, 7, "sib"),
              (0, 100, 8, "other-thread")]
    calls = [(21, 29, 7, 1), (31, 40, 7, 2), (55, 58, 7, 3), (61, 62, 7, 4), (5, 6, 8, 5), (5, 200, 7, 6)]
    work, api, nvtx = _frames(ranges, calls, [1, 2, 3, 4, 5, 6, 99])
    got = project_to_ranges(work, api, nvtx)
    assert list(got) == [2, 1, 0, 3, 4, -1, -1]


def test_projection_same_start_prefers_inner():
    ranges = [(10, 50, 7, "outer"), (10, 20, 7, "inner")]
    work, api, nvtx = _frames(ranges, [(11, 12, 7, 1), (25, 26, 7, 2)], [1, 2])
    assert list(project_to_ranges(work, api, nvtx)) == [1, 0]


def test_layer_name_from_detailed_json():
    assert layer_name('{"Name":"conv1 + relu","LayerType":"CaskConvolution"}') == "conv1 + relu"
    assert layer_name('{"name": "trunc\\"ated", "x": ') == 'trunc\\"ated'
    assert layer_name("/conv1/Conv") == "/conv1/Conv"


def test_range_table_without_nvtx_is_empty_not_an_error():
    run = load(fixture_path("nsys", "0x822a5b87__test-cuda__report1.sqlite"))  # kernels, no NVTX
    assert run.gpu_time_by_range().empty and run.layers().empty


@pytest.mark.parametrize("name", ["caoye310__Lower-Triangular-Solves__la.sqlite",
                                  "MohanadOdema__DLProf__w_Relu__nsys_profile.sqlite"])
def test_gpu_time_by_range_and_coverage_equal_plain_sql(name):
    path = fixture_path("nsys", name)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = con.execute(SQL_RANGE_TOTALS).fetchall()
    total_kernel_ns = con.execute('SELECT SUM("end" - start) FROM CUPTI_ACTIVITY_KIND_KERNEL').fetchone()[0]
    con.close()
    expected = pd.DataFrame(rows, columns=["name", "total_ns", "kernels"])
    inside = expected.dropna(subset=["name"]).groupby("name")[["total_ns", "kernels"]].sum()
    run = load(path)
    table = run.gpu_time_by_range().groupby("name")[["total_ns", "kernels"]].sum()
    got = table[table["kernels"] > 0]
    assert got.index.sort_values().tolist() == inside.index.sort_values().tolist()
    assert (got.loc[inside.index, "total_ns"].astype("int64") == inside["total_ns"]).all()
    assert (got.loc[inside.index, "kernels"].astype("int64") == inside["kernels"]).all()
    assert run.nvtx_coverage() == pytest.approx(inside["total_ns"].sum() / total_kernel_ns)


def test_sorted_and_scattered_row_totals_agree():
    """The segment-sum path (kernels in range order) gives exactly what bincount gives."""
    import numpy as np

    from gpuprof.analyze.layers import _sorted_row_totals

    rng = np.random.default_rng(7)
    rows = np.sort(rng.integers(0, 5_000, 40_000)).astype(np.int32)
    durations = rng.integers(0, 10**9, len(rows))
    time, count = _sorted_row_totals(rows, durations, 6_000)
    assert (time == np.bincount(rows, weights=durations, minlength=6_000)).all()
    assert (count == np.bincount(rows, minlength=6_000)).all()
    assert time.dtype == np.float64 and count.dtype == np.int64


@pytest.mark.parametrize("layout", ["sorted", "unattributed first", "unattributed among",
                                    "scattered", "all unattributed", "one row"])
def test_row_totals_equal_a_plain_bincount(layout):
    """Every path of _per_row_totals (a prefix of unattributed kernels cut as views, ones
    among the others filtered, unsorted rows) against bincount over the attributed kernels."""
    import numpy as np

    from gpuprof.analyze.layers import _per_row_totals

    rng = np.random.default_rng(11)
    rows = np.sort(rng.integers(0, 3_000, 20_000)).astype(np.int32)
    if layout == "unattributed first":
        rows[:500] = -1
    elif layout == "unattributed among":
        rows[rng.integers(0, len(rows), 700)] = -1
    elif layout == "scattered":
        rows = rng.permutation(rows)
        rows[:300] = -1
    elif layout == "all unattributed":
        rows[:] = -1
    elif layout == "one row":
        rows = rows[:1]
    durations = rng.integers(0, 10**9, len(rows))
    time, count = _per_row_totals(pd.DataFrame({"range_row": rows, "duration_ns": durations}),
                                  4_000)
    kept = rows >= 0
    assert (time == np.bincount(rows[kept], weights=durations[kept], minlength=4_000)).all()
    assert (count == np.bincount(rows[kept], minlength=4_000)).all()
    assert time.dtype == np.float64 and count.dtype == np.int64


@pytest.mark.parametrize("name", [RESNET, "MohanadOdema__DLProf__w_Relu__nsys_profile.sqlite",
                                  "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite"])
@pytest.mark.parametrize("domain", ["TensorRT", None])
def test_pandas_fallback_equals_the_numpy_path(name, domain, monkeypatch):
    """Very many groups or sums past 2**53 ns take the pandas path; forced here (limit 0),
    it must give the numpy path's table."""
    from gpuprof.analyze import layers

    run = load(fixture_path("nsys", name))
    attributed = layers.kernel_ranges(run, domain)
    fast = layers.gpu_time_by_range(run, domain, attributed)
    monkeypatch.setattr(layers, "MAX_GROUPS", 0)
    slow = layers.gpu_time_by_range(run, domain, attributed)
    if fast.empty:
        assert slow.empty
        return
    pd.testing.assert_frame_equal(slow.reset_index(drop=True), fast.reset_index(drop=True),
                                  check_dtype=False)


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("name", [RESNET, "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
                                  "MohanadOdema__DLProf__w_Relu__nsys_profile.sqlite"])
def test_short_walk_and_parent_climb_agree(name, steps, monkeypatch):
    """Calls resolved by stepping back, by climbing parents, or by both give one answer."""
    import gpuprof.align.nvtx as nvtx

    profile = read_nsys(fixture_path("nsys", name))
    walked = project_to_ranges(profile.kernels, profile.api_calls, profile.nvtx_ranges)
    monkeypatch.setattr(nvtx, "WALK_STEPS", steps)
    climbed = project_to_ranges(profile.kernels, profile.api_calls, profile.nvtx_ranges)
    assert (walked == climbed).all()
