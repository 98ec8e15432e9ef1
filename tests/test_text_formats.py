"""Renderings of nsys reports: terminal fits its width, names shortened only there, escaped in
Markdown, whole in CSV/JSON; report numbers equal the analyses' in display units."""

from __future__ import annotations

import io
import json
from functools import cache

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.analyze.copies import copy_summary
from gpuprof.analyze.kernels import kernel_summary
from gpuprof.analyze.streams import gpu_busy, largest_gaps
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import Profile
from gpuprof.render.names import fit_names
from gpuprof.render.nsys_report import build_sections, profile_facts
from gpuprof.render.report import Report, Section, render
from gpuprof.render.text_formats import printable, to_markdown, to_terminal
from tests.conftest import fixture_path

EXPORTS = [
    "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",
    "caoye310__Lower-Triangular-Solves__la.sqlite",
    "kamalchowdhury326__HW5_helper__report1.sqlite",
]
LONG_KERNEL = ("void at::native::vectorized_elementwise_kernel<4, "
               "at::native::CUDAFunctor_add<float>,"
               " at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<float>,"
               " at::detail::Array<char*, 3>)")


@cache
def _profile(name: str) -> Profile:
    return read_nsys(fixture_path("nsys", name))


def _report(name: str, max_rows: int | None = 10) -> Report:
    profile = _profile(name)
    return Report(f"nsys: {name}", build_sections(profile, max_rows=max_rows),
                  profile_facts(profile))


# -- names --------------------------------------------------------------------------------

def _one(text: str, width: int) -> str:
    return fit_names([text], width)[0]


def test_one_name_drops_noise_then_templates():
    assert _one("void gemm<float, 128>(float*, int)", 20) == "gemm<float, 128>(…)"
    assert _one("void gemm<float, 128>(float*, int)", 12) == "gemm<…>(…)"
    assert _one(LONG_KERNEL, 80) == (
        "vectorized_elementwise_kernel<4, CUDAFunctor_add<float>, Array<char*, 3> >(…)")
    assert _one(LONG_KERNEL, 40) == "vectorized_elementwise_kernel<…>(…)"
    assert _one("short", 20) == "short"


def test_fitted_names_keep_different_kernels_apart():
    names = [LONG_KERNEL, LONG_KERNEL.replace("add", "mul"), LONG_KERNEL]
    short = fit_names(names, 50)
    assert short[0] != short[1] and short[0] == short[2]
    assert "add" in short[0] and "mul" in short[1]
    assert all(len(s) <= 50 for s in short)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab:<>(), _v", max_size=120), min_size=1, max_size=8),
       st.integers(4, 60))
def test_fitted_names_fit_and_never_read_alike(texts, width):
    short = fit_names(texts, width)
    assert all(len(s) <= width for s in short)
    assert len(set(short)) == len(set(texts))  # equal names equal, different ones different


