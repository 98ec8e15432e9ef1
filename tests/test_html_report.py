"""The HTML report read back with the standard library's parser: the same numbers as the
JSON report of the same run, every asset inlined, every name from a user's file escaped."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from gpuprof.cli.main import main
from gpuprof.render.formats import FORMATS
from gpuprof.render.html_report import script_json
from gpuprof.render.report import Report, Section, format_for, render

from .conftest import fixture_path, fixtures_root, nsys_fixtures
from .html_pages import read_page
from .test_diff import LAYER_KERNELS, SLOWED

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
TRIDENT = "cmpark0126__ml-serving-system-building__sync_poison.json"
SCRIPT = "<script>alert(1)</script>"
IMG = "\"><img src=x onerror=alert(1)>"
BREAKOUT = "</script><!--<script>alert(2)</script>"


def _equal(json_value, html_cell: str) -> bool:
    """One JSON report value against the HTML cell: numbers exactly (``data-v``), text as
    shown (a missing value is "-" in both the Markdown and the HTML report)."""
    if json_value is None:
        return html_cell in ("", "-")
    if isinstance(json_value, bool):
        return html_cell == str(json_value)
    if isinstance(json_value, int | float):
        if html_cell.replace(",", "") == "":
            return False
        return math.isclose(float(html_cell.replace(",", "")), json_value, rel_tol=1e-12,
                            abs_tol=1e-12)
    return html_cell == str(json_value)


def assert_same_numbers(html_path: Path, json_path: Path) -> int:
    """Every section's table in the page equals the JSON report's rows; returns the cells (or,
    for raw sections, the rows) compared.

    JSON is for programs: a section built from an analysis writes its raw columns there (ns,
    bytes; docs/JSON.md), which the page shows in display units, so only its row count is
    compared here (test_machine_formats checks those against plain SQL); every other section
    writes the shown table under snake_case keys, compared cell by cell."""
    from gpuprof.render.machine import machine_key

    page, doc = read_page(html_path), json.loads(json_path.read_text())
    compared = 0
    for section in doc["sections"]:
        rows = section["rows"]
        if not rows:
            continue
        key = section["key"]
        assert len(page.tables[key]) == len(rows), key
        if [machine_key(h) for h in page.headers[key]] != list(rows[0]):
            compared += len(rows)  # raw analysis columns: rows compared, not cells
            continue
        for want, got in zip(rows, page.tables[key], strict=True):
            for (column, value), cell in zip(want.items(), got, strict=True):
                assert _equal(value, cell), (key, column, value, cell)
                compared += 1
    return compared


def assert_self_contained(html_path: Path) -> None:
    page = read_page(html_path)
    for url in page.urls:
        assert url.startswith(("data:", "#")), url
    assert all(tag != "link" for tag, _ in page.tags)
    assert all("src" not in attrs for tag, attrs in page.tags if tag == "script")


def test_html_is_one_registered_format():
    assert "html" in FORMATS
    assert format_for("report.html", None) == format_for("x.HTM", None) == "html"
    text = render(Report("t", [Section("s", "S", notes=["n"])]), "html")
    assert text.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in text


def test_script_json_cannot_end_its_block():
    text = script_json({"name": BREAKOUT + "\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["name"] == BREAKOUT + "\u2028&"


def test_nsys_out_dir_page_has_the_json_numbers_plots_and_timeline(tmp_path, capsys):
    export = fixture_path("nsys", RESNET)
    assert main(["nsys", str(export), "--out-dir", str(tmp_path)]) == 0
    html = tmp_path / "report.html"
    assert assert_same_numbers(html, tmp_path / "report.json") > 100
    assert_self_contained(html)
    page = read_page(html)
    images = [a["src"] for t, a in page.tags if t == "img"]
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    timeline = json.loads(page.scripts[0])
    streams = {t["name"] for t in timeline["tracks"] if t["name"].startswith("GPU ")}
    with sqlite3.connect(export) as db:
        want = {f"GPU {d} stream {s}" for d, s in db.execute(
            "SELECT DISTINCT deviceId, streamId FROM CUPTI_ACTIVITY_KIND_KERNEL")}
        kernels = db.execute("SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    assert streams == want
    spans = sum(len(t["spans"]) for t in timeline["tracks"] if t["name"].startswith("GPU "))
    assert spans == kernels  # under the per-track cap, every kernel is drawn


def test_memory_export_page_has_the_memory_table_and_plot(tmp_path, capsys):
    with_memory = [p for p in nsys_fixtures() if _has_table(p, "CUDA_GPU_MEMORY_USAGE_EVENTS")]
    if not with_memory:
        pytest.skip("no nsys fixture with --cuda-memory-usage events")
    assert main(["nsys", str(with_memory[0]), "--out-dir", str(tmp_path)]) == 0
    assert_same_numbers(tmp_path / "report.html", tmp_path / "report.json")
    page = read_page(tmp_path / "report.html")
    assert "memory" in page.tables
    assert "Memory over time" in page.text


def _has_table(path: Path, table: str) -> bool:
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone() is not None


def hostile_export(folder: Path) -> Path:
    """A copy of the ResNet-50 export whose busiest kernel and an NVTX layer range are named
    with HTML and a script-block breakout (UPDATE of their StringIds rows)."""
    copy = folder / "hostile.sqlite"
    shutil.copyfile(fixture_path("nsys", RESNET), copy)
    with sqlite3.connect(copy) as db:
        kernel = db.execute("SELECT demangledName FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY demangledName "
                            "ORDER BY SUM(end - start) DESC LIMIT 1").fetchone()[0]
        short = db.execute("SELECT shortName FROM CUPTI_ACTIVITY_KIND_KERNEL "
                           "WHERE demangledName = ? LIMIT 1", (kernel,)).fetchone()[0]
        text = db.execute("SELECT textId FROM NVTX_EVENTS WHERE textId IS NOT NULL "
                          "GROUP BY textId ORDER BY SUM(end - start) DESC LIMIT 1").fetchone()[0]
        db.execute("UPDATE StringIds SET value = ? WHERE id IN (?, ?)", (SCRIPT + IMG, kernel, short))
        db.execute("UPDATE StringIds SET value = ? WHERE id = ?", (IMG + BREAKOUT, text))
    return copy


def test_hostile_names_are_text_never_markup(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["nsys", str(hostile_export(tmp_path)), "-o", str(out)]) == 0
    raw = out.read_text(encoding="utf-8")
    page = read_page(out)
    assert SCRIPT + IMG in page.text and IMG + BREAKOUT in page.text  # shown, as text
    assert raw.count("<script") == 2 == len(page.scripts)  # the timeline's data and the page's JS
    assert not [a for t, a in page.tags if t == "img" and "onerror" in a]
    assert all(not k.startswith("on") for _, attrs in page.tags for k in attrs)
    names = json.loads(page.scripts[0])["names"]
    assert SCRIPT + IMG in names and IMG + BREAKOUT in names  # whole, inside the JSON block


def _trtexec_files() -> tuple[Path, Path] | None:
    root = fixtures_root() / "trtexec"
    for profile in sorted(root.glob("*.profile.json")) if root.is_dir() else []:
        info = profile.with_name(profile.name.replace(".profile.json", ".graph.json"))
        if info.exists():
            return info, profile
    return None


def _argv(kind: str, folder: Path) -> list[str]:
    if kind == "trtexec":
        found = _trtexec_files()
        if found is None:
            pytest.skip("no trtexec layer-info/profile pair among the fixtures")
        return ["trtexec", "--layer-info", str(found[0]), "--profile", str(found[1])]
    if kind == "triton":
        return ["triton", str(fixture_path("triton", TRIDENT))]
    from .test_net_ingest import random_records, write_capture

    return ["net", str(write_capture(folder / "net.txt", random_records()))]


@pytest.mark.parametrize("kind", ["trtexec", "triton", "net"])
def test_every_command_writes_the_same_numbers_as_html(kind, tmp_path, capsys):
    argv = _argv(kind, tmp_path)
    assert main([*argv, "-o", str(tmp_path / "r.json")]) == 0
    assert main([*argv, "-o", str(tmp_path / "r.html")]) == 0
    assert main([*argv, "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
    assert assert_same_numbers(tmp_path / "r.html", tmp_path / "r.json") > 0
    assert_self_contained(tmp_path / "r.html")


def slowed_copy(folder: Path) -> Path:
    """The ResNet-50 export with one layer's kernels made 1.5x slower in SQL, as test_diff."""
    new = folder / "slowed.sqlite"
    shutil.copyfile(fixture_path("nsys", RESNET), new)
    with sqlite3.connect(new) as db:
        ids = [(row[0],) for row in db.execute(LAYER_KERNELS, (SLOWED,))]
        db.executemany("UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = start + (end - start) * 3 / 2 "
                       "WHERE rowid = ?", ids)
    return new


