"""`gpuprof nsys FILE`: analyse an Nsight Systems export or a saved run; several exports, a
directory or a glob go to `nsys_fleet` (Dask)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import NoDataError
from .options import report_output_options

# what `gpuprof nsys` can report on; an export with none of them is refused
HUMAN_FORMATS = ("terminal", "md")  # --group-nvtx groups these; CSV and JSON keep raw rows
REPORTED_TABLES = ("kernels", "copies", "api_calls", "nvtx_ranges", "memory_events")


@click.command("nsys")
@click.argument("files", nargs=-1, required=True)
@report_output_options("layers, kernels, nvtx, copies, gpus, streams, gaps, api, memory; "
                       "several exports: exports, kernels, kernels_by_export, layers, "
                       "layers_by_export, copies, copies_by_export, memory, memory_by_export")
@click.option("--out-dir", type=click.Path(path_type=Path),
              help="Write every artefact here: report.md/.json, CSV tables, trace, plots, run.")
@click.option("--chrome-trace", type=click.Path(path_type=Path),
              help="Write the timeline for ui.perfetto.dev: Perfetto protobuf for a .pftrace "
                   "name (large runs), Chrome trace JSON otherwise.")
@click.option("--trace-window", metavar="START:END",
              help="Cut --chrome-trace to this window, in ms from the run's time zero (the zero "
                   "the reports count from), e.g. 1200:1250.")
@click.option("--memory-plot", type=click.Path(path_type=Path), help="Write memory over time as PNG.")
@click.option("--save", type=click.Path(path_type=Path),
              help="Save the loaded run (.gpuprof) to re-analyse later without the export "
                   "(launch configurations only with --details).")
@click.option("--details", is_flag=True,
              help="Also read each kernel's launch configuration, CUDA API return values and "
                   "NVTX payloads: arguments of a JSON trace (read for one anyway), kept by "
                   "--save. Doubles the read of a huge export.")
@click.option("--top", type=int, help="Rows per table in terminal/Markdown views.")
@click.option("--group-nvtx", is_flag=True,
              help="Terminal/Markdown: one NVTX row for names that differ only by trailing ids "
                   "(PyTorch's 'op_id = N'); CSV and JSON keep one row per name.")
@click.option("--scheduler", help="Several exports: the Dask scheduler to run on "
              "(tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=int, help="Several exports: workers of the local cluster "
              "(default: one per core, at most one per export).")
def nsys_command(files: tuple[str, ...], output, fmt, table, out_dir, chrome_trace, trace_window,
                 memory_plot, save, details, top, group_nvtx, scheduler, workers):
    """Analyse an Nsight Systems export (.sqlite, .nsys-rep) or a saved run (.gpuprof).

    Several exports, a directory or a glob ('runs/*.sqlite'): one row per export and combined
    tables, computed on Dask."""
    from ..pipeline.fleet import is_many

    if is_many(list(files)) or scheduler or workers:
        from .nsys_fleet import fleet_command

        return fleet_command(list(files), output=output, fmt=fmt, table=table, out_dir=out_dir,
                             top=top, scheduler=scheduler, workers=workers,
                             per_export_options={"chrome_trace": chrome_trace,
                                                 "trace_window": trace_window,
                                                 "memory_plot": memory_plot, "save": save,
                                                 "group_nvtx": group_nvtx, "details": details})
    file = Path(files[0])
    from ..api import load
    from ..render.report import format_for, render, write_report

    if trace_window:
        if not chrome_trace:
            raise click.BadParameter("cuts the trace: give --chrome-trace too",
                                     param_hint="--trace-window")
        _window_ms(trace_window)  # a typo fails before a long read
    from ..render.section_times import timed
    from .memory_check import warn_if_too_big

    warn_if_too_big([file], 1.9 if out_dir else 1.3 if (save or chrome_trace or details) else 1.0)
    with _status(f"Reading {file.name}"), timed("read"):
        # launch configurations only annotate JSON traces: read them when one is written (the
        # protobuf trace leaves per-slice arguments out) or asked for; a saved run keeps them
        # only then (they would double --save's read of a huge export)
        run = load(file, details=bool(_json_trace(chrome_trace) or out_dir or details))
    if not any(run.num_rows(name) for name in REPORTED_TABLES):
        _refuse_other_saved_run(file, run)
        # refused only when there is nothing to report: NVTX ranges alone (a TensorRT engine
        # traced with -t nvtx), runtime calls or memory events alone make a report
        raise NoDataError(
            f"{file.name} holds no GPU kernels, memory copies, CUDA API calls, NVTX ranges or "
            f"memory events ({_what_is_there(run)})",
            "Capture CUDA activity with: nsys profile -t cuda,nvtx --cuda-memory-usage=true ...")
    # a report whose run serves nothing after it frees each table once its sections are
    # done (at 5M kernels, the API calls and NVTX ranges before the GPU timeline is built)
    if save:
        run.encode_ahead()
    spent = not (save or out_dir or chrome_trace or memory_plot or group_nvtx
                 or format_for(output, fmt) == "html")
    try:
        report = run.report(top=top, release=spent)
    except BaseException:
        run.cancel_encoding()  # Ctrl-C or a failure: do not encode for a save that won't come
        raise
    if save:
        with timed("save"):
            click.echo(f"Saved run: {run.save(save)}", err=True)
    if out_dir:
        from ..render.artifacts import write_artifacts

        for path in write_artifacts(run, report, out_dir):
            click.echo(f"Wrote {path}", err=True)
    _write_extras(run, chrome_trace, trace_window, memory_plot)
    if group_nvtx and format_for(output, fmt) in HUMAN_FORMATS:  # after --out-dir's raw files
        _group_nvtx(run, report)
    if format_for(output, fmt) == "html" and not report.visuals:  # --out-dir added them
        from ..render.artifacts import add_run_visuals

        add_run_visuals(report, run)
    if output:
        with timed("write report"):
            click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        text = render(report, format_for(None, fmt), table=table)
        click.echo(text, nl=False)


def _group_nvtx(run, report) -> None:
    """The NVTX section with ids grouped, in the people's views only (machine formats keep
    every name, so no row a program reads is merged away)."""
    from ..analyze.layers import gpu_time_by_range
    from ..render.nsys_full import range_section
    from ..render.nsys_report import nvtx_section

    def grouped_ranges(rows):
        table = gpu_time_by_range(run, None, run.attributed(None), group_ids=True)
        section = range_section(run, rows, table)
        section.notes.append("Grouped (--group-nvtx): names that differ only by trailing ids "
                             "share a row.")
        return section

    for key, build in (("nvtx", lambda rows: nvtx_section(run, rows, group_ids=True)),
                       ("ranges", grouped_ranges)):
        old = report.section(key)
        if old is not None:
            report.sections[report.sections.index(old)] = build(old.max_rows)


def _write_extras(run, chrome_trace, trace_window, memory_plot) -> None:
    if chrome_trace:
        from ..render.trace_files import describe_trace, write_trace

        zero = run.time_zero
        traced = _cut(run, trace_window) if trace_window else run
        click.echo(describe_trace(write_trace(traced, chrome_trace, origin_ns=zero)), err=True)
    if memory_plot:
        from ..render.artifacts import write_memory_plot

        click.echo(f"Wrote {write_memory_plot(run, memory_plot)}", err=True)


def _json_trace(chrome_trace) -> bool:
    from ..render.trace_files import is_protobuf

    return bool(chrome_trace) and not is_protobuf(chrome_trace)


def _cut(run, window: str):
    """``run`` cut to ``window`` ("START:END", ms from its time zero)."""
    from ..analyze.window import cut
    from ..api import Run

    start_ms, end_ms = _window_ms(window)
    zero = run.time_zero
    part = Run.of(cut(run, zero + round(start_ms * 1e6), zero + round(end_ms * 1e6)))
    if not any(part.num_rows(t) for t in ("kernels", "copies", "api_calls", "nvtx_ranges")):
        raise click.BadParameter(f"{window} ms holds no kernel, copy, API call or NVTX range; "
                                 "the report's times count from the same zero",
                                 param_hint="--trace-window")
    return part


def _window_ms(window: str) -> tuple[float, float]:
    try:
        start, end = (float(part) for part in window.split(":"))
    except ValueError:
        start = end = -1.0
    if not 0 <= start < end:
        raise click.BadParameter(f"{window!r} is not START:END in ms with 0 <= START < END "
                                 "(e.g. 1200:1250)", param_hint="--trace-window")
    return start, end


def _refuse_other_saved_run(file: Path, run) -> None:
    """A saved engine or triton run has nothing for this report: name the command that has."""
    from ..model.run_kind import is_saved_run, require_command

    if is_saved_run(file):
        require_command(run.meta, file.name, "nsys")


def _what_is_there(run) -> str:
    if run.meta.absent.get("kernels"):
        return run.meta.absent["kernels"]
    return "its CUDA tables are present but empty"


def _status(message: str):
    from contextlib import nullcontext

    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)
