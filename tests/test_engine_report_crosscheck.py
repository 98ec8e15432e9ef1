"""``gpuprof engine`` report numbers recomputed from the saved run's raw rows with plain Python
(``statistics``, dicts), never with gpuprof's analysis helpers: throughput, the latency-variation
warning, the layer-type table, the memory section's times (from the run's time zero) and phases
(also with a second and a third memory source interleaved), and memory.png's phase bands."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from itertools import groupby

import pandas as pd
import pytest

from gpuprof.api import Run
from gpuprof.cli.main import main
from gpuprof.model import Profile, conform
from gpuprof.render import plots
from gpuprof.render.engine_report import CV_WARNING, build_engine_report
from tests.conftest import CLS_MODEL, spy_on

MIB = 1024 * 1024
THROUGHPUT = "throughput (inferences/s, one at a time)"


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """The small PP-OCR classifier through ``gpuprof engine`` on ONNX Runtime, with what
    memory.png drew recorded: its lines, then its phase bands."""
    if not CLS_MODEL.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not fetched (python tools/fetch_models.py)")
    out = tmp_path_factory.mktemp("engine")
    with spy_on(plots, "memory_lines") as drawn, spy_on(plots, "phase_spans") as bands:
        code = main(["engine", str(CLS_MODEL), "--shapes", "1x3x48x96", "-o", str(out),
                     "--iterations", "30", "--warmup", "2", "--profile-iterations", "3"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    sections = {s["key"]: s for s in report["sections"]}
    return Profile.load(out / "run.gpuprof"), sections, (drawn, bands), out


def _unit(columns, prefix: str) -> float:
    """ns per unit of the JSON key that starts with ``prefix`` ("total_" -> total_us)."""
    name = next(c for c in columns if c.startswith(prefix))
    return {"_us": 1e3, "_ms": 1e6}[name[name.rindex("_"):]]


def _value(row: dict, prefix: str):
    return next(v for k, v in row.items() if k.startswith(prefix))


# -- latency ------------------------------------------------------------------------------

def test_throughput_is_iterations_over_their_summed_latency(engine_run):
    profile, sections, _, _ = engine_run
    latencies = [int(v) for v in profile.iterations["latency_ns"]]
    rows = {r["statistic"]: r for r in sections["latency"]["rows"]}
    # one inference at a time: n inferences in the sum of their latencies
    expected = len(latencies) / (statistics.fsum(latencies) / 1e9)
    assert _value(rows[THROUGHPUT], "value") == pytest.approx(expected, rel=1e-9)


def _cv_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if "coefficient of variation" in n]


def _expected_cv_notes(latencies: list[int]) -> list[str]:
    """The warning's rule from the raw latencies: sample standard deviation over the mean."""
    cv = statistics.stdev(latencies) / statistics.fmean(latencies)
    return [f"coefficient of variation {cv:.1%} >"] if cv > CV_WARNING else []


def test_cv_warning_follows_the_raw_latencies(engine_run):
    profile, sections, _, _ = engine_run
    latencies = [int(v) for v in profile.iterations["latency_ns"]]
    got = _cv_notes(sections["latency"]["notes"])
    expected = _expected_cv_notes(latencies)
    assert len(got) == len(expected)
    assert all(e in g for e, g in zip(expected, got, strict=True))


