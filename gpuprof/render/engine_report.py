"""The ``gpuprof engine`` report: facts, latency, iterations, layers, layer types, memory.

Analysis functions return raw ns/bytes; this module picks display units (ms or µs for time,
MiB for memory) and words. ``cli/engine_outputs.py::write_engine_outputs`` writes every file
of an engine run into one directory with the writers at the end of this module; plots and the
trace come from ``plots``/``chrome_trace`` when those are available.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analyze import latency, layer_times, stats
from ..model import Profile
from ..units import MIB, MICROSECONDS
from .report import Report, Section

TOP_LAYERS = 20
TERMINAL_ITERATIONS = 10
CV_WARNING = 0.025  # trtexec warns above a 2.5% coefficient of variation
BACKEND_NAMES = {"onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}
FILES = {
    "report.md": "this report (Markdown)",
    "report.json": "this report (JSON, every row)",
    "report.html": "this report as one web page: sortable tables, plots, timeline",
    "layers.csv": "per-layer table, every layer",
    "iterations.csv": "per-iteration latency, every timed iteration",
    "memory.png": "process memory (RSS) over time",
    "trace.json": "Chrome/Perfetto trace (ui.perfetto.dev)",
    "onnxruntime_profile.json": "ONNX Runtime's own per-node trace (Chrome format)",
    "run.gpuprof": "the captured run, re-analysable later",
}
# The TensorRT runner's own output folder (``capture/trt/results``), beside the report's files.
RUNNER_FOLDER = ("the TensorRT runner's own output: iterations.csv, layer_timings.csv, "
                 "memory_events.csv, run.json")
RUNNER_NSYS_FILES = "; nsys report {report} and its SQLite export {export}"


def build_engine_report(profile, top: int = TOP_LAYERS, backend_note: str | None = None,
                        files: dict[str, str] | None = None) -> Report:
    """The report of an engine run; ``profile`` is an ``api.Run`` (its analyses cached once:
    ``gpuprof.load`` and ``Run.of`` make one)."""
    extra = profile.meta.extra
    title = f"gpuprof engine: {extra.get('model', '?')}"
    if extra.get("partial"):
        title += f" (PARTIAL: interrupted during {extra.get('interrupted_phase', '?')})"
    report = Report(title=title, facts=_facts(profile, backend_note), kind="engine")
    unit = _time_unit(profile.iterations["latency_ns"])
    report.add(_latency_section(profile.iterations, unit))
    report.add(_iterations_section(profile.iterations, unit))
    layers = layer_times.layer_table(profile.layer_timings)
    report.add(_layers_section(profile, layers, top))
    report.add(_layer_types_section(profile.layer_timings))
    from .reconcile_section import reconcile_section

    reconciled = reconcile_section(profile)
    if reconciled is not None:
        report.add(reconciled)
    report.add(_memory_section(profile.memory_events, extra, profile.time_zero))
    if files:
        report.add(Section("files", "Files", pd.DataFrame(
            {"file": list(files), "content": list(files.values())})))
    return report


# -- facts --------------------------------------------------------------------------------

def _facts(profile: Profile, backend_note: str | None) -> dict[str, str]:
    """The run's facts, each from what the backend that ran recorded (``meta.extra``)."""
    meta, extra = profile.meta, profile.meta.extra
    tensorrt = _is_tensorrt(profile)
    facts = {"Backend": _backend(profile) + (f" — {backend_note}" if backend_note else "")}
    if extra.get("partial"):
        facts["Status"] = (f"PARTIAL: interrupted (Ctrl-C) during the {extra.get('interrupted_phase')} "
                           "phase; the tables hold what was captured before it")
    source = next((s for s in meta.sources if s.kind == "onnx"), None)
    if source:
        digest = f", sha256 {source.sha256[:12]}" if source.sha256 else ""
        facts["Model"] = f"{source.name} ({source.size_bytes / 1e6:.1f} MB{digest})"
    facts["Inputs"] = extra.get("input_shapes", "?")
    if any(i.get("guessed_axes") for i in extra.get("inputs", [])):
        facts["Inputs"] += " — guessed dims follow gpuprof's default rule; set them with --shapes"
    if tensorrt and meta.gpus:
        facts["GPU"] = _gpu_fact(profile)
    if not tensorrt or extra.get("cpu_model"):
        facts["CPU"] = f"{extra.get('cpu_model', '?')}, {extra.get('cpu_cores_logical', '?')} logical cores"
    if extra.get("session_settings"):
        facts["Session"] = extra["session_settings"]
    if any(p != "CPUExecutionProvider" for p in extra.get("providers_used", [])):
        facts["Session"] = (facts.get("Session", "") + "; inputs are numpy arrays, so each timed "
                            "run includes the host-to-device copies").lstrip("; ")
    if tensorrt and extra.get("engine"):
        facts["Engine"] = _engine_fact(extra)
    settings = extra.get("settings") or {}  # a TensorRT run saved before these keys existed
    count = extra.get("iterations", len(profile.iterations) if tensorrt else 0)
    facts["Timed pass"] = (f"{count} iterations (requested: "
                           f"{extra.get('iterations_requested')}) after "
                           f"{extra.get('warmup', settings.get('warmup'))} warm-up; "
                           f"{extra.get('timer', '')}")
    facts["Layer profile"] = _trt_layer_profile(profile) if tensorrt else (
        f"{extra.get('profile_iterations')} iterations (+{extra.get('profile_warmup')} warm-up) in a "
        "separate session with ORT profiling on, so its overhead is not in the timed pass"
        if extra.get("profile_iterations") else meta.absent.get("layer_timings", "none"))
    if tensorrt:
        facts["nsys"] = _nsys_fact(profile)
    return facts


