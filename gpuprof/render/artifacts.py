"""Every artefact of one analysed run, written into one folder (``--out-dir``)."""

from __future__ import annotations

from pathlib import Path

from .report import Report, write_report


def write_artifacts(run, report: Report, out_dir: str | Path) -> list[Path]:
    """report.md/.json/.txt, one CSV per table, the trace (trace.json, or trace.pftrace
    for large runs), plots and the saved run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_report(report, out / "report.md"), write_report(report, out / "report.json"),
               write_report(report, out / "report.txt")]
    for section in report.sections:
        if section.table is not None and len(section.table):
            written.append(write_report(report, out / f"{section.key}.csv", table=section.key))
    from .trace_files import out_dir_trace_name, write_trace

    written.append(write_trace(run, out / out_dir_trace_name(run)))
    if len(run.memory_events):
        written.append(write_memory_plot(run, out / "memory.png"))
    if run.is_tensorrt():
        written.append(write_layer_plot(run, out / "layers.png"))
    written.append(run.save(out / "run.gpuprof"))
    return written


def write_layer_plot(run, path: Path) -> Path:
    """layers.png: GPU time per TensorRT layer, or, for an export without kernels, the
    host-side range time the report shows, labelled as such."""
    from .plots import plot_layers

    if run.num_rows("kernels"):
        return plot_layers(run.layers(), path)
    from ..analyze.host_layers import host_time_by_layer
    from .nsys_full import HOST_TIME

    return plot_layers(host_time_by_layer(run), path, title=f"TensorRT layers by {HOST_TIME}",
                       xlabel="CPU-side (host) range time (ms)")


def write_memory_plot(run, path: str | Path) -> Path:
    """memory.png of a ``Run``: from its time zero, as the report's "Peak at (ms)" and the trace
    count, with the phases its memory events carry (a saved engine run's) as bands."""
    from ..analyze.memory import memory_timeline
    from ..analyze.memory_phases import memory_by_phase
    from .plots import plot_memory

    events = run.memory_events
    return plot_memory(memory_timeline(events), path, origin_ns=run.time_zero,
                       phases=memory_by_phase(events))

