"""Memory over time from real exports that carry CUDA_GPU_MEMORY_USAGE_EVENTS (captured with
``nsys profile --cuda-memory-usage=true``), cross-checked against plain SQL on the same file.

Runs on every shared export that has the table, whatever their number (nsys 2024.2 and 2025.3,
A100 and GH200 today); skips with the reason when none has it. Every peak is compared per
(GPU, memory kind), value and time, against a running sum written in SQL: comparing totals
let pinned host memory be added into GPU memory unnoticed (issue 13: a 93,000 MiB "GPU" peak
on a 40 GB A100)."""

from __future__ import annotations

import pytest

import gpuprof
from gpuprof.analyze.memory import memory_timeline
from gpuprof.render.nsys_report import memory_section
from gpuprof.render.plots import memory_lines

from .conftest import SQL_MEM_KIND_NAMES, export_sql, export_tables, nsys_fixtures

TABLE = "CUDA_GPU_MEMORY_USAGE_EVENTS"
MIB = 1 << 20
HOST = {"pageable", "pinned"}

# the first time each (device, kind) reaches its highest use; ties at one timestamp in rowid
# order, as nsys wrote them
PEAKS_SQL = f"""
WITH {SQL_MEM_KIND_NAMES},
use AS (
  SELECT deviceId, memKind, start,
         SUM(CASE WHEN memoryOperationType = 0 THEN bytes ELSE -bytes END)
           OVER (PARTITION BY deviceId, memKind ORDER BY start, rowid ROWS UNBOUNDED PRECEDING) AS used,
         ROW_NUMBER() OVER (PARTITION BY deviceId, memKind ORDER BY start, rowid) AS n
  FROM {TABLE}),
ranked AS (
  SELECT deviceId, memKind, used, start,
         ROW_NUMBER() OVER (PARTITION BY deviceId, memKind ORDER BY used DESC, n) AS r
  FROM use)
SELECT deviceId, kinds.kind, used, start FROM ranked JOIN kinds ON kinds.id = memKind WHERE r = 1
"""


def _with_memory_usage() -> list:
    found = [path for path in nsys_fixtures() if TABLE in export_tables(path)]
    return found or [pytest.param(None, marks=pytest.mark.skip(
        reason=f"no shared nsys export has {TABLE}: add one captured with --cuda-memory-usage=true"))]


EXPORTS = _with_memory_usage()


def _sql_peaks(export) -> dict[tuple[int, str], tuple[int, int]]:
    """(device, kind) -> (peak bytes, time of the peak), in plain SQL."""
    return {(device, kind): (used, start) for device, kind, used, start in export_sql(export, PEAKS_SQL)}


@pytest.fixture(scope="module", params=EXPORTS, ids=lambda p: getattr(p, "name", "none")[-45:])
def loaded(request):
    return request.param, gpuprof.load(request.param)


def test_memory_events_equal_sql_on_the_export(loaded):
    export, run = loaded
    events = run.memory_events
    [(rows, allocated, freed)] = export_sql(
        export, f"SELECT COUNT(*), TOTAL(CASE WHEN memoryOperationType = 0 THEN bytes END), "
                f"TOTAL(CASE WHEN memoryOperationType = 1 THEN bytes END) FROM {TABLE}")
    assert len(events) == rows
    assert events.loc[events["kind"] == "alloc", "bytes"].sum() == allocated
    assert -events.loc[events["kind"] == "free", "bytes"].sum() == freed
    assert "memory_events" not in run.meta.absent


def test_frees_carry_their_allocations_kind(loaded):
    # the per-kind running sum relies on it: a free's memKind is its allocation's
    export, _ = loaded
    [(mismatched,)] = export_sql(export, f"""
        SELECT COUNT(*) FROM {TABLE} f JOIN {TABLE} a ON a.address = f.address
          AND a.memoryOperationType = 0 AND f.memoryOperationType = 1 AND a.start <= f.start
        WHERE a.memKind <> f.memKind""")
    assert mismatched == 0


