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


def test_unknown_command_is_one_clear_line(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err
