"""Kernel and NVTX summaries: hand-built cases, then real exports checked against plain SQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuprof.analyze.kernels import kernel_summary
from gpuprof.analyze.nvtx_summary import nvtx_summary
from gpuprof.model import conform
from tests.conftest import SQL_TENSORRT_DOMAIN, nsys_profile, nsys_sql

KERNEL_EXPORTS = [
    "caoye310__Lower-Triangular-Solves__la.sqlite",
    "Lianhang666__gpu4__report2.sqlite",
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
    "PolPuigPuy__OpenACC_Project_PolPuig__report2.sqlite",
    "kamalchowdhury326__HW5_helper__report1.sqlite",
    "lockfuehrer__beast_ressoruces__report1.sqlite",
]
NVTX_EXPORTS = [
    "caoye310__Lower-Triangular-Solves__la.sqlite",
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
    "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",
    "NVIDIA__Fuser__report2.sqlite",
    "MohanadOdema__DLProf__w_Relu__nsys_profile.sqlite",
]


_profile, _sql = nsys_profile, nsys_sql


def _kernels(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["name", "start_ns", "end_ns"])
    frame["name"] = frame["name"].astype("category")
    return conform("kernels", frame)


# -- hand-built ---------------------------------------------------------------------------

def test_kernel_summary_counts_totals_and_share():
    kernels = _kernels([("a", 0, 10), ("a", 20, 50), ("b", 0, 100), ("c", 5, 6)])
    out = kernel_summary(kernels)
    assert list(out["name"]) == ["b", "a", "c"]
    a = out.set_index("name").loc["a"]
    assert (a["count"], a["total_ns"], a["min_ns"], a["max_ns"]) == (2, 40, 10, 30)
    assert a["mean_ns"] == 20 and a["p50_ns"] == 20
    assert a["share"] == pytest.approx(40 / 141)
    assert out["share"].sum() == pytest.approx(1.0)


def test_kernel_summary_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    durations = rng.integers(1, 10_000, size=501)
    kernels = _kernels([("k", 0, int(d)) for d in durations])
    row = kernel_summary(kernels).iloc[0]
    for q in (50, 90, 99):
        assert row[f"p{q}_ns"] == pytest.approx(np.percentile(durations, q))


def test_kernel_summary_labels_missing_names_and_handles_empty():
    kernels = _kernels([(None, 0, 5), ("x", 0, 1)])
    assert set(kernel_summary(kernels)["name"]) == {"(unnamed)", "x"}
    empty = kernel_summary(conform("kernels", pd.DataFrame()))
    assert empty.empty and "total_ns" in empty.columns


def test_nvtx_summary_skips_marks_and_unended_ranges():
    ranges = conform("nvtx_ranges", pd.DataFrame({
        "start_ns": [0, 10, 30, 50, 70], "end_ns": [100, 20, 30, 40, 75],
        "range_kind": pd.Categorical(["push_pop", "push_pop", "mark", "start_end", "start_end"]),
        "domain": pd.Categorical([None, None, None, "TensorRT", "TensorRT"]),
        "text": pd.Categorical(["outer", "inner", "m", "late", "late"]),
    }))
    out = nvtx_summary(ranges).set_index(["domain", "text", "range_kind"])
    assert list(out.index) == [("(default)", "outer", "push_pop"),
                               ("(default)", "inner", "push_pop"),
                               ("TensorRT", "late", "start_end")]
    assert out.loc[("TensorRT", "late", "start_end"), "count"] == 1  # 50 -> 40 never ended


# -- real exports against plain SQL -------------------------------------------------------

@pytest.mark.parametrize("name", KERNEL_EXPORTS)
def test_kernel_summary_matches_sql(name):
    rows = _sql(name, """
        SELECT s.value, k."end" - k.start FROM CUPTI_ACTIVITY_KIND_KERNEL k
        JOIN StringIds s ON s.id = k.shortName WHERE k."end" >= k.start""")
    expected = pd.DataFrame(rows, columns=["name", "d"]).groupby("name")["d"]
    out = kernel_summary(_profile(name).kernels).set_index("name")
    assert sorted(out.index) == sorted(expected.groups)
    assert out["count"].to_dict() == expected.count().to_dict()
    assert out["total_ns"].to_dict() == expected.sum().to_dict()
    assert out["min_ns"].to_dict() == expected.min().to_dict()
    assert out["max_ns"].to_dict() == expected.max().to_dict()
    for kernel, durations in expected:
        assert out.loc[kernel, "p90_ns"] == pytest.approx(np.percentile(durations, 90))
    assert out["total_ns"].is_monotonic_decreasing


@pytest.mark.parametrize("name", KERNEL_EXPORTS[:4])
def test_kernel_variants_and_demangled_rows_match_sql(name):
    variants = dict(_sql(name, """
        SELECT s.value, COUNT(DISTINCT k.demangledName) FROM CUPTI_ACTIVITY_KIND_KERNEL k
        JOIN StringIds s ON s.id = k.shortName WHERE k."end" >= k.start GROUP BY 1"""))
    kernels = _profile(name).kernels
    assert kernel_summary(kernels).set_index("name")["variants"].to_dict() == variants
    by_demangled = {n: (c, t) for n, c, t in _sql(name, """
        SELECT s.value, COUNT(*), SUM(k."end" - k.start) FROM CUPTI_ACTIVITY_KIND_KERNEL k
        JOIN StringIds s ON s.id = k.demangledName WHERE k."end" >= k.start GROUP BY 1""")}
    out = kernel_summary(kernels, by="demangled_name")
    assert {r.demangled_name: (r.count, r.total_ns) for r in out.itertuples()} == by_demangled
    assert (out["variants"] == 1).all()


@pytest.mark.parametrize("name", NVTX_EXPORTS)
def test_nvtx_summary_matches_sql(name):
    columns = {row[1] for row in _sql(name, "PRAGMA table_info(NVTX_EVENTS)")}
    text = "COALESCE(e.text, s.value)" if {"text", "textId"} <= columns else (
        "e.text" if "text" in columns else "s.value")
    join = "LEFT JOIN StringIds s ON s.id = e.textId" if "textId" in columns else ""
    rows = _sql(name, f"""
        SELECT {text}, CASE e.eventType WHEN 59 THEN 'push_pop' ELSE 'start_end' END,
               COUNT(*), SUM(e."end" - e.start), MAX(e."end" - e.start)
        FROM NVTX_EVENTS e {join}
        WHERE e.eventType IN (59, 60) AND e."end" >= e.start GROUP BY 1, 2""")
    expected = {(t if t is not None else "(unnamed)", kind): (n, total, longest)
                for t, kind, n, total, longest in rows}
    out = nvtx_summary(_profile(name).nvtx_ranges)
    # SQL does not name domains; sum over them to compare
    merged = out.groupby(["text", "range_kind"]).agg(
        count=("count", "sum"), total_ns=("total_ns", "sum"), max_ns=("max_ns", "max"))
    got = {key: (int(r["count"]), int(r["total_ns"]), int(r["max_ns"]))
           for key, r in merged.iterrows()}
    assert got == expected


def test_nvtx_summary_names_the_tensorrt_domain():
    name = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
    ((expected,),) = _sql(name, f"""
        SELECT COUNT(*) FROM NVTX_EVENTS WHERE eventType = 59 AND "end" >= start
            AND domainId IN {SQL_TENSORRT_DOMAIN}""")
    out = nvtx_summary(_profile(name).nvtx_ranges)
    assert out.loc[out["domain"] == "TensorRT", "count"].sum() == expected == 3050