def _is_tensorrt(profile: Profile) -> bool:
    return profile.meta.tool == "tensorrt"


def _backend(profile: Profile) -> str:
    meta, extra = profile.meta, profile.meta.extra
    backend = f"{BACKEND_NAMES.get(meta.tool, meta.tool)} {meta.tool_version or ''}".strip()
    if _is_tensorrt(profile):
        module = (extra.get("tensorrt") or {}).get("module")
        return backend + (f" (Python module {module})" if module else "")
    providers = ", ".join(extra.get("providers_used") or extra.get("providers_requested") or [])
    return backend + (f" ({providers})" if providers else "")


def _gpu_fact(profile: Profile) -> str:
    """Each GPU with its SM clock around the timed pass (NVML), and the CUDA versions."""
    extra = profile.meta.extra
    before = {g.get("device_id"): g for g in extra.get("gpus_before_timed_pass") or []}
    after = {g.get("device_id"): g for g in extra.get("gpus_after_timed_pass") or []}
    parts = []
    for gpu in profile.meta.gpus:
        text = gpu.name + (f" (compute {gpu.compute_capability})" if gpu.compute_capability else "")
        if gpu.memory_bytes:
            text += f", {gpu.memory_bytes / (1 << 30):.0f} GiB"
        clocks = [f"{g[gpu.device_id]['sm_clock_mhz']} MHz {when}"
                  for when, g in (("before", before), ("after", after))
                  if "sm_clock_mhz" in g.get(gpu.device_id, {})]
        if clocks:
            peak = f" (max {gpu.clock_khz // 1000} MHz)" if gpu.clock_khz else ""
            text += f"; SM clock {' / '.join(clocks)} the timed pass{peak}"
        parts.append(text)
    driver = next((g.get("driver_version") for g in extra.get("gpus_after_timed_pass") or []
                   if g.get("driver_version")), None)
    cuda = extra.get("cuda") or {}
    versions = [f"driver {driver}" if driver else ""] + [
        f"{label} {_cuda_version(cuda[key])}" for key, label in
        (("cuda_runtime", "CUDA runtime"), ("cuda_driver", "CUDA driver API")) if cuda.get(key)]
    versions = [v for v in versions if v]
    return "; ".join(parts) + (f" — {', '.join(versions)}" if versions else "")


def _cuda_version(value: int) -> str:
    return f"{int(value) // 1000}.{int(value) % 1000 // 10}"


def _engine_fact(extra: dict) -> str:
    engine = extra["engine"]
    built = ("from gpuprof's plan cache" if engine.get("cache_hit")
             else f"built in {_num(engine.get('build_seconds'))} s")
    precisions = engine.get("precisions")
    text = f"{engine.get('plan')} ({built})"
    if precisions is not None:
        text += f"; reduced-precision flags: {', '.join(precisions) or 'none'}"
    kind = engine.get("layer_info_kind")
    if kind:
        text += f"; layer types from {LAYER_INFO_KINDS.get(kind, kind)}"
    return text


LAYER_INFO_KINDS = {"engine_inspector": "TensorRT's engine inspector",
                    "network_pre_optimisation": "the network before TensorRT's optimisation "
                                                "(fused layers have no type)"}