@pytest.mark.parametrize("change", ["steady", "one_slow"])
def test_cv_warning_on_either_side_of_the_threshold(engine_run, change):
    """The same real run with its latencies made steady (no warning) or with one iteration
    three times slower (a warning with the right figure)."""
    profile, _, _, _ = engine_run
    iterations = profile.iterations.copy()
    latencies = [int(v) for v in iterations["latency_ns"]]
    if change == "steady":
        latencies = [int(statistics.median(latencies))] * len(latencies)
    else:
        latencies[len(latencies) // 2] *= 3
    iterations["latency_ns"] = latencies
    iterations["end_ns"] = iterations["start_ns"] + iterations["latency_ns"]
    changed = Profile(tables={**profile.tables, "iterations": iterations}, meta=profile.meta)
    notes = build_engine_report(Run.of(changed)).section("latency").notes
    expected = _expected_cv_notes(latencies)
    assert len(expected) == (change == "one_slow")
    got = _cv_notes(notes)
    assert len(got) == len(expected) and all(e in g for e, g in zip(expected, got, strict=True))


# -- layer types --------------------------------------------------------------------------

def test_layer_type_mean_and_share_match_plain_sums(engine_run):
    profile, sections, _, _ = engine_run
    totals, calls, layers = defaultdict(int), defaultdict(int), defaultdict(set)
    for row in profile.layer_timings.itertuples():
        kind = str(row.layer_type)
        totals[kind] += int(row.duration_ns)
        calls[kind] += 1
        layers[kind].add(str(row.layer))
    grand = sum(totals.values())
    section = sections["layer_types"]
    rows = section["rows"]
    assert rows and {r["type"] for r in rows} == set(totals)
    unit = _unit(rows[0], "total_")
    assert _unit(rows[0], "mean_per_call_") == unit
    for row in rows:
        kind = row["type"]
        assert (row["layers"], row["calls"]) == (len(layers[kind]), calls[kind])
        assert _value(row, "total_") * unit == pytest.approx(totals[kind], rel=1e-9)
        assert _value(row, "mean_per_call_") * unit == pytest.approx(
            totals[kind] / calls[kind], rel=1e-9)
        assert row["time_percent"] == pytest.approx(100.0 * totals[kind] / grand, rel=1e-9)
    assert [r["type"] for r in rows] == sorted(totals, key=lambda k: (-totals[k], k))


# -- memory -------------------------------------------------------------------------------

def _run_start(profile: Profile) -> int:
    """The run's first event: earliest recorded (non-negative) time of any timed table."""
    times = [int(t) for t in profile.iterations["start_ns"]]
    times += [int(t) for t in profile.layer_timings["start_ns"] if t >= 0]
    times += [int(t) for t in profile.memory_events["time_ns"]]
    return min(times)


def _phase_blocks(events: pd.DataFrame) -> list[tuple]:
    """(source, device, phase, start, end, use before, peak use) per run of consecutive events
    of one phase, per source and device, with the use as a running sum of the byte changes.
    Events without a phase count in the use but belong to no block and split none."""
    rows = sorted(((str(e.source), int(e.device_id), int(e.time_ns),
                    None if pd.isna(e.phase) else str(e.phase), int(e.bytes))
                   for e in events.itertuples()), key=lambda r: (r[0], r[1], r[2]))
    blocks: list[list] = []
    for (source, device), series in groupby(rows, key=lambda r: (r[0], r[1])):
        used, current = 0, None
        for _, _, time_ns, phase, change in series:
            before, used = used, used + change
            if phase is None:
                continue
            if current is not None and current[2] == phase:
                current[4], current[6] = time_ns, max(current[6], used)
            else:
                current = [source, device, phase, time_ns, time_ns, before, used]
                blocks.append(current)
    return [tuple(b) for b in blocks]


def test_memory_phase_times_are_from_the_run_start(engine_run):
    profile, sections, _, _ = engine_run
    zero = _run_start(profile)
    expected = [(phase, (start - zero) / 1e6, (end - start) / 1e6, before / MIB, peak / MIB)
                for _, _, phase, start, end, before, peak in _phase_blocks(profile.memory_events)]
    rows = sections["memory"]["rows"]
    got = [(r["phase"], r["start_ms"], r["duration_ms"], r["at_start_mib"], r["peak_mib"])
           for r in rows]
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == theirs[0] and mine[1:] == pytest.approx(theirs[1:], rel=1e-9)


def test_memory_peak_reads_the_same_in_report_and_png(engine_run):
    profile, sections, (drawn, _), out = engine_run
    events = sorted((int(e.time_ns), i, int(e.bytes))
                    for i, e in enumerate(profile.memory_events.itertuples()))
    assert {str(s) for s in profile.memory_events["source"]} == {"process_rss"}
    used, peak, peak_at = 0, None, None
    for time_ns, _, change in events:
        used += change
        if peak is None or used > peak:  # the first time the peak is reached
            peak, peak_at = used, time_ns
    peak_ms = (peak_at - _run_start(profile)) / 1e6
    note = next(n for n in sections["memory"]["notes"] if n.startswith("Peak process RSS"))
    assert f"{peak / MIB:,.1f} MiB" in note and f" at {peak_ms:,.3f} ms" in note
    assert (out / "memory.png").exists() and len(drawn) == 1
    [line] = drawn[0]
    assert line.peak_ms == pytest.approx(peak_ms) and line.peak_mib == pytest.approx(peak / MIB)


def test_png_phase_bands_are_the_reports_phase_table(engine_run):
    """memory.png's bands: the memory section's phases, each from its start to the next one's
    (the last to its end), in ms from the run's first event."""
    _, sections, (_, bands), _ = engine_run
    rows = sections["memory"]["rows"]
    assert len(bands) == 1 and len(rows) > 1
    starts = [r["start_ms"] for r in rows]
    ends = starts[1:] + [rows[-1]["start_ms"] + rows[-1]["duration_ms"]]
    [drawn] = bands
    assert [b[0] for b in drawn] == [r["phase"] for r in rows]
    assert [b[1] for b in drawn] == pytest.approx(starts, rel=1e-9)
    assert [b[2] for b in drawn] == pytest.approx(ends, rel=1e-9)


def test_memory_phases_with_interleaved_sources(engine_run):
    """The real RSS rows with a TensorRT allocator trace whose events fall between them and nsys
    CUDA memory without phases: each source's phases stay whole, none is called "nan"."""
    profile, _, _, _ = engine_run
    rss = profile.memory_events
    times = sorted(int(t) for t in rss["time_ns"])
    between = [(a + b) // 2 for a, b in zip(times, times[1:], strict=False) if b - a > 1][:12]
    assert len(between) == 12
    allocator = pd.DataFrame({
        "time_ns": between, "device_id": 0, "source": "trt_allocator", "kind": "alloc",
        "bytes": [MIB * (i % 3 + 1) * (-1 if i % 4 == 3 else 1) for i in range(12)],
        "phase": ["deserialize"] * 4 + ["context_creation"] * 4 + ["inference"] * 4})
    nsys = pd.DataFrame({"time_ns": between[1::3], "device_id": 0, "source": "nsys",
                         "kind": "alloc", "bytes": 7 * MIB, "phase": None})
    events = conform("memory_events", pd.concat([rss, allocator, nsys], ignore_index=True))
    changed = Profile(tables={**profile.tables, "memory_events": events}, meta=profile.meta)
    section = build_engine_report(Run.of(changed)).section("memory")
    zero = _run_start(profile)
    expected = [(phase, (start - zero) / 1e6, (end - start) / 1e6, before / MIB, peak / MIB)
                for _, _, phase, start, end, before, peak in _phase_blocks(events)]
    got = list(zip(section.table["phase"], section.table["start (ms)"],
                   section.table["duration (ms)"], section.table["at start (MiB)"],
                   section.table["peak (MiB)"], strict=True))
    assert len(got) == len(expected) == len(_phase_blocks(rss)) + 3
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == theirs[0] and mine[1:] == pytest.approx(theirs[1:], rel=1e-9)
    assert "nan" not in set(section.table["phase"].astype(str))
    nsys_note = next(n for n in section.notes if n.startswith("Peak CUDA memory (nsys), GPU 0"))
    assert f"{7 * 4:,.1f} MiB" in nsys_note and "no phase" in nsys_note
