"""PNG charts: written atomically, valid PNGs, names with matplotlib's special characters."""

from __future__ import annotations

import pandas as pd
import pytest

from gpuprof.analyze.kernels import kernel_summary
from gpuprof.analyze.memory import memory_timeline
from gpuprof.errors import NoDataError
from gpuprof.ingest.nsys import read_nsys
from gpuprof.model import conform
from gpuprof.render.plots import plot_layers, plot_memory
from tests.conftest import fixture_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIB = 1 << 20


def _timeline() -> pd.DataFrame:
    events = conform("memory_events", pd.DataFrame({
        "time_ns": [0, 2_000_000, 5_000_000, 6_000_000, 1_000_000],
        "device_id": [0, 0, 0, 0, 1],
        "source": pd.Categorical(["nsys", "nsys", "nsys", "nsys", "allocator $x$"]),
        "bytes": [100 * MIB, 50 * MIB, -120 * MIB, 10 * MIB, 5 * MIB]}))
    return memory_timeline(events)


def test_plot_memory_writes_a_png_and_nothing_else(tmp_path):
    path = plot_memory(_timeline(), tmp_path / "memory.png", origin_ns=0, title="run $1")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["memory.png"]  # no temporary left behind


def test_plot_memory_refuses_empty_timeline_with_capture_hint(tmp_path):
    empty = memory_timeline(conform("memory_events", pd.DataFrame()))
    with pytest.raises(NoDataError) as info:
        plot_memory(empty, tmp_path / "m.png", origin_ns=0)
    assert "--cuda-memory-usage=true" in info.value.one_line()
    assert not (tmp_path / "m.png").exists()


def test_plot_layers_takes_any_label_and_value_columns(tmp_path):
    name = "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite"
    profile = read_nsys(fixture_path("nsys", name))
    kernels = kernel_summary(profile.kernels)
    path = plot_layers(kernels, tmp_path / "kernels.png", label="name", top=15,
                       title="GPU time by kernel")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_layers_with_layer_table(tmp_path):
    layers = pd.DataFrame({"layer": ["/conv1/Conv + /relu/Relu", "Reformatting CopyNode $a"],
                           "total_ns": [3_000_000, 1_000_000]})
    assert plot_layers(layers, tmp_path / "layers.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(NoDataError):
        plot_layers(layers.iloc[:0], tmp_path / "none.png")


def test_phase_spans_follow_runs_of_one_phase():
    import pandas as pd

    from gpuprof.analyze.memory_phases import memory_by_phase
    from gpuprof.render.plots import phase_spans

    events = conform("memory_events", pd.DataFrame({
        "time_ns": [1_000_000, 2_000_000, 3_000_000, 5_000_000, 9_000_000, 9_500_000],
        "phase": ["load", "load", "timed", "timed", "profiled", None],
    }).assign(device_id=-1, source="process_rss", bytes=0))
    assert phase_spans(memory_by_phase(events), origin_ns=0) == [
        ("load", 1.0, 3.0), ("timed", 3.0, 9.0), ("profiled", 9.0, 9.0)]
    assert phase_spans(memory_by_phase(events.assign(phase=None)), origin_ns=0) == []