def _trt_layer_profile(profile: Profile) -> str:
    """How TensorRT's per-layer times were taken, as the runner recorded it."""
    extra = profile.meta.extra
    settings = extra.get("settings") or {}
    count = extra.get("profile_iterations",
                      settings.get("profile_iterations") if settings.get("layer_profile") else 0)
    if not count or profile.layer_timings.empty:
        return profile.meta.absent.get("layer_timings", "none")
    how = extra.get("layer_profiler") or {}
    text = f"{count} iterations in {how.get('pass', 'a separate pass')}"
    if how.get("warmup") == 0:
        text += " (no warm-up of its own)"
    text += f", with TensorRT's {how.get('api', 'IProfiler')} attached"
    details = []
    if "enqueue_emits_profile" in how:
        details.append(f"context.enqueue_emits_profile = {how['enqueue_emits_profile']}")
    if how.get("report"):
        details.append(how["report"])
    if details:
        text += ": " + " and ".join(details)
    return text + ", so the profiler's overhead is not in the timed pass"


def _nsys_fact(profile: Profile) -> str:
    """Whether nsys recorded the run, what it covered and how it was put on the run's clock."""
    meta, extra = profile.meta, profile.meta.extra
    nsys = extra.get("nsys") or {}
    kernels = profile.num_rows("kernels")
    if not nsys.get("captured", kernels > 0):
        reason = nsys.get("reason") or meta.absent.get("kernels", "not recorded")
        return (f"not captured ({reason}): no kernels, CUDA API calls or NVTX ranges, so no "
                "kernel-level check of the layer times")
    version = f" {extra['nsys_version']}" if extra.get("nsys_version") else ""
    text = f"nsys{version} profile --capture-range={nsys.get('capture_range', 'cudaProfilerApi')}"
    if extra.get("capture_range"):
        text += f" ({extra['capture_range']}: warm-up and the layer pass are outside it)"
    text += f"; {kernels:,} kernels, {profile.num_rows('api_calls'):,} CUDA API calls"
    clock = meta.clocks.get("nsys")
    if clock is not None:
        text += (f"; on the run's clock by {clock.method} (± {clock.error_ns / 1e3:,.1f} {MICROSECONDS})"
                 if clock.error_ns >= 0 else f"; not on the run's clock ({clock.method})")
    return text


# -- latency ------------------------------------------------------------------------------

def _time_unit(values: pd.Series) -> tuple[str, float]:
    median = float(np.median(values)) if len(values) else 0.0
    return (MICROSECONDS, 1e3) if 0 < median < 1e6 else ("ms", 1e6)


def _latency_section(iterations: pd.DataFrame, unit: tuple[str, float]) -> Section:
    """Latency statistics; the note names the clock the backend timed with (the rows' source)."""
    name, div = unit
    summary = latency.latency_summary(iterations)
    count = int(summary["count"])
    keys = ["min", "max", "mean", "std"] + [stats.percentile_label(q) for q in stats.DEFAULT_PERCENTILES]
    rows = [
        (k, summary[k] / div, "unreliable: fewer than "
         f"{stats.TAIL_SAMPLES_FOR_RELIABLE} samples beyond it" if k in summary["unreliable"] else "")
        for k in keys]
    rows.append(("throughput (inferences/s, one at a time)", summary["throughput_per_s"], ""))
    if _cuda_events(iterations):
        # CUDA events leave out the host's enqueue and synchronisation: state what the host saw
        rows.append(("throughput, host clock (inferences/s)", summary["host_throughput_per_s"],
                     "includes enqueue and synchronisation on the host"))
    table = pd.DataFrame(rows, columns=["statistic", f"value ({name})", "note"])
    notes = [f"{count} timed iterations ({_clock_phrase(iterations)}). Percentiles: "
             f"numpy '{summary['method']}' interpolation between closest ranks; a percentile "
             f"needs {stats.TAIL_SAMPLES_FOR_RELIABLE} samples beyond it to be reliable "
             f"(p99 {stats.min_samples_for(99):,}, p99.9 {stats.min_samples_for(99.9):,} samples)."]
    if _cuda_events(iterations):
        notes.append(_stage_note(iterations, unit))
    if summary["cv"] == summary["cv"] and summary["cv"] > CV_WARNING:
        notes.append(f"Latency varies: coefficient of variation {summary['cv']:.1%} > "
                     f"{CV_WARNING:.1%} (trtexec's threshold). The machine may be busy; rerun "
                     "with more --iterations or on an idle machine.")
    return Section("latency", f"Latency (timed pass, {count} samples)", table, notes)


