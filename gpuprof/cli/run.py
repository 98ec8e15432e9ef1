"""`gpuprof run [--nsys auto|on|off] -- python app.py ARGS`: profile an unmodified program.

The program runs with GPUPROF_OUTPUT_PATH set (its start-up hook profiles its inference
calls), under ``nsys profile`` when nsys is there and not switched off; gpuprof then reads
the run back, merges the nsys capture onto the same clock, prints the report and exits with
the program's exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import report_output_options


@click.command("run", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.option("--nsys", "nsys_mode", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="Run under Nsight Systems: auto (when 'nsys' is on PATH), "
                                      "on (required), off.")
@click.option("--trace", type=click.Path(path_type=Path), default=Path("trace.json"),
              show_default=True, help="The Chrome/Perfetto trace; the saved run goes beside it "
                                      "(trace.gpuprof).")
@click.option("--ort-nodes", is_flag=True,
              help="Also ONNX Runtime's per-node profile (sessions the program creates).")
@report_output_options("summary, records, operators, memory")
@click.argument("program", nargs=-1, type=click.UNPROCESSED, required=True)
def run_command(nsys_mode, trace, ort_nodes, output, fmt, table, program) -> None:
    """Run PROGRAM (after '--') with profiling on, then print its inference report.

    Example: gpuprof run -- python app.py --batch 8"""
    from ..pipeline.profile_run import profile_program
    from ..render.profile_report import profile_report
    from ..render.report import format_for, render, write_report

    result = profile_program(list(program), trace, nsys_mode, ort_nodes,
                             say=lambda line: click.echo(f"gpuprof: {line}", err=True))
    facts = {"program": " ".join(program), "exit code": str(result.exit_code),
             "trace": str(result.trace), "saved run": str(result.saved),
             "nsys": result.nsys_note.removeprefix("nsys: ")}
    report = profile_report(result.run, facts)
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        click.echo(render(report, format_for(None, fmt), table=table), nl=False)
    sys.stdout.flush()
    raise click.exceptions.Exit(result.exit_code)
