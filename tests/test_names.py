"""Names in terminal tables (issue 13, item 1): the terminal's own width, nothing cut when the
output is not a terminal, and a cut keeps what tells names apart: never two rows that read
the same. Checked on the real ResNet-50 TensorRT export, whose kernels differ only by tile
sizes deep inside 150-character names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.api import load
from gpuprof.render.names import fit_name_lists, fit_names
from gpuprof.render.report import Report, render
from tests.conftest import REPO, fixture_path

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
TILE = re.compile(r"tilesize\d+x\d+x\d+")


@cache
def _run():
    return load(fixture_path("nsys", RESNET))


def _section_report(key: str) -> tuple[Report, list[str]]:
    """A report of one section with every row shown, and the names its first column holds
    (for the layer table also the "top kernels" cells, as the terminal joins them)."""
    report = _run().report()
    section = report.section(key)
    section.max_rows = None
    return Report(report.title, [section]), [str(v) for v in section.table.iloc[:, 0]]


def _rows(text: str) -> list[list[str]]:
    """The table's body rows, split into cells (cells are at least two spaces apart)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("─")) + 1
    body = []
    for line in lines[start:]:
        if not line.strip() or line.lstrip().startswith("("):
            break
        body.append(re.split(r"\s{2,}", line.strip()))
    return body


def _same_reading(originals: list[str], shown: list[str]) -> None:
    """Shown cells read alike exactly where the names are alike."""
    assert len(originals) == len(shown)
    pairs = dict(zip(originals, shown, strict=True))
    assert len(set(pairs.values())) == len(pairs), [
        (o, s) for o, s in pairs.items() if list(pairs.values()).count(s) > 1]
    for original, cell in zip(originals, shown, strict=True):
        assert pairs[original] == cell


@pytest.mark.parametrize("width", [80, 120, 200])
def test_kernel_names_never_read_alike(width):
    report, names = _section_report("kernels")
    text = render(report, "terminal", width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    shown = [row[0] for row in _rows(text)]
    _same_reading(names, shown)


@pytest.mark.parametrize("width", [80, 120, 200])
def test_layer_names_and_top_kernels_never_read_alike(width):
    report, layers = _section_report("layers")
    text = render(report, "terminal", width=width)
    rows = _rows(text)
    _same_reading(layers, [row[0] for row in rows])
    header = text.splitlines()[text.splitlines().index(next(
        line for line in text.splitlines() if line.startswith("─"))) - 1]
    if "top kernels" in header:
        tops = [str(v) for v in report.sections[0].table["top kernels"]]
        _same_reading(tops, [row[-1] for row in rows])
    else:
        assert width < 200, "a 200-column terminal has room for the top kernels"


def test_a_wide_terminal_shows_the_tile_sizes(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    report, names = _section_report("kernels")
    text = render(report, "terminal", tty=True)  # the width comes from the terminal (COLUMNS)
    assert max(len(line) for line in text.splitlines()) <= 200
    assert max(len(line) for line in text.splitlines()) > 120
    for original, row in zip(names, _rows(text), strict=True):
        if "xmma_fprop_implicit_gemm" in original and TILE.search(original):
            assert TILE.search(original).group() in row[0], (original, row[0])


def test_piped_and_written_reports_hold_whole_names(tmp_path):
    export = fixture_path("nsys", RESNET)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="80")
    piped = subprocess.run([sys.executable, "-m", "gpuprof", "nsys", str(export), "--top", "100"],
                           capture_output=True, text=True, env=env, check=True, cwd=tmp_path).stdout
    subprocess.run([sys.executable, "-m", "gpuprof", "nsys", str(export), "--top", "100",
                    "-o", "report.txt"], capture_output=True, env=env, check=True, cwd=tmp_path)
    written = Path(tmp_path / "report.txt").read_text(encoding="utf-8")
    run = _run()
    kernels = {str(k) for k in run.kernels["name"].unique()}
    layers = {str(v) for v in run.layers()["layer"].head(25)}
    for text in (piped, written):
        assert "…" not in text
        missing = [name for name in kernels | layers if name not in text]
        assert not missing


def test_list_cells_are_cut_name_by_name():
    names = ["sm75_xmma_fprop_tilesize64x64x64_stage1_t1r3s3_execute_kernel_trt",
             "sm75_xmma_fprop_tilesize128x64x32_stage1_t1r3s3_execute_kernel_trt"]
    cells = [names[0], f"{names[0]}, {names[1]}", names[1]]
    shown = fit_name_lists(cells, 50)
    assert all(len(c) <= 50 for c in shown) and len(set(shown)) == 3
    assert "64x64x64" in shown[1] and "128x64x32" in shown[1]


def test_shared_start_and_end_go_first():
    names = [f"/model/encoder/block.{i}/attention/output/dense/MatMul" for i in range(12)]
    shown = fit_names(names, 30)
    assert len(set(shown)) == 12 and all(len(s) <= 30 for s in shown)
    assert all(f"block.{i}/" in s for i, s in enumerate(shown))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["sm75_xmma_a_tile64_k", "sm75_xmma_a_tile128_k",
                                          "sm75_xmma_b_tile64_k", "copyKernel", "x"]),
                         min_size=1, max_size=3).map(", ".join), min_size=1, max_size=8),
       st.integers(4, 60))
def test_list_cells_fit_and_never_read_alike(cells, width):
    shown = fit_name_lists(cells, width)
    assert all(len(c) <= width for c in shown)
    assert len(set(shown)) == len(set(cells))
