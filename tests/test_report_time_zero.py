"""Report times measured from the run's time zero, cross-checked independently.

- The nsys report's idle-gap table ("Starts at", "Length") and the stream table's idle columns
  are recomputed with window functions in plain SQL on the same export; time zero is the
  earliest event of the export, also found with SQL.
- A peak of memory reads the same ms in the nsys report ("Peak at"), the engine report (its
  peak note and phase starts) and memory.png, all measured from the run's first event even
  when the first memory event comes later (Task: one time zero for every output).
"""

from __future__ import annotations

import pandas as pd
import pytest

from gpuprof.api import Run
from gpuprof.model import Profile, conform
from gpuprof.render import plots
from gpuprof.render.artifacts import write_memory_plot
from gpuprof.render.engine_report import build_engine_report
from gpuprof.render.nsys_report import gap_section, memory_section, stream_section
from tests.conftest import (
    GPU_ACTIVITY_TABLES,
    SQL_PID,
    export_tables,
    fixture_path,
    nsys_profile,
    nsys_sql,
    spy_on,
)

EXPORTS = [
    "caoye310__Lower-Triangular-Solves__la.sqlite",        # NVTX before the GPU work, 18 streams
    "Lianhang666__gpu4__report2.sqlite",                   # 4 streams of kernels and copies
    "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_before.sqlite",  # two GPUs
    "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite",  # TensorRT run
]
MIB = 1 << 20


# -- plain SQL: the independent side ------------------------------------------------------

def _tables(name: str) -> set[str]:
    return export_tables(fixture_path("nsys", name))


def _gpu_ops_sql(name: str) -> str:
    """Every kernel, memcpy and memset that can be placed in time, as one SQL relation."""
    present = [t for t in GPU_ACTIVITY_TABLES if t in _tables(name)]
    return " UNION ALL ".join(
        f'SELECT deviceId AS dev, {SQL_PID} AS pid, streamId AS stream, start, "end" FROM {t} '
        'WHERE "end" >= start AND start >= 0' for t in present)


def _first_event_sql(name: str) -> int:
    """The earliest timestamp of any event the report counts: GPU work, CUDA API calls, NVTX
    ranges with an end and marks, memory events (negative times mean "not recorded")."""
    tables = _tables(name)
    parts = [f"SELECT MIN(start) AS t FROM {t} WHERE \"end\" >= start AND start >= 0"
             for t in (*GPU_ACTIVITY_TABLES, "CUPTI_ACTIVITY_KIND_RUNTIME") if t in tables]
    if "NVTX_EVENTS" in tables:
        parts.append('SELECT MIN(start) FROM NVTX_EVENTS WHERE start >= 0 AND '
                     '(eventType = 34 OR (eventType IN (59, 60) AND "end" >= start))')
    if "CUDA_GPU_MEMORY_USAGE_EVENTS" in tables:
        parts.append("SELECT MIN(start) FROM CUDA_GPU_MEMORY_USAGE_EVENTS WHERE start >= 0")
    return nsys_sql(name, f"SELECT MIN(t) FROM ({' UNION ALL '.join(parts)})")[0][0]


def _gaps_sql(name: str, keys: str) -> str:
    """Idle gaps per ``keys`` group: an operation starting after the latest end of every
    operation before it (in start order) opens a gap from that end to its start."""
    return f"""
        WITH ops AS ({_gpu_ops_sql(name)}),
        ordered AS (
            SELECT {keys}, start, MAX("end") OVER (
                PARTITION BY {keys} ORDER BY start, "end"
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_end
            FROM ops)
        SELECT {keys}, before_end AS gap_start, start AS gap_end FROM ordered
        WHERE start > before_end"""


# -- gap table ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPORTS)
def test_gap_table_starts_and_lengths_match_sql(name):
    top = 5
    rows = nsys_sql(name, f"""
        SELECT dev, gap_start, gap_end - gap_start FROM (
            SELECT *, ROW_NUMBER() OVER (
                PARTITION BY dev ORDER BY gap_end - gap_start DESC, gap_start) AS rank
            FROM ({_gaps_sql(name, 'dev')}))
        WHERE rank <= {top} ORDER BY dev, rank""")
    zero = _first_event_sql(name)
    table = gap_section(nsys_profile(name), max_rows=None, top=top).table
    assert len(table) == len(rows) > 0
    assert table["GPU"].tolist() == [str(dev) for dev, _, _ in rows]
    assert table["Starts at (ms)"].tolist() == pytest.approx([(s - zero) / 1e6 for _, s, _ in rows])
    assert table["Length (ms)"].tolist() == pytest.approx([length / 1e6 for _, _, length in rows])


