"""Drive one ONNX Runtime run: load, warm-up, timed pass, then a separate profiled pass.

The timed pass runs on a session without profiling, so ORT's per-node instrumentation never
touches the latencies; the per-node profile comes from a second session built with
``enable_profiling`` after the first is released. RSS is sampled throughout (``rss.py``).

Ctrl-C (KeyboardInterrupt) at any point after loading keeps what was captured: the result is
returned with ``meta.extra["partial"]`` set and the interrupted phase named; the caller decides
how to exit. The sampler thread is always joined.

``capture_onnxruntime`` returns the raw result (``OrtCapture``): the timed pass and RSS as a
``Profile``, and ORT's own profile JSON of the profiled pass with the host's brackets around
each of its runs. Reading that JSON into ``layer_timings`` on the run's clock is the
composer's (``pipeline/engine_run.py::run_onnxruntime``), so capture imports no ingest.
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
    raw_profile: Path | None = None
    raw_is_temporary: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class OrtCapture:
    """One ONNX Runtime run as captured: no per-node times yet (``raw_profile`` holds them)."""

    profile: Profile                       # iterations, memory_events, the run's facts
    raw_profile: Path | None               # ORT's profile JSON (None: no profiled run finished)
    profile_brackets: list[tuple[int, int]]  # perf_counter_ns around each profiled session.run
    raw_is_temporary: bool = False         # not the file the user asked to keep: remove it

    def discard_raw(self) -> None:
        """Remove ORT's profile file unless the user asked to keep it."""
        if self.raw_profile is not None and self.raw_is_temporary:
            self.raw_profile.unlink(missing_ok=True)


def capture_onnxruntime(config: OrtRunConfig, progress: Progress | None = None) -> OrtCapture:
    """Run ``config.model`` and return what was captured (see the module docstring)."""
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
    return OrtCapture(Profile(tables=_tables(captured, sampler), meta=meta), captured.raw_profile,
                      captured.profile_brackets, captured.raw_is_temporary)


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
                _keep_raw_profile(config, raw, captured)


def _keep_raw_profile(config: OrtRunConfig, raw: Path, captured: _Captured) -> None:
    """Move ORT's profile out of the session's temporary folder: to the file the user asked
    for, else to a temporary file the composer removes once it has read it."""
    if config.raw_profile_path is not None:
        config.raw_profile_path.parent.mkdir(parents=True, exist_ok=True)
        kept = config.raw_profile_path
        captured.extra["raw_profile_file"] = kept.name
    else:
        handle, name = tempfile.mkstemp(prefix="gpuprof-ort-", suffix=".json")
        os.close(handle)
        kept = Path(name)
        captured.raw_is_temporary = True
    os.replace(raw, kept)
    captured.raw_profile = kept


def _tables(captured: _Captured, sampler: RssSampler) -> dict:
    n = len(captured.ends)
    iterations = pd.DataFrame({
        "iteration": range(n), "start_ns": captured.starts[:n], "end_ns": captured.ends[:n]})
    iterations["latency_ns"] = iterations["end_ns"] - iterations["start_ns"]
    iterations["source"] = SOURCE
    return {"iterations": iterations, "memory_events": sampler.table()}


def _meta(config, resolved, providers, captured: _Captured) -> RunMeta:
    meta = RunMeta(tool="onnxruntime", tool_version=ort_session.ort_module().__version__)
    meta.sources = [facts.source_file(config.model)]
    meta.clocks = {"host": ClockDomain("perf_counter_ns", 0, "identity", 0)}
    meta.absent = facts.absent_tables(config, captured.raw_profile is not None)
    meta.extra = facts.run_facts(config, resolved, providers, captured) | captured.extra
    meta.extra.setdefault("partial", False)
    return meta

