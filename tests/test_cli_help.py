"""Every command documents itself, and the top-level help stays light (heavy parts load lazily)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpuprof.cli.main import COMMANDS, main

HEAVY = ("onnxruntime", "tensorrt_rtx", "tensorrt_lean", "duckdb", "matplotlib", "tritonclient",
         "pyarrow", "pandas")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: gpuprof") and len(out.splitlines()) > 3


def test_top_level_help_imports_nothing_heavy():
    code = ("import sys; from gpuprof.cli.main import main; rc = main(['--help']); "
            f"print([m for m in {HEAVY!r} if m in sys.modules]); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_perf_help_imports_nothing_heavy():
    """Regression: ``perf --help`` loaded pandas and numpy through the analysis and the runner."""
    code = ("import sys; from gpuprof.cli.main import main; rc = main(['perf', '--help']); "
            f"print([m for m in {HEAVY + ('numpy',)!r} if m in sys.modules]); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "--percentile [50|90|95|99]" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["nsys", "triton", "engine"])
def test_analysis_command_help_imports_nothing_heavy(command):
    """Their shared options (-o/--format/--table) list the formats without loading the
    renderers: help for a command that reads exports or traces needs no pandas."""
    code = ("import sys; from gpuprof.cli.main import main; "
            f"rc = main([{command!r}, '--help']); "
            f"print([m for m in {HEAVY!r} if m in sys.modules]); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_command_is_one_clear_line(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err
