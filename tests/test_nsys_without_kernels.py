"""Exports without a kernel table are reported for what they hold (issue 13 item 3): a TensorRT
engine traced with NVTX only (layer table by host-side range time, labelled so), runtime calls
only (CUDA API summary), memory events and runtime calls. Every number is cross-checked against
plain SQL on the same real export; only an export with nothing to report is refused."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

import gpuprof
from gpuprof.analyze.api_calls import api_summary
from gpuprof.analyze.host_layers import host_time_by_layer
from gpuprof.cli.main import main
from gpuprof.render.nsys_full import HOST_TIME

from .conftest import SQL_TENSORRT_DOMAIN, fixture_path, nsys_fixtures

TRT_NVTX_ONLY = "YoonKyonghwan__EfficientCenterFormer__poolformer.sqlite"
RUNTIME_ONLY = "haroonsyed__NVIDIA_SGEMM_PRACTICE__report1.sqlite"
MEMORY_AND_RUNTIME = ("ntua-el20062__gemm_spmm_a100__gemm_pipeline_inference_like__nsys_reports__"
                      "nsys_report_fo_20000_20_100.sqlite")
WITHOUT_KERNELS = [TRT_NVTX_ONLY, RUNTIME_ONLY, MEMORY_AND_RUNTIME,
                   "rchops__cuda-learning__report1.sqlite"]

# per name: calls, total, min, max and the median (mean of the two middle values when even)
STATS_SQL = """
WITH ranked AS (
  SELECT name, d, ROW_NUMBER() OVER (PARTITION BY name ORDER BY d) AS i,
         COUNT(*) OVER (PARTITION BY name) AS c FROM ({rows}))
SELECT name, COUNT(*), SUM(d), MIN(d), MAX(d),
       AVG(CASE WHEN i IN ((c + 1) / 2, (c + 2) / 2) THEN d END)
FROM ranked GROUP BY name
"""
API_ROWS = ("SELECT s.value AS name, r.end - r.start AS d FROM CUPTI_ACTIVITY_KIND_RUNTIME r "
            "JOIN StringIds s ON s.id = r.nameId")
# TensorRT's push/pop ranges (its domain by name), engine wrapper ranges left out
LAYER_ROWS = f"""
SELECT COALESCE(n.text, s.value) AS name, n.end - n.start AS d
FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
WHERE n.eventType = 59 AND n.end IS NOT NULL
  AND n.domainId IN {SQL_TENSORRT_DOMAIN}
  AND NOT (COALESCE(n.text, s.value) GLOB 'ExecutionContext::*'
        OR COALESCE(n.text, s.value) GLOB 'IExecutionContext::*'
        OR COALESCE(n.text, s.value) GLOB 'IRuntime::*'
        OR COALESCE(n.text, s.value) GLOB 'ICudaEngine::*')
"""


def _sql_stats(path, rows: str) -> pd.DataFrame:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = con.execute(STATS_SQL.format(rows=rows)).fetchall()
    finally:
        con.close()
    return pd.DataFrame(found, columns=["name", "calls", "total", "min", "max", "median"]).set_index("name")


def _check_against_sql(table: pd.DataFrame, name: str, expected: pd.DataFrame) -> None:
    got = table.set_index(name)
    assert sorted(got.index) == sorted(expected.index)
    got = got.loc[expected.index]
    assert got["calls"].tolist() == expected["calls"].tolist()
    assert got["total_ns"].tolist() == expected["total"].tolist()
    assert got["min_ns"].tolist() == expected["min"].tolist()
    assert got["max_ns"].tolist() == expected["max"].tolist()
    assert got["median_ns"].to_numpy() == pytest.approx(expected["median"].to_numpy(), abs=0.5)
    assert got["share"].to_numpy() == pytest.approx((expected["total"] / expected["total"].sum()).to_numpy())


@pytest.mark.parametrize("name", [RUNTIME_ONLY, MEMORY_AND_RUNTIME,
                                  "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"])
def test_api_summary_equals_sql(name):
    path = fixture_path("nsys", name)
    summary = api_summary(gpuprof.load(path).api_calls)
    _check_against_sql(summary, "name", _sql_stats(path, API_ROWS))
    assert summary["total_ns"].is_monotonic_decreasing


def test_api_section_shows_the_summary_in_ms_and_us():
    run = gpuprof.load(fixture_path("nsys", RUNTIME_ONLY))
    expected = _sql_stats(fixture_path("nsys", RUNTIME_ONLY), API_ROWS)
    table = run.report().section("api").table.set_index("API call").loc[expected.index]
    assert table["Calls"].tolist() == expected["calls"].tolist()
    assert table["Total (ms)"].to_numpy() == pytest.approx(expected["total"].to_numpy() / 1e6)
    assert table["Median (µs)"].to_numpy() == pytest.approx(expected["median"].to_numpy() / 1e3)
    assert table["Time (%)"].sum() == pytest.approx(100.0)


def test_tensorrt_layers_by_host_time_equal_sql():
    path = fixture_path("nsys", TRT_NVTX_ONLY)
    run = gpuprof.load(path)
    assert run.kernels.empty and run.is_tensorrt()
    layers = host_time_by_layer(run)
    _check_against_sql(layers, "layer", _sql_stats(path, LAYER_ROWS))
    assert layers["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert layers["reformat"].sum() == sum("Reformatting CopyNode" in n for n in layers["layer"])


def test_host_layer_section_says_it_is_not_gpu_time():
    run = gpuprof.load(fixture_path("nsys", TRT_NVTX_ONLY))
    section = run.report().section("layers")
    assert HOST_TIME in section.title and HOST_TIME in section.notes[0]
    assert "host ms" in section.table.columns and not any("GPU" in c for c in section.table.columns)
    layers = host_time_by_layer(run)
    assert section.table["host ms"].to_numpy() == pytest.approx(layers["total_ns"].to_numpy() / 1e6)


@pytest.mark.parametrize("name", WITHOUT_KERNELS)
def test_cli_reports_exports_without_kernels(capsys, tmp_path, name):
    path = fixture_path("nsys", name)
    assert main(["nsys", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Not in this export" in out and "CUPTI_ACTIVITY_KIND_KERNEL" in out
    assert main(["nsys", str(path), "--out-dir", str(tmp_path / "out")]) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.md", "report.json", "trace.json", "run.gpuprof"} <= written
    run = gpuprof.load(path)
    if run.is_tensorrt():
        assert HOST_TIME in out and "layers.png" in written
    if len(run.api_calls):
        assert "CUDA API calls by total time" in out and "api.csv" in written
    if len(run.memory_events):
        assert "GPU 0 device" in out and "memory.png" in written


def _holds_nothing(path) -> bool:
    run = gpuprof.load(path)
    return not any(run.num_rows(t) for t in ("kernels", "copies", "api_calls", "nvtx_ranges",
                                             "memory_events"))


def test_only_exports_with_nothing_are_refused(capsys):
    empty = [p for p in nsys_fixtures() if _holds_nothing(p)]
    if not empty:
        pytest.skip("no shared nsys export without any CUDA, NVTX or memory data")
    for path in empty:
        assert main(["nsys", str(path)]) == 5
        err = capsys.readouterr().err.strip()
        assert err.startswith("Error: ") and "\n" not in err and "nsys profile -t cuda" in err
