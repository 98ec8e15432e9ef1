"""``gpuprof open RUN``: reopen any saved run with the report of the command that made it.

The run's metadata names the tool that captured it (``model/run_kind.py``); the options after
RUN are that command's (``gpuprof open run.gpuprof -o report.md`` is ``gpuprof nsys run.gpuprof
-o report.md`` for an nsys run).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import BadInputError


@click.command("open", context_settings={"ignore_unknown_options": True,
                                         "allow_extra_args": True})
@click.argument("run", type=click.Path(path_type=Path))
@click.pass_context
def open_command(ctx: click.Context, run: Path) -> None:
    """Reopen a saved run (.gpuprof) with its report: nsys, engine or triton, from its metadata.
    Options after RUN are that command's."""
    from ..model import Profile
    from ..model.run_kind import command_for, is_saved_run

    if not is_saved_run(run):
        raise BadInputError(f"{run.name} is not a saved run (.gpuprof)",
                            "Pass a file written by --save, --out-dir or gpuprof engine")
    if not run.is_file():
        raise BadInputError(f"{run} does not exist", "Pass a saved run (.gpuprof)")
    command = _command(command_for(Profile.load(run).meta, run.name))
    with command.make_context(command.name, [str(run), *ctx.args], parent=ctx) as sub:
        command.invoke(sub)


def _command(name: str) -> click.Command:
    if name == "nsys":
        from .nsys import nsys_command

        return nsys_command
    if name == "engine":
        from .engine import engine_command

        return engine_command
    from .triton import parse_command

    return parse_command
