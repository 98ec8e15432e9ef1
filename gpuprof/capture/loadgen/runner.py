"""A whole load test: check the model, probe it once, then measure every level in turn.

``measure_sweep`` is bounded in time (``max_duration_s``) and in requests (``max_requests``), stops
its worker threads whatever happens, and keeps the levels it finished when the server dies, the
caps are reached or the user presses Ctrl-C: the result is then marked partial with the reason.
What measuring needs of analysis (window metrics, stability) and ingest (is a trace part whole)
comes from the ``SweepAnalysis`` it is given; ``pipeline/sweep.py::run_sweep`` composes it and
reads the trace parts the run collected.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import BadInputError, GpuprofError
from .analysis import SweepAnalysis
from .drivers import Budget, LoadDriver
from .inputs import ModelInfo, data_shapes, make_payloads, request_shapes
from .options import LoadSpec
from .server_api import ServerAPI, ServerGone
from .transport import TIMED_OUT, make_sender
from .windows import LevelMeter, LevelResult, RecordCursor, TimeCapReached


@dataclass
class SweepResult:
    spec: LoadSpec
    model: ModelInfo
    shapes: dict[str, tuple[int, ...]]
    prefix: str                                   # request ids are prefix + number
    levels: list[LevelResult] = field(default_factory=list)
    partial: bool = False
    reason: str | None = None
    server_lost: bool = False   # the run stopped because the server stopped answering
    started_ns: int = 0
    finished_ns: int = 0
    trace_files: list[Path] = field(default_factory=list)  # --trace: this run's trace parts
    trace_parsed: dict = field(default_factory=dict)  # ... records parsed while waiting for them
    trace_error: str | None = None               # ... or why there is no trace
    # filled by the composer (pipeline/sweep.py) when it reads the parts, at once:
    trace_requests: pd.DataFrame | None = None   # ingest's requests table of the parts
    trace_issues: list[str] = field(default_factory=list)  # what reading them found

    def level_rows(self) -> list[dict]:
        """One dict per finished level: its merged windows' metrics (``analyze.perf.level_table``
        makes the table)."""
        return [{"level": lv.level, "stable": lv.stable, "complete": lv.complete,
                 "windows": len(lv.windows), **lv.metrics}
                for lv in self.levels if lv.metrics]

    def windows_table(self) -> pd.DataFrame:
        rows = [{"level": w.level, "trial": w.trial, "counted": any(w is c for c in lv.counted),
                 "start_ns": w.start_ns, "run_start_ns": self.started_ns, **w.metrics}
                for lv in self.levels for w in lv.windows]
        return pd.DataFrame(rows)

    def requests_table(self) -> pd.DataFrame:
        """Every measured request (all windows), with its level and window."""
        frames = [w.records.assign(level=w.level, trial=w.trial)
                  for lv in self.levels for w in lv.windows]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def measure_sweep(spec: LoadSpec, analysis: SweepAnalysis, progress=None) -> SweepResult:
    """Run the load test described by ``spec``; ``progress(kind, data)`` gets live events."""
    spec.validate()
    api = ServerAPI(spec.url, spec.protocol, timeout_s=min(10.0, spec.request_timeout_s))
    try:
        return _run(spec, api, analysis, progress)
    finally:
        api.close()


def _run(spec: LoadSpec, api: ServerAPI, analysis: SweepAnalysis, progress) -> SweepResult:
    info = api.model_info(spec.model, spec.model_version)
    shapes = request_shapes(info, data_shapes(spec.input_data) | spec.shapes, spec.batch_size)
    payloads = make_payloads(info, shapes, spec.input_data, spec.seed)
    result = SweepResult(spec, info, shapes, f"gp{os.getpid()}-{secrets.token_hex(3)}-")
    factory = functools.partial(make_sender, spec.protocol, spec.url, spec.model,
                                spec.model_version, payloads, [t.name for t in info.outputs],
                                spec.request_timeout_s)
    tracer = _tracer(spec, api, analysis)  # before the probe: every request of the run is traced
    result.started_ns = time.perf_counter_ns()
    try:
        _probe(factory, api, result.prefix, spec.model, spec.request_timeout_s)
        _measure_levels(spec, api, analysis, factory, len(payloads), result, progress, tracer)
    finally:
        result.finished_ns = time.perf_counter_ns()
        if tracer:
            _finish_trace(tracer, result)
    return result


def _measure_levels(spec, api, analysis, factory, n_payloads, result: SweepResult, progress,
                    tracer=None) -> None:
    records: list = []
    budget = Budget(spec.max_requests)
    driver = LoadDriver(factory, n_payloads, result.prefix, budget, records)
    meter = LevelMeter(spec, api, analysis, RecordCursor(records), result.prefix,
                       result.started_ns + int(spec.max_duration_s * 1e9), budget, progress,
                       tracer)
    try:
        for index, level in enumerate(spec.levels):
            if progress:
                progress("level", {"level": level, "mode": spec.mode, "index": index,
                                   "total": len(spec.levels)})
            _start_level(driver, spec, level, index)
            result.levels.append(LevelResult(level))
            meter.measure(result.levels[-1])
            driver.stop()
            if progress:
                progress("level_done", {"level": level, "result": result.levels[-1]})
    except TimeCapReached:
        _mark_partial(result, "the request cap was reached" if budget.exhausted else
                      f"the time cap ({spec.max_duration_s:g} s) was reached")
    except ServerGone as exc:
        _mark_partial(result, exc.message)
        result.server_lost = True
    except KeyboardInterrupt:
        _mark_partial(result, "interrupted by the user")
    finally:
        driver.close()


def _start_level(driver: LoadDriver, spec: LoadSpec, level: float, index: int) -> None:
    if spec.mode == "concurrency":
        driver.start_concurrency(int(level))
    else:
        driver.start_rate(level, spec.distribution, spec.max_threads, spec.seed + index)


def _mark_partial(result: SweepResult, reason: str) -> None:
    result.partial, result.reason = True, reason


def _probe(factory, api: ServerAPI, prefix: str, model: str, timeout_s: float) -> None:
    """One request before the load: wrong shapes or dtypes fail here with the server's words."""
    sender = factory()
    try:
        error = sender.send(f"{prefix}probe", 0)[-1]
    finally:
        sender.close()
    if error is None:
        return
    if not api.is_live():
        raise ServerGone(f"Triton at {api.url} did not answer an inference request ({error})",
                         "Check that the server is running and the address and protocol")
    if error.startswith(TIMED_OUT):  # live but silent: a stuck or slow model, not bad input
        raise ServerGone(f"Triton at {api.url} is live but '{model}' did not answer a request "
                         f"within {timeout_s:g} s ({error})",
                         "Check the server's log (its model may be stuck); a model this slow "
                         "needs a longer --request-timeout")
    raise BadInputError(f"the server rejected a request to '{model}': {error}",
                        "Check --shape, -b and --input-data against the model's inputs")


def _tracer(spec: LoadSpec, api: ServerAPI, analysis: SweepAnalysis):
    if not spec.trace:
        return None
    from .tracing import TraceSession

    return TraceSession(api, spec.model, analysis.check_trace_part, spec.trace_rate,
                        spec.trace_level).start()


def _finish_trace(tracer, result: SweepResult) -> None:
    """Collect the run's trace parts with the records parsed while waiting for them (the
    composer reads them at once, see ``pipeline/sweep.py``); a server that is gone during the
    flush becomes ``trace_error``."""
    try:
        result.trace_files = tracer.finish()
    except GpuprofError as exc:
        result.trace_error = exc.message
        return
    result.trace_parsed = tracer.take_parsed()