def _cuda_events(iterations: pd.DataFrame) -> bool:
    return len(iterations) > 0 and bool((iterations["source"].astype(str) == "cuda_events").all())


def _clock_phrase(iterations: pd.DataFrame) -> str:
    if _cuda_events(iterations):
        return ("CUDA events on the inference stream, from before the input copies to after the "
                "output copies")
    return "host wall clock around each run"


def _stage_note(iterations: pd.DataFrame, unit: tuple[str, float]) -> str:
    name, div = unit
    medians = latency.stage_medians(iterations)
    stages = [f"{label} {medians[key] / div:,.3f} {name}" for key, label in
              (("h2d_ns", "H2D copies"), ("compute_ns", "inference"), ("d2h_ns", "D2H copies"))
              if key in medians]
    return (f"Median per iteration (CUDA events): {', '.join(stages)}. The host clock "
            f"(time.monotonic_ns) around each iteration, which adds enqueue and synchronisation, "
            f"has a median of {medians['host_ns'] / div:,.3f} {name}.")


def _iterations_section(iterations: pd.DataFrame, unit: tuple[str, float]) -> Section:
    name, div = unit
    rows = latency.iteration_table(iterations)
    table = pd.DataFrame({
        "iteration": rows["iteration"].astype("int64"),
        "offset (ms)": rows["offset_ns"].astype("float64") / 1e6,
        f"latency ({name})": rows["latency_ns"].astype("float64") / div,
        f"gap before ({MICROSECONDS})": rows["gap_ns"].astype("float64") / 1e3,
        "x median": rows["vs_median"].astype("float64"),
    })
    notes = ["gap before = host time between the previous run's end and this run's start "
             "(gpuprof's own loop cost)."]
    if _cuda_events(iterations):
        notes = ["latency from CUDA events; offset and gap before from the host clock "
                 "(time.monotonic_ns) around each iteration: gap before = host time between the "
                 "previous iteration's end (its last event synchronised) and this one's start "
                 "(gpuprof's own loop cost)."]
    return Section("iterations", "Per-iteration latency", table, notes, max_rows=TERMINAL_ITERATIONS)


# -- layers -------------------------------------------------------------------------------

def _layers_section(profile: Profile, layers: pd.DataFrame, top: int) -> Section:
    if layers.empty:
        reason = profile.meta.absent.get("layer_timings", "no per-layer times were captured")
        return Section("layers", "Layers by time", None, [f"No per-layer table: {reason}."])
    unit = _time_unit(layers["median_ns"])
    name, div = unit
    table = pd.DataFrame({
        "rank": layers["rank"].astype("int64"), "layer": layers["layer"].astype(str),
        "type": layers["layer_type"].astype(str), "calls": layers["calls"].astype("int64"),
        f"total ({name})": layers["total_ns"] / div, f"mean ({name})": layers["mean_ns"] / div,
        f"median ({name})": layers["median_ns"] / div, "% time": layers["pct"],
        "cum %": layers["cum_pct"]})
    n, share = layer_times.pareto(layers, top)
    notes = [f"Top {n} of {len(layers)} layers = {share:.1f}% of layer time; "
             f"{layer_times.layers_for_share(layers, 80)} layers make 80%."]
    notes += _coverage_notes(profile)
    return Section("layers", "Layers by time (profiled pass)", table, notes, max_rows=top)


def _coverage_notes(profile: Profile) -> list[str]:
    extra = profile.meta.extra
    runs = pd.DataFrame(extra.get("profile_runs") or {})
    notes = []
    if not runs.empty:
        cov = layer_times.coverage(profile.layer_timings, runs.set_index("iteration")["run_ns"])
        if not cov.empty:
            notes.append(f"Layer times sum to {cov['coverage_pct'].median():.1f}% of ONNX Runtime's "
                         f"own run time (median of {len(cov)} profiled iterations); the rest is the "
                         "executor's work between nodes.")
        timed = float(np.median(profile.iterations["latency_ns"])) if len(profile.iterations) else 0
        if timed > 0:
            notes.append(f"Profiled runs took {np.median(runs['run_ns']) / timed:.2f}x the timed "
                         "pass's median: per-node profiling overhead (and the machine's noise).")
    if _is_tensorrt(profile):
        notes += _trt_layer_notes(profile)
    if extra.get("backend") == "onnxruntime":
        providers = ", ".join(f"{k} {v}" for k, v in (extra.get("node_providers") or {}).items())
        notes.append("Layer names are ONNX Runtime's optimized-graph nodes (fused nodes such as "
                     f"*_nchwc differ from the .onnx file's). Node runs by provider: {providers or '-'}.")
    return notes


