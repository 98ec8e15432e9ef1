"""Set-up prints no pages of setuptools warnings: the project's metadata is what current
setuptools wants (``project.license`` as an SPDX string, not a table)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")
SPDX_SETUPTOOLS = (77, 0)  # the first setuptools that reads project.license as SPDX


def test_license_is_an_spdx_string_and_the_backend_can_read_it():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_metadata_builds_without_warnings(tmp_path):
    import setuptools

    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
    if version < SPDX_SETUPTOOLS:
        pytest.skip(f"setuptools {setuptools.__version__} here; pip builds with >=77 "
                    "(tools/setup.sh installs it with the dev extra)")
    code = ("from setuptools.build_meta import prepare_metadata_for_build_wheel as p; "
            f"print(p({str(tmp_path)!r}))")
    result = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stdout + result.stderr
    metadata = next(tmp_path.glob("*.dist-info")) / "METADATA"
    assert "License-Expression: Apache-2.0" in metadata.read_text()