@pytest.mark.parametrize("name", EXPORTS[:2])
def test_stream_idle_columns_match_sql(name):
    keys = "dev, pid, stream"
    expected = {(str(d), str(p), str(s)): (n, total, longest) for d, p, s, n, total, longest in
                nsys_sql(name, f"""
        SELECT {keys}, COUNT(*), SUM(gap_end - gap_start), MAX(gap_end - gap_start)
        FROM ({_gaps_sql(name, keys)}) GROUP BY {keys}""")}
    table = stream_section(nsys_profile(name), max_rows=None).table
    shown = set(zip(table["GPU"], table["Process"], table["Stream"], strict=True))
    assert expected and set(expected) <= shown
    for row in table.to_dict("records"):
        n, total, longest = expected.get((row["GPU"], row["Process"], row["Stream"]), (0, 0, 0))
        assert row["Idle gaps"] == n
        assert row["Idle (ms)"] == pytest.approx(total / 1e6)
        assert row["Largest gap (ms)"] == pytest.approx(longest / 1e6)


# -- one time zero for memory peaks -------------------------------------------------------

def _memory_events(times: list[int]) -> pd.DataFrame:
    """Allocate 256 MiB, 128 MiB more (the peak, at the second time), free 300 MiB."""
    return conform("memory_events", pd.DataFrame({
        "time_ns": times, "device_id": [0, 0, 0], "source": pd.Categorical(["nsys"] * 3),
        "kind": ["alloc", "alloc", "free"], "bytes": [256 * MIB, 128 * MIB, -300 * MIB]}))


@pytest.fixture
def drawn_lines():
    """What plot_memory really draws: every memory_lines result, in call order."""
    with spy_on(plots, "memory_lines") as seen:
        yield seen


def test_nsys_peak_reads_the_same_in_report_and_png(tmp_path, drawn_lines):
    """A real export's GPU work with memory events that start 3 ms after its first kernel."""
    name = "Lianhang666__gpu4__report2.sqlite"
    first_kernel = nsys_sql(name, "SELECT MIN(start) FROM CUPTI_ACTIVITY_KIND_KERNEL")[0][0]
    times = [first_kernel + 3_000_000, first_kernel + 5_000_000, first_kernel + 7_000_000]
    real = nsys_profile(name)
    profile = Profile(tables={**real.tables, "memory_events": _memory_events(times)},
                      meta=real.meta)
    peak_ms = (times[1] - _first_event_sql(name)) / 1e6
    assert peak_ms > 5.0  # the run starts before the first kernel, the memory 3 ms after it

    assert memory_section(profile).table["Peak at (ms)"].tolist() == pytest.approx([peak_ms])
    write_memory_plot(Run.of(profile), tmp_path / "memory.png")
    assert [line.peak_ms for line in drawn_lines[-1]] == pytest.approx([peak_ms])


def _engine_profile() -> tuple[Profile, int]:
    """An engine-shaped run whose memory events start after its first timed iteration."""
    t0 = 10_000_000_000
    iterations = conform("iterations", pd.DataFrame({
        "iteration": [0, 1, 2], "start_ns": [t0, t0 + 2_000_000, t0 + 4_000_000],
        "end_ns": [t0 + 1_000_000, t0 + 3_000_000, t0 + 5_000_000]}).assign(
            latency_ns=lambda f: f["end_ns"] - f["start_ns"]))
    events = _memory_events([t0 + 1_500_000, t0 + 2_500_000, t0 + 4_500_000]).assign(
        phase=pd.Categorical(["load", "timed", "timed"]))
    return Profile(tables={"iterations": iterations, "memory_events": events}), t0


def test_engine_peak_and_phase_starts_from_the_run_start(tmp_path, drawn_lines):
    from gpuprof.render.engine_report import plot_memory_file

    profile, t0 = _engine_profile()
    section = build_engine_report(Run.of(profile)).section("memory")
    # load starts 1.5 ms and the peak (second allocation, in "timed") 2.5 ms after the first
    # iteration, the run's first event
    assert section.table["start (ms)"].tolist() == pytest.approx([1.5, 2.5])
    assert any("first reached in phase 'timed' at 2.500 ms" in note for note in section.notes)
    plot_memory_file(Run.of(profile), tmp_path / "memory.png")
    assert [line.peak_ms for line in drawn_lines[-1]] == pytest.approx([2.5])
    nsys_view = memory_section(profile).table["Peak at (ms)"].tolist()
    assert nsys_view == pytest.approx([2.5])
