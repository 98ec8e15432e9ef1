"""``gpuprof nsys --group-nvtx``: PyTorch's NVTX names that differ only by trailing ids
(``op_id = N``) share one row in the people's views; CSV and JSON keep one row per name."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict

import pytest

from gpuprof.analyze.layers import gpu_time_by_range
from gpuprof.analyze.nvtx_summary import nvtx_summary, range_pattern
from gpuprof.cli.main import main
from gpuprof.ingest.nsys import read_nsys
from tests.conftest import fixture_path

PYTORCH = "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite"


def test_range_pattern_replaces_trailing_ids_only():
    assert range_pattern("aten::to, seq = 7, op_id = 990347") == "aten::to, seq = *, op_id = *"
    assert range_pattern("aten::empty, op_id = 3") == "aten::empty, op_id = *"
    assert range_pattern("layer 12 = conv") == "layer 12 = conv"   # no trailing id
    assert range_pattern("op_id = 5") == "op_id = 5"               # nothing left as a name
    assert range_pattern("sizes = [1, 2], op_id = 4") == "sizes = [1, 2], op_id = *"


@pytest.fixture(scope="module")
def export():
    return fixture_path("nsys", PYTORCH)


def _sql_by_pattern(path) -> dict[str, tuple[int, int, int]]:
    """count, total and longest duration per pattern: plain SQL, then every "= digits" starred."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("""
            SELECT COALESCE(e.text, s.value), e."end" - e.start FROM NVTX_EVENTS e
            LEFT JOIN StringIds s ON s.id = e.textId
            WHERE e.eventType IN (59, 60) AND e."end" >= e.start""").fetchall()
    groups: dict[str, list[int]] = defaultdict(list)
    for text, duration in rows:
        groups[re.sub(r"= \d+", "= *", text or "(unnamed)")].append(duration)
    return {k: (len(v), sum(v), max(v)) for k, v in groups.items()}


def test_grouped_rows_match_sql(export):
    expected = _sql_by_pattern(export)
    out = nvtx_summary(read_nsys(export).nvtx_ranges, group_ids=True)
    merged = out.groupby("text").agg(count=("count", "sum"), total_ns=("total_ns", "sum"),
                                     max_ns=("max_ns", "max"))
    got = {t: (int(r["count"]), int(r["total_ns"]), int(r["max_ns"])) for t, r in merged.iterrows()}
    assert got == expected
    assert len(out) < 200 < len(nvtx_summary(read_nsys(export).nvtx_ranges))


def test_markdown_groups_and_json_keeps_every_name(export, capsys, tmp_path):
    assert main(["nsys", str(export), "--group-nvtx", "--top", "50", "--format", "md"]) == 0
    markdown = capsys.readouterr().out
    for title in ("NVTX ranges by total time", "GPU time by NVTX range"):
        section = markdown.split(f"## {title}")[1].split("\n## ")[0]
        assert "op\\_id = \\*" in section and not re.search(r"op\\_id = \d", section), title
    assert main(["nsys", str(export), "--group-nvtx", "--format", "json"]) == 0
    sections = {s["key"]: s for s in json.loads(capsys.readouterr().out)["sections"]}
    raw = nvtx_summary(read_nsys(export).nvtx_ranges)
    assert len(sections["nvtx"]["rows"]) == len(raw)


def test_grouped_gpu_time_per_range_adds_up_the_names_it_groups(export):
    """Calls and GPU time per pattern equal the sums over the names each pattern groups."""
    from gpuprof.api import load

    run = load(export)
    raw = run.gpu_time_by_range()
    grouped = gpu_time_by_range(run, None, run.attributed(None), group_ids=True)
    expected = raw.assign(name=raw["name"].astype(str).map(range_pattern)).groupby(
        ["domain", "name"], observed=True)[["calls", "total_ns"]].sum()
    got = grouped.assign(name=grouped["name"].astype(str)).groupby(
        ["domain", "name"], observed=True)[["calls", "total_ns"]].sum()
    assert len(grouped) < len(raw)
    assert got.sort_index().astype("int64").equals(expected.sort_index().astype("int64"))
