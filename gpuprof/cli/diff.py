"""`gpuprof diff BASE NEW`: two runs compared per layer, kernel, stage and latency, with gates."""

from __future__ import annotations

from pathlib import Path

import click

from ..render.formats import FORMATS


@click.command("diff")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--fail-on", "gates", multiple=True,
              help="Exit 1 when a change passes this gate, e.g. 'layer.total>+10%' or 'latency.p99>+5%' "
                   "(repeatable; noise, by bootstrap, never trips one).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the diff here; the format follows the extension (.md for a PR comment, .json, .csv, .txt, .html).")
@click.option("--format", "fmt", type=click.Choice([*FORMATS]), help="Output format (default: from --output, else terminal).")
@click.option("--table", help="With CSV: which table to write (layer, range, kernel, stage, latency, gates).")
@click.option("--top", type=int, default=20, show_default=True, help="Rows per table in terminal/Markdown views.")
def diff_command(base, new, gates, output, fmt, table, top):
    """Compare two runs: saved runs (.gpuprof), nsys exports, trtexec runs (a folder or the
    profile JSON), Triton traces or load-test CSVs (perf_analyzer -f, model_analyzer). Deltas are absolute and in %, with significance from the
    per-call samples."""
    from ..analyze.diff import compare
    from ..analyze.diff_gates import evaluate, parse_gate
    from ..analyze.diff_samples import run_samples
    from ..ingest.diff_inputs import read_diff_input
    from ..render.diff_report import diff_json, diff_report, offending_text
    from ..render.report import format_for, render

    parsed = [parse_gate(text) for text in gates]   # a bad gate fails before any file is read
    runs = [read_diff_input(path) for path in (base, new)]
    labels = _labels(base, new)
    samples = [run_samples(run.profile, label, run.formats, run.summaries) for run, label in zip(runs, labels)]
    diff = compare(*samples)
    results = [evaluate(gate, diff) for gate in parsed]
    chosen = format_for(output, fmt)
    text = diff_json(diff, results) if chosen == "json" else render(
        diff_report(diff, results, top), chosen, table=table, width=120 if output else None)
    _emit(text, output)
    tripped = [r for r in results if r.tripped]
    for result in tripped:
        for _, line in result.offending.iterrows():
            click.echo(f"FAIL {result.gate.text}: {line['name']}: {offending_text(line)}", err=True)
    if tripped:
        raise click.exceptions.Exit(1)


def _labels(base: Path, new: Path) -> list[str]:
    if base.name != new.name:
        return [base.name, new.name]
    return [str(base), str(new)]  # same base name: the paths tell them apart


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    from ..fsutil import atomic_write

    with atomic_write(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"Wrote {output}", err=True)