def _trt_layer_notes(profile: Profile) -> list[str]:
    from ..analyze.reconcile import profiler_overhead

    notes = ["Layer names are the engine's layers as TensorRT's IProfiler reports them (TensorRT "
             "fuses ONNX nodes; a fused layer is named after them, e.g. 'A + B')."]
    # with nsys kernels the reconciliation section states the overhead
    overhead = profiler_overhead(profile) if profile.num_rows("kernels") == 0 else {}
    if overhead:
        ratio = overhead["ratio"]
        why = ("the excess is the profiler's per-layer overhead" if ratio > 1 else
               "the rest is time TensorRT attributes to no layer")
        notes.append(f"Layer times sum to {ratio:.2f}x the timed pass's median inference time "
                     f"(CUDA events; median per iteration {overhead['iprofiler_sum_ns'] / 1e3:,.1f} vs "
                     f"{overhead['timed_compute_ns'] / 1e3:,.1f} {MICROSECONDS}): {why}.")
    return notes


def _layer_types_section(layer_timings: pd.DataFrame) -> Section:
    types = layer_times.layer_type_table(layer_timings)
    if types.empty:
        return Section("layer_types", "Time by layer type", None, ["No per-layer times captured."])
    name, div = _time_unit(types["mean_ns"])
    table = pd.DataFrame({
        "type": types["layer_type"].astype(str), "layers": types["layers"].astype("int64"),
        "calls": types["calls"].astype("int64"), f"total ({name})": types["total_ns"] / div,
        f"mean per call ({name})": types["mean_ns"] / div, "% time": types["pct"]})
    return Section("layer_types", "Time by layer type", table)


# -- memory -------------------------------------------------------------------------------

MEMORY_SOURCES = {"process_rss": "process RSS", "trt_allocator": "TensorRT allocator",
                  "nsys": "CUDA memory (nsys)"}


def _memory_label(source: str, device: int, memory_kind: str) -> str:
    from ..analyze.memory import ONE_KIND
    from .memory_labels import memory_label

    label = MEMORY_SOURCES.get(source, source)
    if memory_kind != ONE_KIND:  # nsys CUDA memory: which kind, and where it lives
        return f"{label}, {memory_label(device, memory_kind)}"
    return label if device < 0 else f"{label}, GPU {device}"


def _memory_section(events: pd.DataFrame, extra: dict, origin_ns: int) -> Section:
    """Memory per phase; times in ms from ``origin_ns``, the run's time zero
    (``Run.time_zero``), so they match memory.png, the trace and the nsys report."""
    from ..analyze.memory import memory_summary
    from ..analyze.memory_phases import memory_by_phase

    summary = memory_summary(events)
    if summary.empty:
        return Section("memory", "Memory by phase", None, ["No memory samples were taken."])
    phases = memory_by_phase(events)
    table = None
    if not phases.empty:
        table = pd.DataFrame({
            "memory": [_memory_label(s, d, k) for s, d, k in
                       zip(phases["source"], phases["device_id"], phases["memory_kind"])],
            "phase": phases["phase"],
            "start (ms)": (phases["start_ns"] - origin_ns) / 1e6,
            "duration (ms)": (phases["end_ns"] - phases["start_ns"]) / 1e6,
            "at start (MiB)": phases["start_bytes"] / MIB, "peak (MiB)": phases["peak_bytes"] / MIB,
            "change (MiB)": phases["change_bytes"] / MIB})
    notes = [_peak_note(row, origin_ns) for row in summary.itertuples(index=False)]
    sources = set(summary["source"])
    if "process_rss" in sources:
        notes.append(f"RSS is sampled by a background thread every {_num(extra.get('rss_interval_ms'))} "
                     f"ms ({_num(extra.get('rss_timed_interval_ms'))} ms during the timed pass, to "
                     "stay off the measurement): shorter peaks can be missed.")
    if "trt_allocator" in sources:
        notes.append("The TensorRT allocator sees every allocation TensorRT makes through it; "
                     "memory given via context.device_memory and CUDA/cuBLAS/cuDNN internals "
                     "bypass it (compare with nsys CUDA memory where captured).")
    return Section("memory", "Memory by phase", table, notes)