def test_diff_page_has_the_diff_json_numbers(tmp_path, capsys):
    """The diff's JSON keeps raw ns under its own keys; the page shows µs: every layer and
    kernel row's counts, totals and p99s agree to the nanosecond."""
    base, new = fixture_path("nsys", RESNET), slowed_copy(tmp_path)
    argv = ["diff", str(base), str(new)]
    assert main([*argv, "-o", str(tmp_path / "d.json")]) == 0
    assert main([*argv, "-o", str(tmp_path / "d.html")]) == 0
    doc, page = json.loads((tmp_path / "d.json").read_text()), read_page(tmp_path / "d.html")
    assert_self_contained(tmp_path / "d.html")
    for category, rows in doc["categories"].items():
        header = page.headers[category]
        shown = {r[0]: dict(zip(header, r, strict=True)) for r in page.tables[category]}
        assert len(shown) == len(rows)
        for row in rows:
            cells = shown[row["name"]]
            assert int(cells["Calls base"]) == row["base_count"]
            for side in ("base", "new"):
                for stat in ("total", "p99"):
                    got = float(cells[f"{side.capitalize()} {stat} (µs)"]) * 1000
                    assert got == pytest.approx(row[f"{side}_{stat}"], abs=0.5), (row["name"], side, stat)
            if row["delta_total_pct"] is not None:
                assert float(cells["Δ total (%)"]) == pytest.approx(row["delta_total_pct"], abs=0.006)


