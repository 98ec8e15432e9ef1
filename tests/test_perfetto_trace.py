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
    """Slices per track rebuilt from the packets as Perfetto's trace processor reads them,
    written here from the format's documentation, not from the writer: per packet sequence,
    the state a packet with SEQ_INCREMENTAL_STATE_CLEARED resets, the defaults (track uuid,
    timestamp clock), the interned names, and each incremental clock's running value from its
    ClockSnapshot on (a timestamp is a delta from the sequence's previous one)."""

    def __init__(self, data: bytes):
        trace = pb.Trace.FromString(data)
        self.tracks = {p.track_descriptor.uuid: p.track_descriptor for p in trace.packet
                       if p.HasField("track_descriptor")}
        self.slices = defaultdict(list)  # track uuid -> [(name, start, end, flows, ends)]
        self.counters = defaultdict(list)
        self.sequences: dict[int, dict] = {}
        self._open: dict[int, tuple] = {}
        for packet in trace.packet:
            self._read(packet)
        assert not self._open, "slices left open"

    def _read(self, packet) -> None:
        state = self._sequence_state(packet)
        if packet.HasField("clock_snapshot"):
            clocks = {c.clock_id: c for c in packet.clock_snapshot.clocks}
            for clock in clocks.values():
                if clock.is_incremental:  # BOOTTIME = this clock + offset
                    state["clocks"][clock.clock_id] = [clock.timestamp,
                                                       clocks[6].timestamp - clock.timestamp]
            return
        if packet.HasField("track_event"):
            self._event(packet, state)

    def _sequence_state(self, packet) -> dict:
        sequence = packet.trusted_packet_sequence_id
        if packet.sequence_flags & pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED:
            self.sequences[sequence] = {"names": {}, "clocks": {}, "clock": 0, "track": 0}
        state = self.sequences.setdefault(sequence, {"names": {}, "clocks": {}, "clock": 0,
                                                     "track": 0})
        if packet.HasField("trace_packet_defaults"):
            defaults = packet.trace_packet_defaults
            state["clock"] = defaults.timestamp_clock_id
            state["track"] = defaults.track_event_defaults.track_uuid
        for name in packet.interned_data.event_names:
            state["names"][name.iid] = name.name
        return state

    def _time(self, packet, state) -> int:
        clock = (packet.timestamp_clock_id if packet.HasField("timestamp_clock_id")
                 else state["clock"])
        if clock not in state["clocks"]:
            return packet.timestamp  # absolute, on the trace's clock
        running = state["clocks"][clock]
        running[0] += packet.timestamp
        return running[0] + running[1]

    def _event(self, packet, state) -> None:
        event, ts = packet.track_event, self._time(packet, state)
        track = event.track_uuid if event.HasField("track_uuid") else state["track"]
        if event.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            assert track not in self._open, "a slice began inside an open one"
            self._open[track] = (state["names"][event.name_iid], ts,
                                 list(event.flow_ids) + list(event.flow_ids_old),
                                 list(event.terminating_flow_ids)
                                 + list(event.terminating_flow_ids_old))
        elif event.type == pb.TrackEvent.TYPE_SLICE_END:
            name, start, flows, ends = self._open.pop(track)
            assert ts >= start
            self.slices[track].append((name, start, ts, flows, ends))
        elif event.type == pb.TrackEvent.TYPE_COUNTER:
            self.counters[track].append((ts, event.counter_value))

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

    def flow_chains(self) -> list[list[tuple]]:
        """Each arrow's slices, as the trace processor links them: slices in start order; an
        id not in flight starts a flow, one in flight adds a step, a terminating id ends it
        (after which the id may start another flow)."""
        begins = sorted((s for rows in self.slices.values() for s in rows),
                        key=lambda s: s[1])
        live: dict[int, list] = {}
        chains = []
        for piece in begins:
            for flow in piece[3]:
                if flow in live:
                    live[flow].append(piece)
                else:
                    live[flow] = [piece]
                    chains.append(live[flow])
            for flow in piece[4]:
                if flow in live:
                    live.pop(flow).append(piece)
        return chains


def _sql(path, query: str):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def _tables(path) -> set[str]:
    return {r[0] for r in _sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}


