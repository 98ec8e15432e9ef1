"""Drive one ONNX Runtime run: load, warm-up, timed pass, then a separate profiled pass.

The timed pass runs on a session without profiling, so ORT's per-node instrumentation never
touches the latencies; the per-node profile comes from a second session built with
``enable_profiling`` after the first is released. RSS is sampled throughout (``rss.py``).

Ctrl-C (KeyboardInterrupt) at any point after loading keeps what was captured: the result is
returned with ``meta.extra["partial"]`` set and the interrupted phase named; the caller decides
how to exit. The sampler thread is always joined.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...model.meta import ClockDomain, RunMeta
from ...model.profile import Profile
from .. import onnx_inputs, timed_count
from . import facts
from . import session as ort_session
from .rss import DEFAULT_INTERVAL_S, QUIET_INTERVAL_S, RssSampler

Progress = Callable[[str, int, "int | None"], None]  # phase, done, total (None: open-ended)
SOURCE = "onnxruntime"
TICK_NS = 50_000_000  # report progress at most every 50 ms: keeps the callback off the clock


@dataclass
class OrtRunConfig:
    model: Path
    iterations: int | None = None      # None: auto, see capture/timed_count.py
    min_iterations: int = timed_count.MIN_AUTO_ITERATIONS
    min_seconds: float = timed_count.DEFAULT_MIN_SECONDS
    max_iterations: int = timed_count.MAX_AUTO_ITERATIONS
    warmup: int = 5
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    layer_profile: bool = True
    profile_iterations: int = 5
    profile_warmup: int = 1
    rss_interval_s: float = DEFAULT_INTERVAL_S
    rss_timed_interval_s: float = QUIET_INTERVAL_S  # coarser while latency is measured
    raw_profile_path: Path | None = None  # keep ORT's own profile JSON here (else deleted)
    seed: int = 0


@dataclass
class _Captured:
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    profile_brackets: list[tuple[int, int]] = field(default_factory=list)
    layer_timings: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)
    clocks: dict = field(default_factory=dict)


def run_onnxruntime(config: OrtRunConfig, progress: Progress | None = None) -> Profile:
    """Run ``config.model`` and return its ``Profile`` (see the module docstring)."""
    progress = progress or (lambda phase, done, total: None)
    model = onnx_inputs.load_onnx(config.model)
    resolved = onnx_inputs.resolve_shapes(onnx_inputs.read_inputs(model), config.shapes)
    feeds = onnx_inputs.make_inputs(resolved, config.seed)
    del model
    captured = _Captured()
    providers = ort_session.choose_providers()
    with RssSampler(config.rss_interval_s) as sampler:
        try:
            _phases(config, feeds, providers, sampler, captured, progress)
        except KeyboardInterrupt:
            captured.extra |= {"partial": True, "interrupted_phase": sampler.phase}
    meta = _meta(config, resolved, providers, captured)
    return Profile(tables=_tables(captured, sampler, config), meta=meta)


def _phases(config, feeds, providers, sampler, captured, progress) -> None:
    sampler.set_phase("load")
    progress("load", 0, 1)
    session = ort_session.create_session(config.model, providers)
    progress("load", 1, 1)
    captured.extra["providers_used"] = session.get_providers()
    captured.extra["session_settings"] = ort_session.session_settings(session)
    sampler.set_phase("warmup")
    _fixed_loop(config, session, feeds, config.warmup, [], "warmup", progress)
    sampler.set_phase("timed", config.rss_timed_interval_s)
    timed_loop(config, session, feeds, captured.starts, captured.ends, progress)
    sampler.set_phase("release")
    del session
    gc.collect()
    if config.layer_profile:
        _profiled_pass(config, feeds, providers, sampler, captured, progress)
    sampler.set_phase("done")


def _fixed_loop(config, session, feeds, count, brackets, phase, progress) -> None:
    progress(phase, 0, count)
    for i in range(count):
        t0 = time.perf_counter_ns()
        _run(config, session, feeds)
        brackets.append((t0, time.perf_counter_ns()))
        progress(phase, i + 1, count)


def timed_loop(config: OrtRunConfig, session, feeds, starts: list[int], ends: list[int],
               progress: Progress) -> None:
    """The timed pass: appends each run's perf_counter_ns start/end (kept on Ctrl-C).

    Only two clock reads and two appends per iteration; progress is reported at most every
    ``TICK_NS`` so the callback stays off the measured path.
    """
    run = session.run
    total = config.iterations
    progress("timed", 0, total)
    begin = next_tick = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        try:
            run(None, feeds)
        except Exception as exc:  # ORT's pybind errors: shape problems surface here
            raise ort_session.run_error(config.model, exc) from exc
        t1 = time.perf_counter_ns()
        starts.append(t0)
        ends.append(t1)
        n = len(starts)
        if _timed_done(config, n, t1 - begin):
            break
        if t1 >= next_tick:
            progress("timed", n, total)
            next_tick = t1 + TICK_NS
    progress("timed", len(starts), len(starts))


def _timed_done(config: OrtRunConfig, n: int, elapsed_ns: int) -> bool:
    return timed_count.timed_done(n, elapsed_ns, config.iterations, config.min_seconds,
                                  config.min_iterations, config.max_iterations)


def _run(config, session, feeds):
    try:
        return session.run(None, feeds)
    except Exception as exc:
        raise ort_session.run_error(config.model, exc) from exc


def _profiled_pass(config, feeds, providers, sampler, captured, progress) -> None:
    sampler.set_phase("profile_load")
    progress("profile_load", 0, 1)
    with tempfile.TemporaryDirectory(prefix="gpuprof-ort-") as tmp:
        session = ort_session.create_session(config.model, providers, Path(tmp) / "ort")
        progress("profile_load", 1, 1)
        sampler.set_phase("profiled")
        count = config.profile_warmup + config.profile_iterations
        try:
            _fixed_loop(config, session, feeds, count, captured.profile_brackets, "profiled", progress)
        finally:
            # Also on Ctrl-C: whatever ORT recorded so far is still worth parsing.
            raw = Path(session.end_profiling())
            del session
            if len(captured.profile_brackets) > config.profile_warmup:
                _ingest_profile(config, raw, captured)


def _ingest_profile(config: OrtRunConfig, raw: Path, captured: _Captured) -> None:
    from ...ingest.onnxruntime_profile import parse_events, read_events

    events = read_events(raw)
    runs_offset = _clock_offset(events, captured.profile_brackets)
    parsed = parse_events(events, runs_offset.offset_ns, skip_runs=config.profile_warmup)
    captured.layer_timings = parsed.layer_timings
    captured.clocks["onnxruntime_profile"] = runs_offset
    captured.extra["profile_runs"] = parsed.runs.to_dict(orient="list")
    captured.extra["node_providers"] = parsed.providers
    if config.raw_profile_path is not None:
        config.raw_profile_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(raw, config.raw_profile_path)
        captured.extra["raw_profile_file"] = config.raw_profile_path.name


def _clock_offset(events: list[dict], brackets: list[tuple[int, int]]) -> ClockDomain:
    """Offset from ORT's profile clock (us since profiling start) to ``perf_counter_ns``.

    Each ``model_run`` lies inside the host's bracket around its ``session.run`` call, so the
    offset lies in ``[max(h0 - ts), min(h1 - ts - dur)]`` over all runs: we take the middle and
    half the width as the error bound (at least ORT's 1 us resolution).
    """
    runs = sorted((e["ts"] * 1000, e["dur"] * 1000) for e in events
                  if isinstance(e, dict) and e.get("name") == "model_run")
    pairs = list(zip(runs, brackets, strict=False))
    if not pairs:
        return ClockDomain("onnxruntime_profile", 0, "none", -1)
    lo = max(h0 - ts for (ts, _), (h0, _) in pairs)
    hi = min(h1 - ts - dur for (ts, dur), (_, h1) in pairs)
    return ClockDomain("onnxruntime_profile", (lo + hi) // 2, "run-bracket",
                       max(abs(hi - lo) // 2, 1000))


def _tables(captured: _Captured, sampler: RssSampler, config: OrtRunConfig) -> dict:
    n = len(captured.ends)
    iterations = pd.DataFrame({
        "iteration": range(n), "start_ns": captured.starts[:n], "end_ns": captured.ends[:n]})
    iterations["latency_ns"] = iterations["end_ns"] - iterations["start_ns"]
    iterations["source"] = SOURCE
    tables = {"iterations": iterations, "memory_events": sampler.table()}
    if captured.layer_timings is not None:
        tables["layer_timings"] = captured.layer_timings
    return tables


def _meta(config, resolved, providers, captured: _Captured) -> RunMeta:
    meta = RunMeta(tool="onnxruntime", tool_version=ort_session.ort_module().__version__)
    meta.sources = [facts.source_file(config.model)]
    meta.clocks = {"host": ClockDomain("perf_counter_ns", 0, "identity", 0)} | captured.clocks
    meta.absent = facts.absent_tables(config, captured.layer_timings is not None)
    meta.extra = facts.run_facts(config, resolved, providers, captured) | captured.extra
    meta.extra.setdefault("partial", False)
    return meta

