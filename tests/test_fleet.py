"""Many exports at once on Dask (`gpuprof nsys a.sqlite b.sqlite ...`): the combined tables
on one export equal its own report's, and over several exports plain SQL summed over them;
a broken export is reported while the others complete; bad input is one line."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np
import pytest

from gpuprof.analyze.fleet import merge_copies, merge_kernels, merge_layers, merge_memory
from gpuprof.cli.main import main
from gpuprof.pipeline.fleet import find_exports, run_fleet
from gpuprof.render.fleet import fleet_report

from .conftest import SQL_MEM_KIND_NAMES, copies_per_kind, export_sql, nsys_fixtures, nsys_profile

EXPORTS = nsys_fixtures()
pytestmark = pytest.mark.skipif(not EXPORTS, reason="no shared nsys exports (set GPUPROF_FIXTURES)")
PERCENTILES = (50, 90, 99)


@pytest.fixture(scope="module")
def fleet():
    """Every shared export read once on a small in-process LocalCluster (2 workers)."""
    return run_fleet(EXPORTS, workers=2, processes=False)


def _main(capsys, *args):
    code = main(["nsys", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(code, err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for needle in needles:
        assert needle in lines[0]


# -- one export: the combined tables are its own report's --------------------------------------

def _report_rows(section, key):
    return {row[key]: row for _, row in section.table.iterrows()}


def _assert_rows_equal(fleet_section, own_section, key, columns):
    """The shown rows of the two tables agree on ``columns`` (same keys, same numbers)."""
    ours, theirs = _report_rows(fleet_section, key), _report_rows(own_section, key)
    assert set(ours) == set(theirs)
    for name, row in theirs.items():
        for column in columns:
            if isinstance(row[column], str):
                assert ours[name][column] == row[column], (name, column)
            else:
                assert ours[name][column] == pytest.approx(row[column], rel=1e-12, nan_ok=True), \
                    (name, column)


def _fleet_of_one(path):
    return fleet_report(run_fleet([path], workers=1, processes=False), "test")


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.name[-40:])
def test_one_export_equals_its_own_report(path):
    ours = _fleet_of_one(path)
    own = nsys_profile(path.name)
    import gpuprof

    theirs = gpuprof.load(path).report()
    if theirs.section("kernels") is not None:
        columns = [c for c in theirs.section("kernels").table.columns if c != "Kernel"]
        _assert_rows_equal(ours.section("kernels"), theirs.section("kernels"), "Kernel", columns)
    else:
        assert ours.section("kernels") is None and own.kernels.empty
    if theirs.section("copies") is not None:
        # keyed by kind and direction
        for section in (ours.section("copies"), theirs.section("copies")):
            section.table["key"] = section.table["Kind"] + "/" + section.table["Direction"]
        columns = ["Count", "Total (MB)", "Time (ms)", "Bandwidth (GB/s)", "Min size (B)",
                   "Mean size (B)", "Max size (B)"]
        _assert_rows_equal(ours.section("copies"), theirs.section("copies"), "key", columns)
    if theirs.section("memory").table is not None:
        columns = ["Source", "Peak (MiB)", "Peak at (ms)", "Final (MiB)", "Allocations", "Frees"]
        _assert_rows_equal(ours.section("memory_by_export"), theirs.section("memory"), "Memory",
                           columns)


def test_one_tensorrt_export_layers_equal_its_layer_table(fleet):
    import gpuprof

    trt = [path for path, partial in zip(EXPORTS, fleet) if len(partial.layer_totals)]
    if not trt:
        pytest.skip("no shared TensorRT export with kernels")
    for path in trt:
        run = gpuprof.load(path)
        assert run.is_tensorrt()
        layers = run.layers().set_index("layer")
        ours = merge_layers(run_fleet([path], workers=1, processes=False), []).set_index("layer")
        assert set(ours.index) == set(layers.index)
        for column in ("calls", "total_ns", "kernels"):
            assert (ours[column] == layers.loc[ours.index, column]).all(), column
        for column in ("mean_ns", "share", "cumulative_share", "kernels_per_call"):
            np.testing.assert_allclose(ours[column], layers.loc[ours.index, column], rtol=1e-12)


# -- several exports: plain SQL over all of them --------------------------------------------

KERNEL_SQL = """SELECT s.value, MAX(k."end" - k.start, 0) FROM CUPTI_ACTIVITY_KIND_KERNEL k
                JOIN StringIds s ON s.id = k.shortName"""


def test_kernels_across_exports_equal_sql_over_all(fleet):
    durations = defaultdict(list)
    exports = defaultdict(set)
    for path in EXPORTS:
        for name, duration in export_sql(path, KERNEL_SQL):
            durations[name].append(duration)
            exports[name].add(path.name)
    table = merge_kernels(fleet, []).set_index("kernel")
    assert set(table.index) == set(durations)
    several = 0
    for name, values in durations.items():
        row, values = table.loc[name], np.asarray(values, dtype=np.int64)
        assert (row["count"], row["total_ns"], row["min_ns"], row["max_ns"], row["exports"]) == (
            len(values), values.sum(), values.min(), values.max(), len(exports[name]))
        expected = np.percentile(values.astype(np.float64), PERCENTILES, method="linear")
        got = [row[f"p{q}_ns"] for q in PERCENTILES]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
        several += len(exports[name]) > 1
    assert table["share"].sum() == pytest.approx(1.0)
    if not several:
        pytest.skip("no kernel name appears in two shared exports: only single-export groups checked")


def test_percentile_over_all_kernels_is_not_an_average_of_percentiles(fleet):
    """The percentiles of every kernel of every export at once (each export's value counts put
    under one name and merged) against numpy over all durations read by plain SQL."""
    everything = np.asarray([d for path in EXPORTS for _, d in export_sql(path, KERNEL_SQL)],
                            dtype=np.float64)
    as_one = [dataclasses.replace(p, kernel_values=p.kernel_values.assign(kernel="all"))
              for p in fleet]
    merged = merge_kernels(as_one, []).iloc[0]
    assert merged["count"] == len(everything)
    for q in PERCENTILES:
        assert merged[f"p{q}_ns"] == pytest.approx(
            np.percentile(everything, q, method="linear"), rel=1e-12)


def test_copies_across_exports_equal_sql_per_kind_and_direction(fleet):
    expected: dict[tuple[str, str], list[int]] = {}
    for path in EXPORTS:
        for key, (n, total, dur, small, large) in copies_per_kind(path, 'MAX("end" - start, 0)').items():
            if key not in expected:
                expected[key] = [n, total, dur, small, large]
            else:
                row = expected[key]
                expected[key] = [row[0] + n, row[1] + total, row[2] + dur, min(row[3], small),
                                 max(row[4], large)]
    table = merge_copies(fleet, [])
    got = {(r.kind, r.direction): [r.count, r.total_bytes, r.total_ns, r.min_bytes, r.max_bytes]
           for r in table.itertuples()}
    assert got == expected
    np.testing.assert_allclose(table["mean_bytes"], table["total_bytes"] / table["count"])


MEMORY_TABLE = "CUDA_GPU_MEMORY_USAGE_EVENTS"
PEAKS_SQL = f"""
WITH {SQL_MEM_KIND_NAMES},
use AS (
  SELECT deviceId, memKind,
         SUM(CASE WHEN memoryOperationType = 0 THEN bytes ELSE -bytes END)
           OVER (PARTITION BY deviceId, memKind ORDER BY start, rowid ROWS UNBOUNDED PRECEDING) AS used
  FROM {MEMORY_TABLE})
