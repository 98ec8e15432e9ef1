"""Every bad input to `gpuprof nsys` gives one clear line and a non-zero exit, never a
traceback; fuzzed copies of real exports end in a report or a GpuprofError, never a crash."""

from __future__ import annotations

import random
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from gpuprof.cli.main import main

from .conftest import fixture_path, nsys_fixtures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fuzz_nsys  # noqa: E402

LA = "caoye310__Lower-Triangular-Solves__la.sqlite"


def _run(capsys, *args):
    code = main(["nsys", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_missing_file(capsys, tmp_path):
    code, _, err = _run(capsys, tmp_path / "nope.sqlite")
    _assert_one_line_error(code, err, "does not exist")


def test_directory_without_exports(capsys, tmp_path):
    # a directory is many exports at once (tests/test_fleet.py); one with none is refused
    (tmp_path / "notes.txt").write_text("not an export")
    code, _, err = _run(capsys, tmp_path)
    _assert_one_line_error(code, err, "no exports in")


def test_not_sqlite(capsys, tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("hello")
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "not an SQLite file")


def test_sqlite_but_not_nsys(capsys, tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "not an Nsight Systems export")


@pytest.mark.parametrize("keep", [50, 4096, 300_000])
def test_truncated(capsys, tmp_path, keep):
    path = tmp_path / "cut.sqlite"
    path.write_bytes(fixture_path("nsys", LA).read_bytes()[:keep])
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "damaged or truncated", "nsys export")


def test_corrupted_pages(capsys, tmp_path):
    data = bytearray(fixture_path("nsys", LA).read_bytes())
    rng = random.Random(7)
    for offset in range(4096, len(data), 8192):
        data[offset:offset + 64] = bytes(rng.getrandbits(8) for _ in range(64))
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(bytes(data))
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "damaged or truncated")


@pytest.mark.parametrize("name", ["mabdullahsoyturk__cardiac-simulation__report1.sqlite",
                                  "PPCU-ITK__parallel-prog-2026-lab-7-barlaya__report1.sqlite"])
def test_export_with_nothing_to_report(capsys, name):
    # exports without kernels but with runtime calls, NVTX or memory are reported
    # (test_nsys_without_kernels.py); one with none of them is refused
    code, _, err = _run(capsys, fixture_path("nsys", name))
    _assert_one_line_error(code, err, "no GPU kernels", "NVTX ranges or memory events",
                           "nsys profile -t cuda")
    assert code == 5


def test_nsys_rep_without_nsys(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nsys on PATH
    path = tmp_path / "report1.nsys-rep"
    path.write_bytes(b"\0" * 16)
    code, _, err = _run(capsys, path)
    _assert_one_line_error(code, err, "'nsys' is not installed", "nsys export --type sqlite")


def test_bad_flag_values(capsys, tmp_path):
    code, _, err = _run(capsys, fixture_path("nsys", LA), "-o", tmp_path / "report.xlsx")
    _assert_one_line_error(code, err, "extension")


def test_debug_shows_traceback_for_user_errors(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        main(["--debug", "nsys", str(tmp_path / "nope.sqlite")])


FUZZ_CASES = 120


@pytest.mark.timeout(600)
def test_fuzzed_exports_never_crash(tmp_path):
    sources = [p for p in nsys_fixtures() if p.stat().st_size < 3_000_000]
    if not sources:
        pytest.skip("shared nsys fixtures not found (set GPUPROF_FIXTURES)")
    outcomes = {"ok": 0, "error": 0}
    for seed in range(FUZZ_CASES):
        kind = fuzz_nsys.MUTATIONS[seed % len(fuzz_nsys.MUTATIONS)]
        source = sources[seed % len(sources)]
        outcomes[fuzz_nsys.run_case(source, kind, seed, tmp_path)] += 1  # a crash raises
    assert outcomes["ok"] and outcomes["error"]


def test_mutated_value_types_still_report(tmp_path):
    """A DLProf-style post-processed file: text where nsys writes integers."""
    path = tmp_path / "mutated.sqlite"
    shutil.copyfile(fixture_path("nsys", LA), path)
    con = sqlite3.connect(path)
    con.execute("UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET streamId = 'seven' WHERE rowid % 2 = 0")
    con.commit()
    con.close()
    from gpuprof.api import load

    run = load(path)
    assert (run.kernels["stream_id"] == -1).sum() > 0
    assert run.report().section("kernels") is not None


RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"


def test_export_past_the_memory_left_is_warned_of_before_reading(capsys, monkeypatch, tmp_path):
    """Past the memory it can get the process is killed without a word: the warning comes
    first, names the rows and both sizes, and the report still runs where it fits."""
    import gpuprof.capture.host as host

    export = fixture_path("nsys", RESNET)
    monkeypatch.setattr(host, "available_memory_bytes", lambda: 2**20)  # a 1 MiB machine
    code, _, err = _run(capsys, export, "-o", tmp_path / "r.json")
    warning = [line for line in err.splitlines() if line.startswith("Warning: ")]
    assert code == 0 and (tmp_path / "r.json").is_file()
    assert len(warning) == 1 and "3,251 kernels" in warning[0]
    assert "0.0 GiB is available" in warning[0] and "may kill gpuprof" in warning[0]
    monkeypatch.setattr(host, "available_memory_bytes", lambda: 64 * 2**30)
    code, _, err = _run(capsys, export, "-o", tmp_path / "r2.json")
    assert code == 0 and "Warning" not in err


def test_out_of_memory_is_one_line(capsys, monkeypatch):
    """A real allocation failure (numpy asked for 2^60 bytes) inside the command: one line
    saying what to do, exit 1, no traceback."""
    import numpy as np

    import gpuprof.api

    def too_big(*args, **kwargs):
        return np.empty(1 << 60, dtype=np.uint8)

    monkeypatch.setattr(gpuprof.api, "load", too_big)
    code, _, err = _run(capsys, fixture_path("nsys", RESNET))
    _assert_one_line_error(code, err, "out of memory", "ulimit")
    assert code == 1