def test_unknown_extension_is_one_error_line(tmp_path, capsys):
    code = main(["nsys", str(fixture_path("nsys", RESNET)), "-o", str(tmp_path / "r.xhtml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and ".html" in err


def test_engine_folder_page_has_the_json_numbers_and_the_latency_marks(tmp_path, capsys):
    from .conftest import CLS_MODEL

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    assert main(["engine", str(CLS_MODEL), "--shapes", "1x3x48x96", "--iterations", "30",
                 "--warmup", "1", "--profile-iterations", "2", "-o", str(tmp_path)]) == 0
    assert assert_same_numbers(tmp_path / "report.html", tmp_path / "report.json") > 0
    assert_self_contained(tmp_path / "report.html")
    assert "report.html" in (tmp_path / "report.md").read_text()  # the Files section lists it
    latency = {r["statistic"]: r for r in json.loads((tmp_path / "report.json").read_text())
               ["sections"][0]["rows"]}
    unit = next(k for k in latency["p50"] if k.startswith("value"))
    scale = 1000 if "ms" in unit else 1
    raw = (tmp_path / "report.html").read_text(encoding="utf-8")
    caption = re.search(r"<figcaption>(p50 [^<]*)</figcaption>", raw).group(1)
    marks = dict(part.split()[:2] for part in caption.split(" of ")[0].split(", "))
    for label in ("p50", "p99"):
        assert float(marks[label]) == pytest.approx(latency[label][unit] * scale, rel=1e-5)


def test_triton_page_marks_the_end_to_end_percentiles_of_the_trace(tmp_path, capsys):
    """The END_TO_END plot's p50/p99 against plain Python on the trace file: each request's
    last send end minus its first receive start, numpy's linear percentiles."""
    import numpy as np

    trace = fixture_path("triton", TRIDENT)
    assert main(["triton", str(trace), "-o", str(tmp_path / "t.html")]) == 0
    raw = (tmp_path / "t.html").read_text(encoding="utf-8")
    caption = re.search(r"<figcaption>(p50 [^<]*)</figcaption>", raw).group(1)
    marks = dict(part.split()[:2] for part in caption.split(" of ")[0].split(", "))
    stamps: dict[int, dict[str, list[int]]] = {}
    for record in json.loads(trace.read_text()):
        for stamp in record.get("timestamps", []):
            stamps.setdefault(record["id"], {}).setdefault(stamp["name"], []).append(stamp["ns"])
    e2e = [max(s["HTTP_SEND_END"]) - min(s["HTTP_RECV_START"])
           for s in stamps.values() if "HTTP_RECV_START" in s and "HTTP_SEND_END" in s]
    for q, label in ((50, "p50"), (99, "p99")):
        want = np.percentile(np.array(e2e, dtype=float), q, method="linear") / 1e3
        assert float(marks[label]) == pytest.approx(want, rel=1e-5)
    assert f"of {len(e2e)} samples" in caption