GPU_TABLES = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
              "CUPTI_ACTIVITY_KIND_MEMSET")
API_TABLES = ("CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_DRIVER")


@pytest.mark.parametrize("name", _exports())
def test_every_gpu_slice_and_launch_arrow_matches_plain_sql(name, tmp_path):
    export = fixture_path("nsys", name)
    run = load(export, details=True)
    parsed = Parsed(write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes())
    assert _gpu_differences(parsed, export) == []
    assert Counter(_chains(parsed)) == Counter(_sql_chains(export))


def _gpu_differences(parsed: Parsed, export) -> list:
    """Kernels (name, start, end) and all GPU rows (start, end) that the trace and plain SQL
    do not share."""
    tables = _tables(export)
    kernels = Counter()
    if "CUPTI_ACTIVITY_KIND_KERNEL" in tables:
        kernels.update(_sql(export, """SELECT s.value, k.start, k.end
            FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName"""))
    rows = Counter(r for t in GPU_TABLES if t in tables
                   for r in _sql(export, f"SELECT start, end FROM {t}"))
    shown = parsed.gpu_slices()
    shown_kernels = Counter((n, s, e) for n, s, e, _, _ in shown if (n, s, e) in kernels)
    shown_rows = Counter((s, e) for _, s, e, _, _ in shown)
    return list((kernels - shown_kernels) + (rows - shown_rows) + (shown_rows - rows))


def _chains(parsed: Parsed):
    """Each arrow as (call start, call end, its GPU slices' (start, end) in order)."""
    for chain in parsed.flow_chains():
        call, work = chain[0], chain[1:]
        yield call[1], call[2], tuple(sorted((s[1], s[2]) for s in work))


def _sql_chains(export):
    """Plain SQL: each runtime/driver call (the first of its pid and correlation id) with the
    kernels, copies and memsets of the same pid and correlation id."""
    tables = _tables(export)
    api = [t for t in API_TABLES if t in tables]
    work = [t for t in GPU_TABLES if t in tables]
    if not api or not work:
        return []
    calls = " UNION ALL ".join(f"SELECT {PID.format(col='globalTid')} AS pid, correlationId, "
                               f"start, end FROM {t}" for t in api)
    gpu = " UNION ALL ".join(f"SELECT {PID.format(col='globalPid')} AS pid, correlationId, "
                             f"start, end FROM {t}" for t in work)
    rows = _sql(export, f"""
        WITH c AS (SELECT *, row_number() OVER (PARTITION BY pid, correlationId
                                                ORDER BY start) AS k FROM ({calls}))
        SELECT c.start, c.end, g.start, g.end FROM c JOIN ({gpu}) g
        USING (pid, correlationId) WHERE c.k = 1 AND c.correlationId > 0""")
    chains = defaultdict(list)
    for call_start, call_end, start, end in rows:
        chains[(call_start, call_end)].append((start, end))
    return [(s, e, tuple(sorted(work))) for (s, e), work in chains.items()]


