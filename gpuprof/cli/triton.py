"""`gpuprof triton`: parse Triton trace files (and, when installed, serve a model).

``gpuprof triton trace.json`` and ``gpuprof triton parse trace.json`` are the same command: a
first argument that is not a subcommand name is routed to ``parse``. ``serve`` comes from
``gpuprof/cli/triton_serve.py`` (``serve_command``) and is listed only when that module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import click

from ..errors import BadInputError
from .options import report_output_options

DEFAULT = "parse"
TITLE = "trace_title"  # meta.extra key of a saved run: the report's title when it was saved
# subcommand -> (module, attribute) of the commands that live in other modules
LAZY = {"serve": ("gpuprof.cli.triton_serve", "serve_command")}


class TritonGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # a trace path (or an option of parse) first: run parse with all the arguments
        if args and args[0] not in self.list_commands(ctx) and args[0] not in ctx.help_option_names:
            args = [DEFAULT, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name, (mod, _) in LAZY.items() if _module_exists(mod)]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and _module_exists(LAZY[name][0]):
            module, attr = LAZY[name]
            return getattr(importlib.import_module(module), attr, None)
        return super().get_command(ctx, name)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@click.group("triton", cls=TritonGroup, no_args_is_help=True)
def triton_group() -> None:
    """Triton Inference Server: parse trace files (gpuprof triton TRACE), serve a model."""


@triton_group.command("parse")
@click.argument("traces", nargs=-1, required=True)
@report_output_options("summary, requests, incomplete, tensors")
@click.option("--chrome-trace", type=click.Path(path_type=Path),
              help="Write the request stages as a Chrome/Perfetto trace JSON (ui.perfetto.dev).")
@click.option("--model", "model", help="Only this model's requests (and their ensemble/BLS children).")
@click.option("--save", type=click.Path(path_type=Path),
              help="Save the requests table as a run (.gpuprof) to re-analyse later.")
def parse_command(traces: tuple[str, ...], output, fmt, table, chrome_trace, model, save) -> None:
    """Analyse Triton trace files. Each TRACE is a file, the base name of numbered parts
    (trace.json for trace.json.0, .1, ... written with log-frequency), a directory or a glob;
    or one saved run (.gpuprof) that --save wrote."""
    from ..render.report import format_for, render, write_report

    parsed = _read(traces)
    if model:
        parsed = _only_model(parsed, model)
    report = _report(parsed, traces)
    if format_for(output, fmt) == "html":
        _add_html_visuals(report, parsed.profile.requests)
    if chrome_trace:
        from ..render.triton_trace_json import write_chrome_trace

        click.echo(f"Wrote {write_chrome_trace(chrome_trace, parsed.profile.requests)}", err=True)
    if save:
        # the title names what the user passed: keep it so a reopened report reads the same
        parsed.profile.meta.extra[TITLE] = _title(parsed, traces)
        click.echo(f"Saved run: {parsed.profile.save(save)}", err=True)
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        click.echo(render(report, format_for(None, fmt), table=table), nl=False)


def _read(traces: tuple[str, ...]):
    """The parsed trace files, or the trace a saved run holds (its four trace tables)."""
    from ..ingest.triton_trace import TritonTrace, read_triton_trace
    from ..model.run_kind import is_saved_run

    saved = [t for t in traces if is_saved_run(t)]
    if not saved:
        return read_triton_trace(list(traces))
    if len(traces) > 1:
        raise BadInputError("a saved run is reopened alone, not with other traces",
                            f"Run: gpuprof triton {saved[0]}")
    from ..model import Profile
    from ..model.run_kind import require_command

    path = Path(saved[0])
    if not path.is_file():
        raise BadInputError(f"{path} does not exist", "Pass the file that --save wrote")
    profile = Profile.load(path)
    require_command(profile.meta, path.name, "triton")
    extra = profile.meta.extra
    return TritonTrace(profile, bool(extra.get("partial")), list(extra.get("issues") or []))


def _add_html_visuals(report, requests) -> None:
    """The page's END_TO_END latency distribution and the request stages' timeline."""
    from ..model.triton_stages import END_TO_END
    from ..render.html_plots import latency_distribution
    from ..render.html_visuals import request_timeline

    whole = requests[requests["stage"] == END_TO_END]
    plot = latency_distribution(whole["end_ns"] - whole["start_ns"],
                                "END_TO_END latency (first receive to last send)")
    report.visuals += [plot] if plot is not None else []
    report.visuals.append(request_timeline(requests))


def _report(parsed, traces: tuple[str, ...]):
    from ..analyze.requests import analyze_requests
    from ..render.triton_report import build_triton_report, trace_facts

    analysis = analyze_requests(parsed.profile.requests, parsed.timestamps, parsed.headers,
                                parsed.tensors)
    files = [s.name for s in parsed.profile.meta.sources]
    return build_triton_report(analysis, trace_facts(files, analysis, parsed.partial),
                               parsed.issues, title=f"Triton trace: {_title(parsed, traces)}")


def _title(parsed, traces: tuple[str, ...]) -> str:
    """What the user passed (base names only); a saved run's, as it was first reported."""
    if TITLE in parsed.profile.meta.extra:
        return parsed.profile.meta.extra[TITLE]
    names = [Path(t).name or t for t in traces]
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"


def _only_model(parsed, model: str):
    from ..analyze.requests import keep_keys, select_model
    from ..ingest.triton_trace import TRACE_TABLES
    from ..model import Profile

    models = sorted(set(parsed.headers["model"].astype(str)))
    if model not in models:
        raise BadInputError(f"no requests for model '{model}' in this trace",
                            f"Models in it: {', '.join(models)}")
    keys = select_model(parsed.headers, model)
    tables = {name: keep_keys(parsed.profile.tables[name], keys) for name in TRACE_TABLES}
    parsed.profile = Profile(tables=tables, meta=parsed.profile.meta)
    return parsed
