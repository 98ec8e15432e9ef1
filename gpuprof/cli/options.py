"""Option bundles shared by commands, so the same flag means the same thing everywhere."""

from __future__ import annotations

from pathlib import Path

import click

from ..render.formats import FORMATS


def report_output_options(tables: str):
    """``-o/--output``, ``--format`` and ``--table``: where a report goes and in which format.

    ``tables`` lists the tables a CSV can hold, for the help text.
    """
    def decorate(command):
        command = click.option("--table", help=f"With CSV: which table to write ({tables}).")(command)
        command = click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
                               help="Output format (default: from --output's extension, else terminal).")(command)
        return click.option("-o", "--output", type=click.Path(path_type=Path),
                            help="Write the report here; the format follows the extension "
                                 "(.md .csv .json .txt .html).")(command)
    return decorate