def test_control_characters_never_reach_the_terminal():
    assert printable("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    table = pd.DataFrame({"Kernel": ["evil\x1b[2J\x1b]0;title\x07"], "Calls": [1]})
    out = to_terminal(Report("t\x1bx", [Section("k", "K", table, ["n\x1b"])]), width=80)
    assert "\x1b" not in out and "\x07" not in out


def test_markdown_escapes_names():
    table = pd.DataFrame({"Kernel": ["gemm<float>|*bold*_x_ [l](u) `c`"], "Calls": [3]})
    md = to_markdown(Report("r", [Section("k", "K", table)]))
    row = md.strip().splitlines()[-1]
    assert row == r"| gemm\<float\>\|\*bold\*\_x\_ \[l\](u) \`c\` | 3 |"


# -- real exports -------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPORTS)
@pytest.mark.parametrize("width", [80, 120])
def test_terminal_report_fits_the_terminal(name, width):
    out = render(_report(name), "terminal", width=width)
    assert max(len(line) for line in out.splitlines()) <= width
    assert "GPU kernels by total time" in out and "GPU memory" in out


def test_terminal_shortens_names_but_csv_and_json_keep_them():
    name = "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite"
    kernels = kernel_summary(_profile(name).kernels)
    longest = max(kernels["name"], key=len)
    table = pd.DataFrame({"Kernel": [longest + "_" * 60], "Calls": [1]})
    report = Report("r", [Section("kernels", "K", table)])
    assert longest + "_" * 60 not in render(report, "terminal", width=80)
    assert longest + "_" * 60 in render(report, "terminal", tty=False)  # a pipe: never cut
    assert longest + "_" * 60 in render(report, "csv")
    assert json.loads(render(report, "json"))["sections"][0]["rows"][0]["kernel"] == (
        longest + "_" * 60)


@pytest.mark.parametrize("name", EXPORTS)
def test_section_numbers_are_the_analyses_in_display_units(name):
    profile = _profile(name)
    report = _report(name, max_rows=None)
    kernels = kernel_summary(profile.kernels)
    shown = report.section("kernels").table
    assert list(shown["Kernel"]) == list(kernels["name"])
    assert shown["Total (ms)"].to_numpy() == pytest.approx(kernels["total_ns"].to_numpy() / 1e6)
    assert shown["p99 (µs)"].to_numpy() == pytest.approx(kernels["p99_ns"].to_numpy() / 1e3)
    assert shown["Share (%)"].sum() == pytest.approx(100.0)
    gpus = gpu_busy(profile.kernels, profile.copies)
    assert report.section("gpus").table["Busy (%)"].to_numpy() == pytest.approx(
        gpus["utilisation"].to_numpy() * 100)
    gaps = largest_gaps(profile.kernels, profile.copies, top=5)
    assert report.section("gaps").table["Length (ms)"].to_numpy() == pytest.approx(
        gaps["gap_ns"].to_numpy() / 1e6)
    copies = copy_summary(profile.copies)
    if not copies.empty:
        assert report.section("copies").table["Bandwidth (GB/s)"].to_numpy() == pytest.approx(
            copies["bandwidth_bytes_per_s"].to_numpy() / 1e9, nan_ok=True)


def test_csv_of_every_section_loads_back():
    report = _report("caoye310__Lower-Triangular-Solves__la.sqlite", max_rows=5)
    for section in report.sections:
        if section.table is None:
            continue
        back = pd.read_csv(io.StringIO(render(report, "csv", table=section.key)))
        assert len(back) == len(section.table)  # all rows: max_rows limits terminal/md only


def test_sections_skip_missing_data_but_always_explain_memory():
    profile = _profile("kamalchowdhury326__HW5_helper__report1.sqlite")
    keys = [s.key for s in build_sections(profile)]
    assert keys == ["kernels", "gpus", "gaps", "streams", "copies", "api", "memory"]  # no NVTX here
    empty = build_sections(Profile())
    assert [s.key for s in empty] == ["memory"]
    assert "--cuda-memory-usage=true" in empty[0].notes[0]


def test_facts_hold_no_host_user_or_path_data():
    facts = profile_facts(_profile("caoye310__Lower-Triangular-Solves__la.sqlite"))
    assert set(facts) <= {"Tool", "GPUs", "Kernels", "Copies and sets", "NVTX ranges"}
    assert not any("/" in v or "\\" in v for v in facts.values())


def test_main_name_keeps_room_and_columns_that_do_not_fit_are_named():
    layers = [f"/layer4/layer4.{i}/conv2/Conv + /layer4/layer4.{i}/Add + /layer4/relu_1/Relu"
              for i in range(3)]
    table = pd.DataFrame({"layer": layers, "R": ["", "", "R"]}
                         | {f"number {i}": [123456.0, 2.5, 3.25] for i in range(8)}
                         | {"top kernels": ["sm75_xmma_fprop_implicit_gemm_kernel_trt"] * 3})
    out = to_terminal(Report("r", [Section("layers", "Layers", table)]), width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = [line for line in out.splitlines() if line.startswith("/layer4")]
    assert len(rows) == 3 and len({row.split("  ")[0] for row in rows}) == 3  # told apart
    assert all(len(row.split("  ")[0]) >= 32 for row in rows)
    assert "did not fit: " in out and "top kernels" in out.split("did not fit: ")[1]


def test_large_microseconds_read_in_ms_and_large_ms_in_s():
    """Issue 13: 12,345,678 µs reads better as 12,346 ms. A table's µs columns change
    together (percentiles stay comparable); small values and other columns stay; the
    machine formats keep raw units."""
    import pandas as pd

    from gpuprof.render.text_formats import readable_units

    table = pd.DataFrame({"stage": ["a", "b"], "mean (µs)": [12_345_678.0, 20_000.0],
                          "p99 (µs)": [2e6, 3e6], "n": [1, 2]})
    shown = readable_units(table)
    assert list(shown.columns) == ["stage", "mean (ms)", "p99 (ms)", "n"]
    assert shown["mean (ms)"].tolist() == [12_345.678, 20.0]
    assert shown["n"].tolist() == [1, 2]
    hours = pd.DataFrame({"wall ms": [3.6e6, 7.2e6]})
    assert readable_units(hours).columns.tolist() == ["wall s"]
    small = pd.DataFrame({"x (µs)": [5.0, 100.0], "mus (µsx)": [1e9, 1e9]})
    assert readable_units(small).equals(small)
