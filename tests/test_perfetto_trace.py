"""The Perfetto protobuf trace (.pftrace), read back with Perfetto's own protobuf classes and
checked against plain SQL on the same real exports."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

from gpuprof import load
from gpuprof.cli.main import cli
from gpuprof.render import protowire, trace_files
from gpuprof.render.perfetto_trace import write_perfetto_trace
from tests.conftest import fixture_path, nsys_fixtures

pb = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2")

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
PID = "(({col} / 16777216) % 16777216)"  # nsys globalTid/globalPid -> pid


def _exports():
    return [p.name for p in nsys_fixtures()]


class Parsed:
    """Slices per track rebuilt from begin/end packets, as a viewer would."""

    def __init__(self, data: bytes):
        trace = pb.Trace.FromString(data)
        self.tracks = {p.track_descriptor.uuid: p.track_descriptor for p in trace.packet
                       if p.HasField("track_descriptor")}
        self.names = {e.iid: e.name for p in trace.packet if p.HasField("interned_data")
                      for e in p.interned_data.event_names}
        self.slices = defaultdict(list)  # track uuid -> [(name, start, end, flows, ends)]
        self.counters = defaultdict(list)
        open_: dict[int, tuple] = {}
        for packet in trace.packet:
            if not packet.HasField("track_event"):
                continue
            event, ts = packet.track_event, packet.timestamp
            if event.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
                assert event.track_uuid not in open_, "a slice began inside an open one"
                open_[event.track_uuid] = (self.names[event.name_iid], ts,
                                           list(event.flow_ids), list(event.terminating_flow_ids))
            elif event.type == pb.TrackEvent.TYPE_SLICE_END:
                name, start, flows, ends = open_.pop(event.track_uuid)
                assert ts >= start
                self.slices[event.track_uuid].append((name, start, ts, flows, ends))
            elif event.type == pb.TrackEvent.TYPE_COUNTER:
                self.counters[event.track_uuid].append((ts, event.counter_value))
        assert not open_, "slices left open"

    def root(self, uuid: int):
        track = self.tracks[uuid]
        while track.HasField("parent_uuid") and track.parent_uuid in self.tracks:
            track = self.tracks[track.parent_uuid]
        return track

    def gpu_slices(self):
        return [s for uuid, rows in self.slices.items() for s in rows
                if self.root(uuid).process.process_name.startswith("GPU")]

    def host_slices(self, track_name: str):
        return [s for uuid, rows in self.slices.items() for s in rows
                if self.tracks[uuid].name.startswith(track_name)]


def _sql(path, query: str):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def _tables(path) -> set[str]:
    return {r[0] for r in _sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.mark.parametrize("name", _exports())
def test_every_gpu_slice_and_launch_arrow_matches_plain_sql(name, tmp_path):
    export = fixture_path("nsys", name)
    run = load(export, details=True)
    parsed = Parsed(write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes())
    tables = _tables(export)

    kernels = Counter()
    if "CUPTI_ACTIVITY_KIND_KERNEL" in tables:
        for kernel, count, total in _sql(export, """
                SELECT s.value, count(*), sum(k.end - k.start) FROM CUPTI_ACTIVITY_KIND_KERNEL k
                JOIN StringIds s ON s.id = k.shortName GROUP BY s.value"""):
            kernels[kernel] = (count, total)
    shown = defaultdict(lambda: [0, 0])
    for slice_name, start, end, _, _ in parsed.gpu_slices():
        shown[slice_name][0] += 1
        shown[slice_name][1] += end - start
    for kernel, (count, total) in kernels.items():
        assert tuple(shown[kernel]) == (count, total), kernel

    work = [t for t in ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                        "CUPTI_ACTIVITY_KIND_MEMSET") if t in tables]
    gpu_rows = sum(_sql(export, f"SELECT count(*) FROM {t}")[0][0] for t in work)
    assert len(parsed.gpu_slices()) == gpu_rows

    launches = _launching_calls(export, tables, work)
    started = [f for s in parsed.host_slices("CUDA API") for f in s[3]]
    ended = [f for s in parsed.gpu_slices() for f in s[4]]
    assert len(started) == len(set(started)) == launches
    assert sorted(ended) == sorted(started)  # every arrow that starts ends once


def _launching_calls(export, tables, work) -> int:
    """Runtime/driver calls (pid, correlation id) that launched at least one GPU row."""
    api = [t for t in ("CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_DRIVER") if t in tables]
    if not api or not work:
        return 0
    calls = " UNION ".join(f"SELECT {PID.format(col='globalTid')} AS pid, correlationId "
                           f"FROM {t}" for t in api)
    gpu = " UNION ".join(f"SELECT {PID.format(col='globalPid')} AS pid, correlationId "
                         f"FROM {t}" for t in work)
    return _sql(export, f"SELECT count(*) FROM ({calls}) c JOIN ({gpu}) g "
                        "USING (pid, correlationId)")[0][0]


@pytest.mark.parametrize("name", [RESNET])
def test_nvtx_ranges_lanes_never_overlap_and_keep_every_range(name, tmp_path):
    export = fixture_path("nsys", name)
    run = load(export, details=True)
    parsed = Parsed(write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes())
    nvtx = parsed.host_slices("NVTX")
    ended = _sql(export, "SELECT count(*) FROM NVTX_EVENTS WHERE end IS NOT NULL "
                         "AND end >= start AND eventType IN (59, 60)")[0][0]
    assert len(nvtx) == ended
    for rows in parsed.slices.values():  # no two slices of one track overlap
        spans = sorted((s[1], s[2]) for s in rows)
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_cli_writes_protobuf_for_a_pftrace_name_and_says_its_size(tmp_path):
    export = fixture_path("nsys", RESNET)
    out = tmp_path / "t.pftrace"
    result = CliRunner().invoke(cli, ["nsys", str(export), "--chrome-trace", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out} (" in result.output and "iB); open it in ui.perfetto.dev" in result.output
    assert Parsed(out.read_bytes()).gpu_slices()


def test_out_dir_writes_protobuf_only_for_large_runs(tmp_path, monkeypatch):
    export = str(fixture_path("nsys", RESNET))
    small = tmp_path / "small"
    assert CliRunner().invoke(cli, ["nsys", export, "--out-dir", str(small)]).exit_code == 0
    assert (small / "trace.json").exists() and not (small / "trace.pftrace").exists()
    monkeypatch.setattr(trace_files, "LARGE_RUN_SLICES", 100)
    large = tmp_path / "large"
    assert CliRunner().invoke(cli, ["nsys", export, "--out-dir", str(large)]).exit_code == 0
    assert (large / "trace.pftrace").exists() and not (large / "trace.json").exists()


def test_varints_at_their_edges_read_back_by_protobuf():
    values = np.array([0, 1, 127, 128, 16383, 16384, 2**32, 2**63 - 1, 2**63, 2**64 - 1],
                      dtype=np.uint64)
    present = np.arange(len(values)) % 2 == 0
    event = (protowire.varint_field(11, values)
             + protowire.fixed64_field(47, values, present))
    packet = protowire.varint_field(8, values) + protowire.message_field(11, event)
    data = protowire.to_bytes(protowire.message_field(1, packet))
    packets = pb.Trace.FromString(data).packet
    assert [p.timestamp for p in packets] == values.tolist()
    assert [p.track_event.track_uuid for p in packets] == values.tolist()
    assert [list(p.track_event.flow_ids) for p in packets] == [
        [int(v)] if keep else [] for v, keep in zip(values, present)]


@pytest.mark.parametrize("suffix", [".pftrace", ".json"])
def test_trace_window_keeps_exactly_the_kernels_overlapping_it(suffix, tmp_path):
    """--trace-window 1100:1140 (ms from the report's zero): the kernels in the trace are those a
    plain SQL query finds overlapping that window."""
    export = fixture_path("nsys", RESNET)
    zero = load(export).time_zero
    lo, hi = zero + 1_100_000_000, zero + 1_140_000_000
    expected = _sql(export, f"""SELECT count(*), sum(k.end - k.start)
        FROM CUPTI_ACTIVITY_KIND_KERNEL k WHERE k.start <= {hi} AND k.end >= {lo}""")[0]
    assert expected[0] > 0
    out = tmp_path / f"t{suffix}"
    result = CliRunner().invoke(cli, ["nsys", str(export), "--chrome-trace", str(out),
                                      "--trace-window", "1100:1140", "-o", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    if suffix == ".pftrace":
        kernels = [s for s in Parsed(out.read_bytes()).gpu_slices() if s[0] != "copy"]
        kernels = [s for s in kernels if not s[0].startswith(("memcpy", "memset", "Memcpy",
                                                                "Memset"))]
        assert (len(kernels), sum(e - s for _, s, e, _, _ in kernels)) == expected
    else:
        import json
        events = json.loads(out.read_text())["traceEvents"]
        kernels = [e for e in events if e.get("cat") == "gpu" and "demangled_name" in
                   e.get("args", {})]
        assert len(kernels) == expected[0]
        # times still count from the run's zero, as the report's do
        first = _sql(export, f"SELECT min(start) FROM CUPTI_ACTIVITY_KIND_KERNEL "
                             f"WHERE start <= {hi} AND end >= {lo}")[0][0]
        assert min(e["ts"] for e in kernels) == pytest.approx((first - zero) / 1000, abs=1e-3)


@pytest.mark.parametrize("window", ["abc", "5:1", "-1:3"])
def test_a_bad_trace_window_is_one_error_before_reading(window, tmp_path):
    export = fixture_path("nsys", RESNET)
    result = CliRunner().invoke(cli, ["nsys", str(export), "--chrome-trace",
                                      str(tmp_path / "t.pftrace"), "--trace-window", window])
    assert result.exit_code == 2
    assert "--trace-window" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "t.pftrace").exists()


def test_lanes_never_overlap_whatever_the_ranges():
    """Nested, partly overlapping and zero-length ranges: no lane holds two overlapping
    slices, and nested ranges take one lane per depth."""
    from gpuprof.render.perfetto_trace import _lanes

    nested = (np.array([0, 1, 2, 5, 10]), np.array([9, 8, 3, 6, 12]))
    assert _lanes(*nested).tolist() == [0, 1, 2, 2, 0]
    rng = np.random.default_rng(7)
    for _ in range(50):
        start = np.sort(rng.integers(0, 100, 40))
        end = start + rng.integers(0, 30, 40)
        lanes = _lanes(start, end)
        for lane in set(lanes.tolist()):
            spans = sorted(zip(start[lanes == lane], end[lanes == lane]))
            assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_gzip_trace_holds_the_same_packets(tmp_path):
    import gzip

    run = load(fixture_path("nsys", RESNET))
    plain = write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes()
    packed = write_perfetto_trace(run, tmp_path / "t.pftrace.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b" and len(packed) < len(plain) / 2
    assert gzip.decompress(packed) == plain
    assert trace_files.is_protobuf("x.PFTRACE.gz") and not trace_files.is_protobuf("x.json")
