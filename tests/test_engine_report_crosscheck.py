"""``gpuprof engine`` report numbers recomputed from the saved run's raw rows with plain Python
(``statistics``, dicts), never with gpuprof's analysis helpers: throughput, the latency-variation
warning, the layer-type table, and the memory section's times (from the run's time zero)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from itertools import groupby

import pandas as pd
import pytest

from gpuprof.cli.main import main
from gpuprof.model import Profile
from gpuprof.render import plots
from gpuprof.render.engine_report import CV_WARNING, build_engine_report
from tests.conftest import REPO

MIB = 1024 * 1024
THROUGHPUT = "throughput (inferences/s, one at a time)"


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """The small PP-OCR classifier through ``gpuprof engine`` on ONNX Runtime, with what
    memory.png drew recorded."""
    model = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
    if not model.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not fetched (python tools/fetch_models.py)")
    out = tmp_path_factory.mktemp("engine")
    drawn: list = []
    original = plots.memory_lines

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "memory_lines", spy)
        code = main(["engine", str(model), "--shapes", "1x3x48x96", "-o", str(out),
                     "--iterations", "30", "--warmup", "2", "--profile-iterations", "3"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    sections = {s["key"]: s for s in report["sections"]}
    return Profile.load(out / "run.gpuprof"), sections, drawn, out


def _unit(columns, prefix: str) -> float:
    """ns per displayed unit of the column whose name starts with ``prefix`` ("total (us)")."""
    name = next(c for c in columns if c.startswith(prefix))
    return {"(us)": 1e3, "(µs)": 1e3, "(ms)": 1e6}[name[name.rindex("("):]]


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
    notes = build_engine_report(changed).section("latency").notes
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
    unit = _unit(rows[0], "total (")
    assert _unit(rows[0], "mean per call (") == unit
    for row in rows:
        kind = row["type"]
        assert (row["layers"], row["calls"]) == (len(layers[kind]), calls[kind])
        assert _value(row, "total (") * unit == pytest.approx(totals[kind], rel=1e-9)
        assert _value(row, "mean per call (") * unit == pytest.approx(
            totals[kind] / calls[kind], rel=1e-9)
        assert row["% time"] == pytest.approx(100.0 * totals[kind] / grand, rel=1e-9)
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
    of one phase, per source and device, with the use as a running sum of the byte changes."""
    rows = sorted(((str(e.source), int(e.device_id), int(e.time_ns), str(e.phase), int(e.bytes))
                   for e in events.itertuples()), key=lambda r: (r[0], r[1], r[2]))
    blocks = []
    for (source, device), series in groupby(rows, key=lambda r: (r[0], r[1])):
        used = 0
        for phase, block in groupby(series, key=lambda r: r[3]):
            block = list(block)
            before, peak = used, None
            for *_, change in block:
                used += change
                peak = used if peak is None else max(peak, used)
            blocks.append((source, device, phase, block[0][2], block[-1][2], before, peak))
    return blocks


def test_memory_phase_times_are_from_the_run_start(engine_run):
    profile, sections, _, _ = engine_run
    zero = _run_start(profile)
    expected = [(phase, (start - zero) / 1e6, (end - start) / 1e6, before / MIB, peak / MIB)
                for _, _, phase, start, end, before, peak in _phase_blocks(profile.memory_events)]
    rows = sections["memory"]["rows"]
    got = [(r["phase"], r["start (ms)"], r["duration (ms)"], r["at start (MiB)"], r["peak (MiB)"])
           for r in rows]
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[0] == theirs[0] and mine[1:] == pytest.approx(theirs[1:], rel=1e-9)


def test_memory_peak_reads_the_same_in_report_and_png(engine_run):
    profile, sections, drawn, out = engine_run
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
