"""``gpuprof doctor [--json]``: what this machine has for gpuprof, and what each command can do.

Thin: run the probes (``capture.doctor``), print the screen (``render.doctor``) or the JSON.
Exits 0 whatever is missing: a missing part is the answer, not an error.
"""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (snake_case keys, "
              "schema_version, null where unknown).")
@click.pass_context
def doctor_command(ctx: click.Context, as_json: bool) -> None:
    """Check this machine: drivers, GPUs, TensorRT, nsys, eBPF, Triton, ONNX Runtime; then say
    which gpuprof commands run fully, partly or not, and how to install what is missing."""
    from ..capture.doctor import document, examine
    from ..render.doctor import render_doctor

    debug = bool((ctx.find_root().obj or {}).get("debug"))
    doc = document(examine(reraise=debug), command_names=_registered())
    click.echo(json.dumps(doc, indent=2) if as_json else render_doctor(doc, _terminal_width()), nl=as_json)


def _terminal_width() -> int | None:
    """The terminal's width; None (never wrap) when stdout is a pipe or a file."""
    import shutil
    import sys

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _registered() -> list[str]:
    """The commands this install has: a row for a command it lacks would be noise."""
    import importlib.util

    from .main import COMMANDS

    return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module)]
