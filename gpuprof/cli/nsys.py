"""`gpuprof nsys FILE`: analyse an Nsight Systems export or a saved run; several exports, a
directory or a glob go to `nsys_fleet` (Dask)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import NoDataError
from .options import report_output_options

# what `gpuprof nsys` can report on; an export with none of them is refused
REPORTED_TABLES = ("kernels", "copies", "api_calls", "nvtx_ranges", "memory_events")


@click.command("nsys")
@click.argument("files", nargs=-1, required=True)
@report_output_options("layers, kernels, nvtx, copies, gpus, streams, gaps, api, memory; "
                       "several exports: exports, kernels, kernels_by_export, layers, "
                       "layers_by_export, copies, copies_by_export, memory, memory_by_export")
@click.option("--out-dir", type=click.Path(path_type=Path),
              help="Write every artefact here: report.md/.json, CSV tables, trace, plots, run.")
@click.option("--chrome-trace", type=click.Path(path_type=Path),
              help="Write a Chrome/Perfetto trace JSON (open in ui.perfetto.dev).")
@click.option("--memory-plot", type=click.Path(path_type=Path), help="Write memory over time as PNG.")
@click.option("--save", type=click.Path(path_type=Path),
              help="Save the loaded run (.gpuprof) to re-analyse later without the export.")
@click.option("--top", type=int, help="Rows per table in terminal/Markdown views.")
@click.option("--scheduler", help="Several exports: the Dask scheduler to run on "
              "(tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=int, help="Several exports: workers of the local cluster "
              "(default: one per core, at most one per export).")
def nsys_command(files: tuple[str, ...], output, fmt, table, out_dir, chrome_trace, memory_plot,
                 save, top, scheduler, workers):
    """Analyse an Nsight Systems export (.sqlite, .nsys-rep) or a saved run (.gpuprof).

    Several exports, a directory or a glob ('runs/*.sqlite'): one row per export and combined
    tables, computed on Dask."""
    from ..pipeline.fleet import is_many

    if is_many(list(files)) or scheduler or workers:
        from .nsys_fleet import fleet_command

        return fleet_command(list(files), output=output, fmt=fmt, table=table, out_dir=out_dir,
                             top=top, scheduler=scheduler, workers=workers,
                             per_export_options={"chrome_trace": chrome_trace,
                                                 "memory_plot": memory_plot, "save": save})
    file = Path(files[0])
    from ..api import load
    from ..render.report import format_for, render, write_report

    with _status(f"Reading {file.name}"):
        # launch configurations only annotate traces and saved runs: read them when written
        run = load(file, details=bool(chrome_trace or out_dir or save))
    if not any(run.num_rows(name) for name in REPORTED_TABLES):
        # refused only when there is nothing to report: NVTX ranges alone (a TensorRT engine
        # traced with -t nvtx), runtime calls or memory events alone make a report
        raise NoDataError(
            f"{file.name} holds no GPU kernels, memory copies, CUDA API calls, NVTX ranges or "
            f"memory events ({_what_is_there(run)})",
            "Capture CUDA activity with: nsys profile -t cuda,nvtx --cuda-memory-usage=true ...")
    report = run.report(top=top)
    if save:
        click.echo(f"Saved run: {run.save(save)}", err=True)
    if out_dir:
        from ..render.artifacts import write_artifacts

        for path in write_artifacts(run, report, out_dir):
            click.echo(f"Wrote {path}", err=True)
    _write_extras(run, chrome_trace, memory_plot)
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        text = render(_terminal(report) if format_for(None, fmt) == "terminal" else report,
                      format_for(None, fmt), table=table)
        click.echo(text, nl=False)


def _terminal(report):
    from ..render.layer_section import for_terminal

    report.sections = [for_terminal(s) for s in report.sections]
    return report


def _write_extras(run, chrome_trace, memory_plot) -> None:
    if chrome_trace:
        from ..render.chrome_trace import write_chrome_trace

        path = write_chrome_trace(run, chrome_trace, origin_ns=run.time_zero)
        click.echo(f"Wrote {path}", err=True)
    if memory_plot:
        from ..render.artifacts import write_memory_plot

        click.echo(f"Wrote {write_memory_plot(run, memory_plot)}", err=True)


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