def test_every_peak_per_kind_equals_sql(loaded):
    export, run = loaded
    expected = _sql_peaks(export)
    table = memory_section(run, origin_ns=run.time_zero).table
    assert len(table) == len(expected)
    shown = {row["Memory"]: row for _, row in table.iterrows()}
    for (device, kind), (peak, when) in expected.items():
        label = f"host {kind}" if kind in HOST else f"GPU {device} {kind.replace('_', ' ')}"
        row = shown[label]
        assert row["Peak (MiB)"] * MIB == pytest.approx(peak, rel=1e-12, abs=1e-6)
        assert row["Peak at (ms)"] == pytest.approx((when - run.time_zero) / 1e6, abs=1e-9)


def test_plot_lines_peak_where_sql_says(loaded):
    export, run = loaded
    expected = _sql_peaks(export)
    lines = {line.label: line for line in memory_lines(memory_timeline(run.memory_events), run.time_zero)}
    assert len(lines) == len(expected)
    for (device, kind), (peak, when) in expected.items():
        label = f"host {kind}" if kind in HOST else f"GPU {device} {kind.replace('_', ' ')}"
        line = lines[f"{label} (nsys)"]
        assert line.host == (kind in HOST)
        assert line.peak_mib * MIB == pytest.approx(peak, rel=1e-12, abs=1e-6)
        assert line.peak_ms == pytest.approx((when - run.time_zero) / 1e6, abs=1e-9)


def test_no_gpu_row_exceeds_the_gpus_memory(loaded):
    # what the old per-GPU sum broke: device-side peaks fit the GPU; host memory is not in them
    export, run = loaded
    capacity = dict(export_sql(export, "SELECT id, totalMemory FROM TARGET_INFO_GPU"))
    for (device, kind), (peak, _) in _sql_peaks(export).items():
        if kind not in HOST:
            assert peak <= capacity[device]
    table = memory_section(run).table
    gpu_rows = table[table["Memory"].str.startswith("GPU")]
    assert not gpu_rows["Memory"].str.contains("pinned|pageable").any()


def test_trace_counters_peak_per_kind_as_sql(loaded):
    # one counter per (GPU, kind): two kinds under one name would read as one jumping series
    from gpuprof.render.chrome_trace import to_chrome_trace

    export, run = loaded
    counters: dict[str, float] = {}
    for event in to_chrome_trace(run, origin_ns=run.time_zero)["traceEvents"]:
        if event["ph"] == "C":
            counters[event["name"]] = max(counters.get(event["name"], 0.0), event["args"]["MiB"])
    expected = _sql_peaks(export)
    assert len(counters) == len(expected)
    for (device, kind), (peak, _) in expected.items():
        label = f"host {kind}" if kind in HOST else f"GPU {device} {kind.replace('_', ' ')}"
        assert counters[f"{label} memory (nsys)"] == round(peak / MIB, 3)


def test_protobuf_trace_counters_peak_per_kind_as_sql(loaded, tmp_path):
    """The .pftrace's memory counter tracks (bytes, unrounded): one per (GPU, kind), each
    peaking at the plain-SQL running sum's peak, at the same time."""
    pb = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")
    from gpuprof.render.perfetto_trace import write_perfetto_trace

    export, run = loaded
    trace = pb.Trace.FromString(write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes())
    names = {p.track_descriptor.uuid: p.track_descriptor.name for p in trace.packet
             if p.HasField("track_descriptor") and p.track_descriptor.HasField("counter")}
    peaks: dict[str, tuple[int, int]] = {}
    for p in trace.packet:
        event = p.track_event
        if p.HasField("track_event") and event.type == pb.TrackEvent.TYPE_COUNTER:
            name = names[event.track_uuid]
            if name not in peaks or event.counter_value > peaks[name][0]:
                peaks[name] = (event.counter_value, p.timestamp)
    expected = _sql_peaks(export)
    assert len(peaks) == len(expected)
    for (device, kind), peak in expected.items():
        label = f"host {kind}" if kind in HOST else f"GPU {device} {kind.replace('_', ' ')}"
        assert peaks[f"{label} memory (nsys)"] == peak, (device, kind)


def test_saved_run_keeps_the_kinds(loaded, tmp_path):
    from gpuprof.analyze.memory import memory_summary

    _, run = loaded
    again = gpuprof.load(run.save(tmp_path / "run.gpuprof"))
    assert memory_summary(again.memory_events).equals(memory_summary(run.memory_events))
