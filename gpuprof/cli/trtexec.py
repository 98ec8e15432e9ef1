"""`gpuprof trtexec`: trtexec's layer info, profile, times and log, as TREx showed them."""

from __future__ import annotations

from pathlib import Path

import click

from .options import report_output_options


@click.command("trtexec")
@click.option("--layer-info", type=click.Path(path_type=Path), help="trtexec --exportLayerInfo JSON.")
@click.option("--profile", type=click.Path(path_type=Path), help="trtexec --exportProfile JSON.")
@click.option("--times", type=click.Path(path_type=Path), help="trtexec --exportTimes JSON.")
@click.option("--log", "log_file", type=click.Path(path_type=Path),
              help="trtexec's console log (device, engine and summary; its --dumpProfile table "
                   "stands in for --profile).")
@report_output_options("layers, layer_types, precisions, reformats, latency, log_summary")
@click.option("--top", type=int, help="Rows of the layer table in terminal/Markdown views.")
def trtexec_command(layer_info, profile, times, log_file, output, fmt, table, top):
    """Report on trtexec's files: layers with precision, tactic and formats, reformats, time by
    layer type, the Pareto line, latency percentiles, engine and device facts."""
    from ..ingest.trtexec import read_trtexec
    from ..render.report import format_for, render, write_report
    from ..render.trtexec_report import trtexec_report

    for path in (layer_info, profile, times, log_file):
        _must_exist(path)
    run = read_trtexec(profile=profile, layer_info=layer_info, times=times, log=log_file)
    report = trtexec_report(run, top=top)
    if format_for(output, fmt) == "html" and not run.profile.iterations.empty:
        from ..render.html_plots import latency_distribution

        plot = latency_distribution(run.profile.iterations["latency_ns"],
                                    "Latency of trtexec's timed iterations")
        report.visuals += [plot] if plot is not None else []
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        click.echo(render(report, format_for(None, fmt), table=table), nl=False)


def _must_exist(path: Path | None) -> None:
    from ..errors import BadInputError

    if path is not None and not path.is_file():
        raise BadInputError(f"{path.name} does not exist or is not a file", "Check the path")
