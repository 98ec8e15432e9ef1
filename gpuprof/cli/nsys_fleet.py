"""`gpuprof nsys a.sqlite b.sqlite ...` (or a directory, or a glob): many exports at once on
Dask, a progress bar per export, one combined report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BadInputError

PER_EXPORT_ONLY = {"--chrome-trace": "chrome_trace", "--trace-window": "trace_window",
                   "--memory-plot": "memory_plot", "--save": "save", "--group-nvtx": "group_nvtx",
                   "--details": "details"}


def fleet_command(arguments: list[str], *, output, fmt, table, out_dir, top, scheduler,
                  workers, per_export_options: dict) -> None:
    from ..pipeline.fleet import default_workers, find_exports, run_fleet
    from ..render.fleet import fleet_report
    from ..render.report import format_for, render, write_report

    _refuse_per_export(per_export_options)
    if scheduler and workers:
        raise BadInputError("--workers sizes the local cluster, not one given by --scheduler",
                            "Size that cluster where it runs, or leave out --scheduler")
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1, not {workers}", "Use --workers 1 or more")
    paths = find_exports(arguments)
    count = workers or default_workers(len(paths))
    if not scheduler:  # a local cluster's workers read side by side, here
        from .memory_check import warn_if_too_big

        warn_if_too_big([Path(p) for p in paths], at_once=count)
    engine = f"Dask scheduler {scheduler}" if scheduler else \
        f"Dask LocalCluster, {count} worker{'s' if count != 1 else ''} (1 thread each)"
    with _progress(paths) as on_done:
        partials = run_fleet(paths, scheduler=scheduler, workers=count, on_done=on_done)
    report = fleet_report(partials, engine, top=top)
    if out_dir:
        from ..render.fleet import write_fleet_artifacts

        for path in write_fleet_artifacts(report, out_dir):
            click.echo(f"Wrote {path}", err=True)
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        # a terminal's own width (names cut only there, never into look-alikes)
        click.echo(render(report, format_for(None, fmt), table=table), nl=False)


def _refuse_per_export(options: dict) -> None:
    given = [flag for flag, name in PER_EXPORT_ONLY.items() if options.get(name)]
    if given:
        raise BadInputError(f"{', '.join(given)} is for one export, not several",
                            "Run 'gpuprof nsys EXPORT' with it on the export you want")


class _progress:
    """A bar per export on a terminal (rich); elsewhere one line per export as it finishes."""

    def __init__(self, paths: list[Path]):
        from ..pipeline.fleet import export_names

        self.names = export_names(paths)
        self.bars = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"),
                                 console=Console(stderr=True))
            self.tasks = {name: self.bars.add_task(name, total=1, status="queued")
                          for name in self.names}
            self.bars.start()
        return self.done

    def done(self, name: str, partial) -> None:
        status = "ok" if partial.error is None else f"failed: {partial.error}"
        if self.bars is None:
            click.echo(f"{name}: {status}", err=True)
        else:
            self.bars.update(self.tasks[name], completed=1, status=status)

    def __exit__(self, *exc) -> None:
        if self.bars is not None:
            self.bars.stop()
