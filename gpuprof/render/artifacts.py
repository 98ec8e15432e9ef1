"""Every artefact of one analysed run, written into one folder (``--out-dir``)."""

from __future__ import annotations

from pathlib import Path

from .report import Report, write_report


def write_artifacts(run, report: Report, out_dir: str | Path) -> list[Path]:
    """The plots, the trace (trace.json, or trace.pftrace for large runs), the reports
    (report.md/.json/.html/.txt, one CSV per table; the page holds the plots) and the saved run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from .trace_files import out_dir_trace_name, write_trace

    plots: dict[str, Path] = {}
    if len(run.memory_events):
        plots["Memory over time"] = write_memory_plot(run, out / "memory.png")
    if run.is_tensorrt():
        plots["TensorRT layers (Pareto)"] = write_layer_plot(run, out / "layers.png")
    trace = write_trace(run, out / out_dir_trace_name(run))
    add_run_visuals(report, run, plots)
    written = [out / name for name in write_reports(report, out)]
    written.append(write_report(report, out / "report.txt"))  # a file: every name whole
    return [*written, trace, *plots.values(), run.save(out / "run.gpuprof")]


def write_reports(report: Report, out: Path, csv_tables: tuple[str, ...] | None = None) -> list[str]:
    """The one writer of a folder's reports, for every command with an output folder:
    report.md, report.json, report.html and a CSV per table (``csv_tables``: which, by
    section key and in that order; None: every table). Returns the file names written."""
    names = ["report.md", "report.json", "report.html"]
    for name in names:
        write_report(report, out / name)
    keys = csv_tables if csv_tables is not None else [s.key for s in report.sections]
    for key in keys:
        section = report.section(key)
        if section is not None and section.table is not None and len(section.table.columns):
            if csv_tables is None and not len(section.table):
                continue
            names.append(write_report(report, out / f"{key}.csv", table=key).name)
    return names


def add_run_visuals(report: Report, run, plots: dict[str, Path] | None = None) -> Report:
    """The plots (already written files, else drawn now) and the run's timeline, for the
    HTML page of ``run`` (an ``api.Run``)."""
    from .html_visuals import drawn_plot, plot_file, run_timeline

    if plots is None:
        plots = {}
        drawn = []
        if len(run.memory_events):
            drawn.append(drawn_plot("Memory over time", lambda p: write_memory_plot(run, p)))
        if run.is_tensorrt():
            drawn.append(drawn_plot("TensorRT layers (Pareto)", lambda p: write_layer_plot(run, p)))
        report.visuals.extend(p for p in drawn if p is not None)
    report.visuals.extend(plot_file(path, title) for title, path in plots.items())
    report.visuals.append(run_timeline(run, run.time_zero))
    return report


def write_layer_plot(run, path: Path) -> Path:
    """layers.png: GPU time per TensorRT layer, or, for an export without kernels, the
    host-side range time the report shows, labelled as such."""
    from .plots import plot_layers

    if run.num_rows("kernels"):
        return plot_layers(run.layers(), path)
    from .nsys_full import HOST_TIME

    return plot_layers(run.host_layers(), path, title=f"TensorRT layers by {HOST_TIME}",
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