def _peak_note(row, origin_ns: int) -> str:
    """When and in which phase a source/device first reached its peak (ms from time zero)."""
    label = _memory_label(row.source, row.device_id, row.memory_kind)
    when = f"at {(row.peak_time_ns - origin_ns) / 1e6:,.3f} ms"
    if pd.isna(row.peak_phase):  # e.g. nsys CUDA memory: it records no run phases
        where = f"first reached {when} (its events carry no phase)"
    else:
        where = f"first reached in phase '{row.peak_phase}' {when}"
    return (f"Peak {label}: {row.peak_bytes / MIB:,.1f} MiB, {where} (since the run's first "
            "event, as in memory.png).")


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "?"


# -- files --------------------------------------------------------------------------------
# The command (cli/engine_outputs.py) writes an engine run's folder with these and saves the
# run; render only draws, lists and writes reports.

def file_listing(run, written: list[str], directory: Path) -> dict[str, str]:
    """The Files section: each file this run wrote into ``directory`` and what it holds
    (``written``: the plots, trace and saved run that exist; the reports are always there)."""
    tables = ["layers.csv"] if not run.layer_timings.empty else []
    names = ["report.md", "report.json", "report.html", *tables, "iterations.csv", *written]
    listed = {n: FILES[n] for n in names}
    if "memory.png" in listed:
        sources = _memory_sources(run.memory_events)
        listed["memory.png"] = ("memory over time: " + sources if sources != _RSS_ONLY
                                else FILES["memory.png"])
    listed.update(_runner_files(run, directory))
    return listed


_RSS_ONLY = MEMORY_SOURCES["process_rss"]


def _memory_sources(events: pd.DataFrame) -> str:
    """The memory sources of a run in words, in the order they first appear (RSS without any)."""
    sources = list(dict.fromkeys(events["source"].astype(str))) or ["process_rss"]
    return ", ".join(MEMORY_SOURCES.get(s, s) for s in sources)


def _runner_files(profile: Profile, directory: Path) -> dict[str, str]:
    """The TensorRT runner's folder (and nsys's files in it), where it lies in ``directory``."""
    folder = profile.meta.extra.get("runner_folder")
    if not _is_tensorrt(profile) or not folder or not (directory / folder).is_dir():
        return {}
    nsys = profile.meta.extra.get("nsys") or {}
    content = RUNNER_FOLDER
    if nsys.get("captured") and nsys.get("report") and nsys.get("export"):
        content += RUNNER_NSYS_FILES.format(report=nsys["report"], export=nsys["export"])
    return {f"{folder}/": content}


def write_report_files(report: Report, directory: Path) -> list[str]:
    """report.md, report.json, report.html and the layer and iteration CSVs (the folder
    writer every command shares); the names written."""
    from .artifacts import write_reports

    return write_reports(report, directory, csv_tables=("layers", "iterations"))


def add_engine_visuals(run, report: Report, directory: Path, written: list[str]) -> None:
    """The HTML page's plots and timeline: memory.png as written, the layer Pareto drawn
    from the layer table, the run's timeline (iterations, layers' kernels, NVTX ranges)."""
    from .artifacts import add_run_visuals
    from .html_visuals import drawn_plot
    from .plots import plot_layers

    layers = layer_times.layer_table(run.layer_timings)
    pareto = drawn_plot("Layers by total time (Pareto)", lambda path: plot_layers(layers, path))
    if pareto is not None:
        report.visuals.append(pareto)
    from .html_plots import latency_distribution

    latency = latency_distribution(run.iterations["latency_ns"], "Latency of the timed iterations")
    if latency is not None:
        report.visuals.append(latency)
    plots = {"Memory over time": directory / "memory.png"} if "memory.png" in written else {}
    add_run_visuals(report, run, plots)


def plot_memory_file(run, path: Path) -> None:
    """memory.png: each source's use over time, with the phase table's phases as bands
    (``run``: an ``api.Run``, for its time zero)."""
    from ..analyze.memory import memory_timeline
    from ..analyze.memory_phases import memory_by_phase
    from .plots import plot_memory

    sources = _memory_sources(run.memory_events)
    what = "Process memory (RSS)" if sources == _RSS_ONLY else f"Memory ({sources})"
    plot_memory(memory_timeline(run.memory_events), path, origin_ns=run.time_zero,
                title=f"{what}: {run.meta.extra.get('model', '')}",
                phases=memory_by_phase(run.memory_events))


def write_trace_file(run, path: Path) -> None:
    """trace.json: the run's Chrome/Perfetto trace from its time zero."""
    from .chrome_trace import write_chrome_trace

    write_chrome_trace(run, path, origin_ns=run.time_zero)
