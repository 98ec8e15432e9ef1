"""JSON and CSV for programs (issue 13, item 5): snake_case keys that carry their unit, a
schema version and the command's kind at the top, null for what was not measured, numbers
at full precision. Values are recomputed from the same real files with plain SQL and plain
Python, per row (each kernel, each stage), not as totals."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from gpuprof.cli.main import main
from gpuprof.render.machine import SCHEMA_VERSION, machine_key
from tests.conftest import fixture_path

KEY = re.compile(r"^[a-z0-9_]+$")
NSYS_EXPORTS = [
    "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",        # TensorRT layers
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",              # two GPUs
    "ntua-el20062__gemm_spmm_a100__gemm_pipeline_inference_like__nsys_reports__"
    "nsys_report_fo_10000_20_100.sqlite",                                       # memory kinds
    "YoonKyonghwan__EfficientCenterFormer__poolformer.sqlite",                  # no kernels
]
TRITON = "cmpark0126__ml-serving-system-building__sync_poison.json"


def _cli(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _check_layout(doc: dict, kind: str) -> dict[str, dict]:
    """Keys everywhere match ^[a-z0-9_]+$; the top carries schema_version and kind."""
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == kind
    assert all(KEY.match(k) for k in doc["facts"]), list(doc["facts"])
    for section in doc["sections"]:
        for row in section["rows"]:
            bad = [k for k in row if not KEY.match(k)]
            assert not bad, (section["key"], bad)
            assert not any(v == "" for v in row.values()), section["key"]  # null, never ""
    return {s["key"]: s for s in doc["sections"]}


def _kernels_by_sql(path) -> dict[str, tuple[int, int, int]]:
    """Per kernel base name (nsys shortName): launches, total and longest duration in ns."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT s.value, COUNT(*), SUM(k.end - k.start), MAX(k.end - k.start) "
            "FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName "
            "GROUP BY s.value").fetchall()
    return {name: (count, total, longest) for name, count, total, longest in rows}


def _has_kernels(path) -> bool:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return bool(db.execute("SELECT name FROM sqlite_master WHERE name = "
                               "'CUPTI_ACTIVITY_KIND_KERNEL'").fetchall())


@pytest.mark.parametrize("name", NSYS_EXPORTS)
def test_nsys_json_keys_values_and_nulls(capsys, name):
    path = fixture_path("nsys", name)
    sections = _check_layout(json.loads(_cli(capsys, "nsys", path, "--format", "json")), "nsys")
    if _has_kernels(path):
        expected = _kernels_by_sql(path)
        rows = sections["kernels"]["rows"]
        assert len(rows) == len(expected)  # every row, whatever --top shows on a terminal
        for row in rows:
            count, total, longest = expected[row["kernel"]]
            # exact integers: no display rounding, no unit conversion
            assert (row["count"], row["total_ns"], row["max_ns"]) == (count, total, longest)
    if "memory" in sections and sections["memory"]["rows"]:
        # nsys memory events carry no run phase: not measured, so null (never 0 or "")
        assert all(r["peak_phase"] is None for r in sections["memory"]["rows"])
        assert all(isinstance(r["peak_bytes"], int) for r in sections["memory"]["rows"])


def test_layer_rows_keep_kernel_lists_and_raw_times(capsys):
    path = fixture_path("nsys", NSYS_EXPORTS[0])
    sections = _check_layout(json.loads(_cli(capsys, "nsys", path, "--format", "json")), "nsys")
    layers = sections["layers"]["rows"]
    assert len(layers) == 60  # every layer, though the terminal shows 25
    assert all(isinstance(r["top_kernels"], list) and isinstance(r["reformat"], bool)
               for r in layers)
    # a layer's calls and mean agree with each other at full precision
    for row in layers:
        assert row["mean_ns"] == pytest.approx(row["total_ns"] / row["calls"], rel=1e-12)


def test_nsys_csv_headers_are_the_json_keys(capsys):
    path = fixture_path("nsys", NSYS_EXPORTS[1])
    frame = pd.read_csv(io.StringIO(_cli(capsys, "nsys", path, "--format", "csv",
                                         "--table", "kernels")))
    assert all(KEY.match(c) for c in frame.columns)
    expected = _kernels_by_sql(path)
    for row in frame.itertuples():
        assert (row.count, row.total_ns, row.max_ns) == expected[row.kernel]


def test_triton_json_stage_percentiles_from_the_raw_trace(capsys):
    path = fixture_path("triton", TRITON)
    sections = _check_layout(json.loads(_cli(capsys, "triton", path, "--format", "json")),
                             "triton")
    stamps: dict[int, dict[str, int]] = defaultdict(dict)
    for record in json.loads(path.read_text()):
        for stamp in record.get("timestamps", []):
            stamps[record["id"]][stamp["name"]] = stamp["ns"]
    queue = [s["COMPUTE_START"] - s["QUEUE_START"] for s in stamps.values()]
    row = next(r for r in sections["summary"]["rows"] if r["stage"] == "QUEUE")
    assert row["count"] == len(queue)
    assert row["p99_9_us"] == pytest.approx(np.percentile(queue, 99.9) / 1e3, rel=1e-12)
    assert row["mean_us"] == pytest.approx(np.mean(queue) / 1e3, rel=1e-12)
    # a request id the client never sent is not measured: null, not "-"
    requests = sections["requests"]["rows"]
    assert requests and all(r["request_id"] is None for r in requests)


@pytest.mark.parametrize(("label", "key"), [
    ("Mean (µs)", "mean_us"), ("Total (ms)", "total_ms"), ("% GPU", "gpu_percent"),
    ("cum %", "cum_percent"), ("kernels/call", "kernels_per_call"),
    ("Min size (B)", "min_size_bytes"), ("Bandwidth (GB/s)", "bandwidth_gb_per_s"),
    ("p99.9", "p99_9"), ("Peak (MiB)", "peak_mib"), ("total_ns", "total_ns"),
])
def test_machine_keys_carry_the_unit(label, key):
    assert machine_key(label) == key
