"""Every saved run reopens, from the CLI, with the command that made it and with
``gpuprof open``, and the reopened report's numbers equal the first report's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuprof.cli.main import main
from tests.conftest import fixture_path, nsys_fixtures

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--iterations", "5", "--warmup", "1", "--profile-iterations", "2"]
TRITON_TRACE = "cmpark0126__ml-serving-system-building__sync_poison.json"


def _json_report(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _written(path: Path) -> dict:
    return json.loads(path.read_text())


def _numbers(report: dict, leave_out: tuple[str, ...] = ()) -> dict:
    """Every section's rows by key: what the reopened report must repeat exactly."""
    return {s["key"]: s for s in report["sections"] if s["key"] not in leave_out}


def _smallest_nsys_export() -> Path:
    exports = [p for p in nsys_fixtures() if p.stat().st_size > 0]
    if not exports:
        pytest.skip("no shared nsys exports (set GPUPROF_FIXTURES)")
    return min(exports, key=lambda p: p.stat().st_size)


def test_nsys_run_reopens_with_nsys_and_open(capsys, tmp_path):
    export = _smallest_nsys_export()
    saved = tmp_path / "run.gpuprof"
    first = _json_report(capsys, ["nsys", str(export), "--format", "json", "--save", str(saved)])
    again = _json_report(capsys, ["nsys", str(saved), "--format", "json"])
    opened = _json_report(capsys, ["open", str(saved), "--format", "json"])
    assert first["sections"], export.name
    assert _numbers(again) == _numbers(first)
    assert _numbers(opened) == _numbers(first)


def test_nsys_save_keeps_launch_details_only_when_asked(capsys, tmp_path):
    """--save keeps every event but reads launch configurations (half of a huge export's
    read) only with --details; the saved run says which, and its report is the same."""
    import gpuprof

    export = fixture_path("nsys", "Lianhang666__gpu4__report2.sqlite")
    lean, full = tmp_path / "lean.gpuprof", tmp_path / "full.gpuprof"
    first = _json_report(capsys, ["nsys", str(export), "--format", "json", "--save", str(lean)])
    detailed = _json_report(capsys, ["nsys", str(export), "--format", "json", "--save", str(full),
                                     "--details"])
    assert _numbers(detailed) == _numbers(first)
    lean_run, full_run = gpuprof.load(lean), gpuprof.load(full)
    assert lean_run.meta.extra["details"] is False and lean_run.kernel_launches.empty
    assert full_run.meta.extra["details"] is True
    assert len(full_run.kernel_launches) == len(full_run.kernels) > 0
    assert len(lean_run.kernels) == len(full_run.kernels)


def test_triton_run_reopens_with_triton_and_open(capsys, tmp_path):
    trace = fixture_path("triton", TRITON_TRACE)
    saved = tmp_path / "x.gpuprof"
    first = _json_report(capsys, ["triton", str(trace), "--format", "json", "--save", str(saved)])
    again = _json_report(capsys, ["triton", str(saved), "--format", "json"])
    opened = _json_report(capsys, ["open", str(saved), "--format", "json"])
    assert _numbers(first)["summary"]["rows"], "the trace's stage percentiles"
    assert again == first  # title and facts included: the run keeps what the report said
    assert opened == first


def test_engine_run_reopens_with_engine_and_open(capsys, tmp_path):
    model = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
    if not model.exists():
        pytest.skip("ppocr_mobile_v2_cls.onnx not fetched (tools/setup.sh)")
    out = tmp_path / "cls"
    first = _json_report(capsys, ["engine", str(model), "--backend", "onnxruntime", "-o", str(out),
                                  "--format", "json", *SMALL])
    saved = out / "run.gpuprof"
    again = _json_report(capsys, ["engine", str(saved), "--format", "json"])
    opened = _json_report(capsys, ["open", str(saved), "--format", "json"])
    # the first report lists the files it wrote; a reopened one writes none
    assert _numbers(first)["latency"]["rows"]
    assert _numbers(again) == _numbers(first, leave_out=("files",))
    assert _numbers(opened) == _numbers(again)
    assert again["facts"] == first["facts"]
    rewritten = tmp_path / "again"
    assert main(["open", str(saved), "-o", str(rewritten), "--format", "json"]) == 0
    capsys.readouterr()
    assert _numbers(_written(rewritten / "report.json")) == _numbers(_written(out / "report.json"))


def test_a_run_given_to_the_wrong_command_names_the_right_one(capsys, tmp_path):
    trace = fixture_path("triton", TRITON_TRACE)
    saved = tmp_path / "x.gpuprof"
    assert main(["triton", str(trace), "--save", str(saved), "-o", str(tmp_path / "r.md")]) == 0
    capsys.readouterr()
    for command in ("nsys", "engine"):
        assert main([command, str(saved)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: x.gpuprof is a saved 'gpuprof triton' run"), err
        assert "gpuprof open x.gpuprof" in err and err.count("\n") == 1


def test_open_refuses_what_is_not_a_saved_run(capsys, tmp_path):
    assert main(["open", str(tmp_path / "report.sqlite")]) == 2
    assert "is not a saved run (.gpuprof)" in capsys.readouterr().err
    assert main(["open", str(tmp_path / "missing.gpuprof")]) == 2
    assert "does not exist" in capsys.readouterr().err
