"""`gpuprof net`: capture TCP traffic with bpftrace, or report on a saved capture.

``gpuprof net [--port P ...] [--pid PID] [--duration S] [-o net.txt]`` captures (as root),
printing the seed tracer's table live, until --duration or Ctrl-C; the capture is kept in the
``-o`` file and a per-connection summary follows. ``gpuprof net FILE`` parses a saved capture
(gpuprof's layout or the seed's) and reports per-connection traffic; there ``-o`` is the
report (.md .csv .json .txt .html) and --port/--pid narrow the report.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import BadInputError, CaptureError
from ..render.formats import EXTENSIONS, FORMATS

POLL_S = 0.1


@click.command("net")
@click.argument("capture_file", required=False, type=click.Path(path_type=Path))
@click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True,
              help="Only connections with this local or remote TCP port (repeatable).")
@click.option("--pid", "pids", type=click.IntRange(min=1), multiple=True,
              help="Only this process's calls (repeatable).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="Capture for this many seconds (default: until Ctrl-C).")
@click.option("--program", type=click.Choice(["auto", "tracepoint", "kprobe"]), default="auto",
              show_default=True, help="Which bpftrace program captures (auto picks tracepoints where "
                                      "the kernel has them, else kprobes).")
@click.option("-q", "--quiet", is_flag=True, help="Capture without printing each event.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Capturing: the capture file (text; default gpuprof-net-<date>-<time>.txt). "
                   "With FILE: the report, its format from the extension (.md .csv .json .txt .html).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              help="With FILE: the report's format (default: from -o's extension, else terminal).")
@click.option("--table", help="With FILE and CSV: which table to write (connections).")
def net_command(capture_file, ports, pids, duration, program, quiet, output, fmt, table) -> None:
    """Capture TCP send/recv per connection with eBPF, or analyse a saved capture (FILE).

    Capturing needs root and bpftrace; it prints each event live and, at --duration or
    Ctrl-C, the traffic per connection."""
    if capture_file is not None:
        if duration is not None or program != "auto" or quiet:
            raise BadInputError("--duration, --program and --quiet apply to a live capture, not to FILE",
                                "Drop them, or drop FILE to capture")
        _report_file(capture_file, ports, pids, output, fmt, table)
        return
    if fmt or table:
        raise BadInputError("--format and --table apply to a saved capture's report",
                            "Capture first, then run: gpuprof net CAPTURE -o report.md")
    _capture(ports, pids, duration, program, quiet, _capture_path(output))


def _capture_path(output: Path | None) -> Path:
    if output is None:
        return Path(time.strftime("gpuprof-net-%Y%m%d-%H%M%S.txt"))
    if output.suffix.lower() in EXTENSIONS and output.suffix.lower() != ".txt":
        raise BadInputError(f"while capturing, -o names the capture (a text file), not a "
                            f"{output.suffix} report", "Use -o net.txt, then: gpuprof net net.txt -o "
                            f"report{output.suffix}")
    return output


def _capture(ports, pids, duration, program, quiet, out: Path) -> None:
    from ..capture.net import NetCapture

    capture = NetCapture(ports=list(ports), pids=list(pids), out=out, program=program)
    capture.start()
    click.echo(f"Capturing with the {capture.program_ran} program into {out}"
               f"{'' if duration else '; Ctrl-C to stop'}.", err=True)
    interrupted = ended_by_itself = False
    try:
        _follow(capture, duration, quiet)
        ended_by_itself = not capture.running()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        result = capture.stop()
    assert result is not None
    _echo_lines(capture.new_lines(), quiet)
    if interrupted:
        click.echo("Stopped by Ctrl-C.", err=True)
    _report_file(out, (), (), None, None, None)
    click.echo(f"Capture kept in {out} ({result.events_written:,} events, "
               f"{result.lost_events:,} lost).", err=True)
    if ended_by_itself:
        raise CaptureError(f"bpftrace stopped by itself (exit code {result.exit_code}): "
                           f"{'; '.join(result.warnings) or 'no message'}",
                           f"What it captured until then is in {out} and summarised above")


def _follow(capture, duration: float | None, quiet: bool) -> None:
    """Print new lines until ``duration`` has passed or bpftrace ends."""
    deadline = time.monotonic() + duration if duration else None
    while capture.running() and (deadline is None or time.monotonic() < deadline):
        _echo_lines(capture.new_lines(), quiet)
        time.sleep(POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic())))


def _echo_lines(lines: list[str], quiet: bool) -> None:
    from .. import bpf

    for line in lines:
        if match := bpf.LOST_LINE.match(line):
            click.echo(f"warning: bpftrace lost {match.group(1)} events", err=True)
        elif not quiet and (bpf.EVENT_LINE.match(line) or line.startswith(bpf.COLUMNS[0] + " ")):
            click.echo(line)


def _report_file(path: Path, ports, pids, output, fmt, table) -> None:
    from ..analyze.net import connection_traffic, filter_events
    from ..ingest.net_capture import read_net_capture
    from ..render.net_report import build_net_report
    from ..render.report import format_for, render, write_report

    events, facts = read_net_capture(path)
    events = filter_events(events, tuple(ports), tuple(pids))
    report = build_net_report(connection_traffic(events), facts, path.name)
    if ports or pids:
        report.facts["Events"] = f"{len(events):,} of {facts.events:,} in the file"
        report.facts["Report filter"] = "; ".join(
            p for p in (f"ports {', '.join(map(str, ports))}" if ports else "",
                        f"pids {', '.join(map(str, pids))}" if pids else "") if p)
    if output:
        click.echo(f"Wrote {write_report(report, output, fmt, table)}", err=True)
    else:
        click.echo(render(report, format_for(None, fmt), table=table), nl=False)