SELECT deviceId, kinds.kind, MAX(used) FROM use JOIN kinds ON kinds.id = memKind GROUP BY 1, 2
"""


def test_memory_peaks_across_exports_are_the_largest_sql_peak(fleet):
    largest: dict[tuple[int, str], tuple[int, str]] = {}
    for path in EXPORTS:
        for device, kind, peak in export_sql(path, PEAKS_SQL):
            if (device, kind) not in largest or peak > largest[(device, kind)][0]:
                largest[(device, kind)] = (peak, path.name)
    table = merge_memory(fleet)
    if not largest:
        assert table.empty
        pytest.skip(f"no shared export has {MEMORY_TABLE}")
    got = {(r.device_id, r.memory_kind): (r.peak_bytes, r.peak_export) for r in table.itertuples()
           if r.source == "nsys"}
    assert got == largest


def test_per_export_rows_equal_sql(fleet):
    report = fleet_report(fleet, "test")
    rows = report.section("exports").table.set_index("Export")
    for path in EXPORTS:
        kernels = export_sql(path, 'SELECT COUNT(*), TOTAL(MAX("end" - start, 0)) '
                             "FROM CUPTI_ACTIVITY_KIND_KERNEL") or [(0, 0)]
        copies = sum(n for (n,) in export_sql(path, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_MEMCPY")
                     + export_sql(path, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_MEMSET"))
        row = rows.loc[path.name]
        if row["Status"] != "ok":  # refused as `gpuprof nsys EXPORT` refuses it
            assert kernels[0][0] == copies == 0 and "holds no GPU kernels" in row["Status"]
            continue
        assert row["Kernels"] == kernels[0][0] and row["Copies"] == copies
        assert row["GPU time (ms)"] == pytest.approx(kernels[0][1] / 1e6, rel=1e-12)


def test_per_export_kernel_table_is_each_exports_own(fleet):
    from gpuprof.analyze.kernels import kernel_summary

    per_export = merge_kernels(fleet, ["export"])
    for path in EXPORTS[:8]:
        own = kernel_summary(nsys_profile(path.name).kernels).set_index("name")
        ours = per_export[per_export["export"] == path.name].set_index("kernel")
        assert list(ours.index) == list(own.index)  # same order: heaviest first
        for column in ("count", "total_ns", "min_ns", "max_ns", "p50_ns", "p90_ns", "p99_ns",
                       "variants"):
            assert (ours[column].to_numpy() == own[column].to_numpy()).all(), column


# -- the command: broken exports, bad input ---------------------------------------------------

def test_a_corrupt_export_is_reported_and_the_rest_complete(capsys, tmp_path):
    good = EXPORTS[:2]
    corrupt = tmp_path / "cut.sqlite"
    corrupt.write_bytes(good[0].read_bytes()[:4096])
    out = tmp_path / "fleet.json"
    code, _, err = _main(capsys, *good, corrupt, "--workers", "2", "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    rows = {r["export"]: r for r in next(s for s in doc["sections"] if s["key"] == "exports")["rows"]}
    assert rows["cut.sqlite"]["status"].startswith("failed: ")  # JSON: machine keys
    assert "\n" not in rows["cut.sqlite"]["status"]
    for path in good:
        assert rows[path.name]["status"] == "ok"
        assert rows[path.name]["kernels"] == len(nsys_profile(path.name).kernels)
    assert "cut.sqlite: failed" in err  # the progress line for it


def test_a_glob_and_a_directory_name_the_same_exports(tmp_path):
    for path in EXPORTS[:3]:
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "notes.txt").write_text("not an export")
    by_dir = find_exports([str(tmp_path)])
    assert by_dir == find_exports([str(tmp_path / "*.sqlite")])
    assert [p.name for p in by_dir] == sorted(p.name for p in EXPORTS[:3])


def test_a_directory_without_exports_is_one_error_line(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("not an export")
    code, _, err = _main(capsys, tmp_path)
    _one_error_line(code, err, "no exports in")


def test_an_unreachable_scheduler_is_one_error_line(capsys):
    code, _, err = _main(capsys, *EXPORTS[:2], "--scheduler", "tcp://127.0.0.1:1")
    _one_error_line(code, err, "cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert code == 2


def test_per_export_options_are_refused_with_several(capsys, tmp_path):
    code, _, err = _main(capsys, *EXPORTS[:2], "--chrome-trace", tmp_path / "t.json")
    _one_error_line(code, err, "--chrome-trace is for one export")


def test_out_dir_writes_every_table(capsys, tmp_path):
    code, _, err = _main(capsys, *EXPORTS[:3], "--workers", "1", "--out-dir", tmp_path / "out")
    assert code == 0, err
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.md", "report.json", "report.txt", "exports.csv"} <= written
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    method = [n for s in doc["sections"] if s["key"] == "kernels" for n in s["notes"]]
    assert any("numpy 'linear' over all n kernel durations" in n for n in method)


def test_an_existing_scheduler_runs_the_exports(capsys, tmp_path):
    from dask.distributed import LocalCluster

    out = tmp_path / "exports.csv"
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        code, _, err = _main(capsys, *EXPORTS[:2], "--scheduler", cluster.scheduler_address,
                             "-o", out, "--table", "exports")
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0].startswith("export,status,release,gpus,kernels") and len(lines) == 3  # machine keys