def test_a_one_ns_error_in_one_delta_is_caught(tmp_path):
    """The read-back is exact: one begin timestamp 1 ns off, in one sequence, fails it."""
    export = fixture_path("nsys", RESNET)
    data = write_perfetto_trace(load(export), tmp_path / "t.pftrace").read_bytes()
    assert _gpu_differences(Parsed(data), export) == []
    trace = pb.Trace.FromString(data)
    gpu_tracks = {uuid for uuid, rows in Parsed(data).slices.items()
                  if any(s in Parsed(data).gpu_slices() for s in rows[:1])}
    sequences = {p.trusted_packet_sequence_id for p in trace.packet
                 if p.trace_packet_defaults.track_event_defaults.track_uuid in gpu_tracks}
    begins = [p for p in trace.packet if p.trusted_packet_sequence_id in sequences
              and p.track_event.type == pb.TrackEvent.TYPE_SLICE_BEGIN]
    begins[len(begins) // 2].timestamp += 1
    assert _gpu_differences(Parsed(trace.SerializeToString()), export) != []


def test_sparse_correlation_ids_find_the_same_launches(monkeypatch):
    """The sorted search (sparse correlation ids) and the direct table agree."""
    from gpuprof.render import perfetto_flows

    run = load(fixture_path("nsys", RESNET))
    dense = perfetto_flows.launch_flows(run)
    monkeypatch.setattr(perfetto_flows, "DENSE_TABLE_FACTOR", 0)
    monkeypatch.setattr(perfetto_flows, "DENSE_TABLE_ROWS", 0)
    sparse = perfetto_flows.launch_flows(run)
    assert np.array_equal(dense.out, sparse.out) and dense.out.any()
    for name in perfetto_flows.GPU_TABLES:
        assert np.array_equal(dense.reaching[name], sparse.reaching[name])
        assert np.array_equal(dense.last[name], sparse.last[name])


def test_flow_ids_are_reused_only_after_their_flow_ends():
    from gpuprof.render.perfetto_flows import recycled_ids

    rng = np.random.default_rng(3)
    begin = rng.integers(0, 1_000_000, 50_000)
    end = begin + rng.integers(0, 50, 50_000)
    end[np.argmin(begin)] += 5_000  # one long flow: 127 ids are too few, 16,383 are enough
    ids = recycled_ids(begin, end)
    assert 127 < ids.max() < 2**14
    last_end: dict[int, int] = {}
    for i in np.argsort(begin, kind="stable"):
        assert begin[i] > last_end.get(int(ids[i]), -1)
        last_end[int(ids[i])] = int(end[i])


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


def test_slice_packets_at_varint_edges_read_back_as_written():
    """The bulk slice encoder's risky cases, decoded as Perfetto reads them: gaps and
    durations of 0 (the zero byte added back), 127/128 (one and two bytes), 2^49 and 2^56-1
    (slots straddling words, up to all eight bytes), flow ids across the two-byte tag's
    widths, passing and ending flows in one chunk, and a value too wide refused."""
    from gpuprof.render import perfetto_packets as packets

    gaps = np.array([0, 127, 128, 2**49, 5, 2**56 - 1], np.int64)
    durations = np.array([128, 0, 2**49, 127, 2**56 - 1, 1], np.int64)
    flow = np.array([0, 127, 0, 128, 2**21, 0], np.int64)
    ends = np.array([0, 0, 2**21 + 1, 0, 0, 2**35], np.int64)
    base = 1_000
    start, end, t = [], [], base
    for gap, duration in zip(gaps, durations, strict=True):
        start.append(t + int(gap))
        end.append(start[-1] + int(duration))
        t = end[-1]
    iids = np.array([1, 2, 1, 2, 1, 2], np.int64)
    data = packets.sequence_start(7, 99, ["a", "b"], base) + packets.slice_packets(
        7, base, np.array(start, np.int64), np.array(end, np.int64), iids, flow,
        ends).tobytes()
    shown = Parsed(data).slices[99]
    assert shown == [("ab"[i - 1], s, e, [int(f)] if f else [], [int(x)] if x else [])
                     for i, s, e, f, x in zip(iids, start, end, flow, ends, strict=True)]
    with pytest.raises(ValueError, match="too large"):
        packets.varints(np.array([2**42], np.int64), packets.FLOW_IDS)


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
    from gpuprof.render.perfetto_lanes import lane_numbers as _lanes

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


@pytest.mark.parametrize("name", _exports())
def test_copy_names_are_the_json_traces(name):
    """Copies are named from their kind and direction codes: the same words as the JSON
    trace's, which builds them row by row."""
    from gpuprof.render.chrome_trace import _copy_names
    from gpuprof.render.perfetto_trace import _copy_coded

    copies = load(fixture_path("nsys", name)).tables["copies"]
    codes, names = _copy_coded(copies)
    assert list(names[codes]) == _copy_names(copies)


def test_a_failed_write_reaches_the_caller():
    """The writer thread's error (a full disk) is raised where the trace is written."""
    from gpuprof.render.perfetto_trace import _write_behind

    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        _write_behind(FullDisk(), iter([b"a"] * 100))


def test_engine_run_slices_are_the_json_traces(tmp_path):
    """Timed iterations and layers (started, and placed back to back) on the "run" process:
    the same names and times as the JSON trace's, in ns; the run's memory as counters."""
    import json

    from gpuprof.render.chrome_trace import write_chrome_trace
    from tests.test_chrome_trace import _engine_profile, _slices_by_track

    profile = _engine_profile()
    parsed = Parsed(write_perfetto_trace(profile, tmp_path / "t.pftrace").read_bytes())
    shown = {parsed.tracks[uuid].name: [(n, s, e) for n, s, e, _, _ in rows]
             for uuid, rows in parsed.slices.items()}
    origin = 4_000  # the run's first event: JSON counts from it, and places layers there
    events = json.loads(write_chrome_trace(profile, tmp_path / "t.json", origin_ns=origin)
                        .read_text(encoding="utf-8"))["traceEvents"]
    expected = {track: sorted((e["name"], origin + round(e["ts"] * 1000),
                               origin + round((e["ts"] + e["dur"]) * 1000)) for e in rows)
                for track, rows in _slices_by_track(events).items()}
    assert {track: sorted(rows) for track, rows in shown.items()} == expected
    assert {parsed.tracks[uuid].name for uuid in parsed.counters}  # memory counters written


def test_memory_counters_are_the_running_use_recomputed_in_plain_python(tmp_path):
    """Each counter track holds, at every memory event, the bytes in use after it: the signed
    sizes summed in time order per (source, device, kind), recomputed here one event at a
    time (the peaks a reader looks for are among these points)."""
    import pandas as pd

    from gpuprof.analyze.common import UNNAMED
    from gpuprof.analyze.memory import ONE_KIND, memory_timeline
    from gpuprof.render.chrome_trace import memory_counter_names
    from tests.test_chrome_trace import _engine_profile

    profile = _engine_profile()
    events = profile.memory_events
    assert len(events) > 1
    parsed = Parsed(write_perfetto_trace(profile, tmp_path / "t.pftrace").read_bytes())
    names = memory_counter_names(memory_timeline(events))
    expected: dict[str, list] = defaultdict(list)
    used: dict[tuple, int] = defaultdict(int)
    rows = sorted(enumerate(events.itertuples(index=False)), key=lambda r: (r[1].time_ns, r[0]))
    for _, event in rows:
        # the timeline's labels for a source or kind an event leaves empty (names, not numbers)
        key = (UNNAMED if pd.isna(event.source) else event.source, event.device_id,
               ONE_KIND if pd.isna(event.memory_kind) else event.memory_kind)
        used[key] += int(event.bytes)
        expected[names[key]].append((int(event.time_ns), max(used[key], 0)))
    shown = {parsed.tracks[uuid].name: [(int(t), int(v)) for t, v in points]
             for uuid, points in parsed.counters.items()}
    assert shown == dict(expected)


@pytest.mark.parametrize("name", _exports())
def test_every_api_call_is_on_its_thread_as_plain_sql(name, tmp_path):
    """Each runtime/driver call's (tid, name, start, end) read back from the "CUDA API" lanes
    of its thread's track equals plain SQL over the export's tables."""
    export = fixture_path("nsys", name)
    tables = _tables(export)
    api = [t for t in API_TABLES if t in tables]
    if not api:
        pytest.skip("no CUDA API calls")
    parsed = Parsed(write_perfetto_trace(load(export), tmp_path / "t.pftrace").read_bytes())
    shown = Counter()
    for uuid, rows in parsed.slices.items():
        if parsed.tracks[uuid].name.startswith("CUDA API"):
            tid = _thread_of(parsed, uuid).thread.tid
            shown.update((tid, n, s, e) for n, s, e, _, _ in rows)
    expected = Counter(r for t in api for r in _sql(export, f"""
        SELECT c.globalTid % 16777216, s.value, c.start, c.end FROM {t} c
        JOIN StringIds s ON s.id = c.nameId"""))
    assert shown == expected


def _thread_of(parsed: Parsed, uuid: int):
    track = parsed.tracks[uuid]
    while not track.HasField("thread"):
        track = parsed.tracks[track.parent_uuid]
    return track


@pytest.mark.parametrize("name", _exports())
def test_every_nested_nvtx_range_is_on_its_thread_as_plain_sql(name, tmp_path):
    """Each push/pop range's (tid, text, start, end) read back from its thread's "NVTX" lanes
    equals plain SQL over NVTX_EVENTS (text inline or through StringIds)."""
    export = fixture_path("nsys", name)
    if "NVTX_EVENTS" not in _tables(export):
        pytest.skip("no NVTX ranges")
    parsed = Parsed(write_perfetto_trace(load(export), tmp_path / "t.pftrace").read_bytes())
    shown = Counter()
    for uuid, rows in parsed.slices.items():
        track = parsed.tracks[uuid]
        if track.name == "NVTX" or track.name.startswith("NVTX ") and track.name[5:].isdigit():
            tid = _thread_of(parsed, uuid).thread.tid
            shown.update((tid, n, s, e) for n, s, e, _, _ in rows)
    expected = Counter(_sql(export, """
        SELECT n.globalTid % 16777216, COALESCE(n.text, s.value, '(unnamed range)'),
               n.start, n.end
        FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
        WHERE n.eventType = 59 AND n.end IS NOT NULL AND n.end >= n.start"""))
    assert shown == expected


def test_an_empty_profile_gives_an_empty_trace(tmp_path):
    from gpuprof.model import Profile

    parsed = Parsed(write_perfetto_trace(Profile(tables={}), tmp_path / "t.pftrace").read_bytes())
    assert not parsed.slices and not parsed.counters


@pytest.mark.parametrize("lookup", ["dense", "sorted"])
def test_correlation_id_zero_links_nothing(lookup, tmp_path, monkeypatch):
    """CUPTI's correlation id 0 means none: a runtime call and copies that carry it must not be
    joined by an arrow, in either trace (the real export has 72 such copies; one of its calls
    is given id 0 here, in a copy of the file)."""
    import json
    import shutil

    from gpuprof.render.chrome_trace import to_chrome_trace

    export = tmp_path / "zero.sqlite"
    shutil.copy(fixture_path("nsys", "MosesChuka__EasyCUDA__nsys_easy.sqlite"), export)
    con = sqlite3.connect(export)
    with con:
        con.execute("""UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = 0
                       WHERE rowid = (SELECT MIN(rowid) FROM CUPTI_ACTIVITY_KIND_RUNTIME)""")
    con.close()
    zero_copies = Counter(_sql(export, """SELECT start, end FROM CUPTI_ACTIVITY_KIND_MEMCPY
                                          WHERE correlationId = 0"""))
    assert sum(zero_copies.values()) == 72
    if lookup == "sorted":  # the sparse ids' search instead of the direct table
        from gpuprof.render import perfetto_flows

        monkeypatch.setattr(perfetto_flows, "DENSE_TABLE_FACTOR", 0)
        monkeypatch.setattr(perfetto_flows, "DENSE_TABLE_ROWS", 0)
    run = load(export, details=True)
    parsed = Parsed(write_perfetto_trace(run, tmp_path / "t.pftrace").read_bytes())
    reached = Counter(w for chain in _chains(parsed) for w in chain[2])
    assert not set(reached) & set(zero_copies)
    assert Counter(_chains(parsed)) == Counter(_sql_chains(export))
    events = json.loads(json.dumps(to_chrome_trace(run)))["traceEvents"]
    finish = {(e["ts"]) for e in events if e.get("ph") == "f"}
    copy_starts = {(s - run.time_zero) / 1000 for s, _ in zero_copies}
    assert not finish & copy_starts


@pytest.mark.parametrize("name", _exports())
def test_many_tracks_path_writes_the_same_trace(name, tmp_path, monkeypatch):
    """Past a few threads or streams, each track's rows come from one sort instead of a
    comparison per track: forced for every run here, the file must be byte for byte the
    one the comparisons write."""
    from gpuprof.render import perfetto_trace

    run = load(fixture_path("nsys", name), details=True)
    compared = write_perfetto_trace(run, tmp_path / "a.pftrace").read_bytes()
    monkeypatch.setattr(perfetto_trace._RowsOf, "SORT_PAST", 0)
    assert write_perfetto_trace(run, tmp_path / "b.pftrace").read_bytes() == compared
