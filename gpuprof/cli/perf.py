"""``gpuprof perf``: load-test a Triton model the way perf_analyzer does, with p99.9 and traces.

Only parses options, runs ``gpuprof.pipeline.perf_run.run_perf`` with a live display on stderr,
and writes what ``gpuprof.render.perf_report`` lays out.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..capture.loadgen.options import STABILITY_PERCENTILES
from ..capture.loadgen.tracing import TRACED_PER_S_CAP
from ..errors import BadInputError, CaptureError


@click.command("perf")
@click.option("-m", "--model", "model", required=True, help="Model name on the server.")
@click.option("-x", "--model-version", default="", help="Model version (default: the server's).")
@click.option("-u", "--url", default="127.0.0.1:8000", show_default=True, help="Server HOST:PORT.")
@click.option("-i", "--protocol", type=click.Choice(["http", "grpc"]), default="http",
              show_default=True)
@click.option("--concurrency-range", help="start:end:step requests in flight (default 1).")
@click.option("--request-rate-range", help="start:end:step requests per second.")
@click.option("--request-distribution", type=click.Choice(["constant", "poisson"]),
              default="constant", show_default=True, help="Gaps between requests (rate mode).")
@click.option("--shape", "shapes", multiple=True, help="NAME:D1,D2,... for variable dims.")
@click.option("--input-data", default="random", show_default=True,
              help="random, zero, or a perf_analyzer JSON file.")
@click.option("-b", "--batch-size", default=1, show_default=True, type=int)
@click.option("--measurement-mode", type=click.Choice(["time_windows", "count_windows"]),
              default="time_windows", show_default=True)
@click.option("-p", "--measurement-interval", default=5000.0, show_default=True,
              help="Window length in ms (time_windows).")
@click.option("--measurement-request-count", default=50, show_default=True,
              help="Requests per window (count_windows).")
@click.option("-s", "--stability-percentage", default=10.0, show_default=True)
@click.option("--percentile", type=click.Choice([f"{q:g}" for q in STABILITY_PERCENTILES]),
              help="Stabilise on this latency percentile instead of the mean.")
@click.option("-r", "--max-trials", default=10, show_default=True,
              help="Windows per level at most.")
@click.option("--warmup", "warmup_ms", default=500.0, show_default=True,
              help="Warm-up per level in ms (not measured).")
@click.option("--max-threads", default=16, show_default=True,
              help="Request-rate mode: requests in flight at most.")
@click.option("--max-duration", default=600.0, show_default=True,
              help="The whole run stops after this many seconds.")
@click.option("--max-requests", default=5_000_000, show_default=True,
              help="The whole run stops after this many requests.")
@click.option("--request-timeout", default=30.0, show_default=True, help="Seconds per request.")
@click.option("--trace", is_flag=True,
              help="Trace the requests on the server and join each with its client side.")
@click.option("--trace-rate", default="auto", show_default=True,
              help=f"--trace: trace 1 in N requests; auto traces at most {TRACED_PER_S_CAP} a "
                   "second (tritonserver 2.51 risks a crash with each request it traces).")
@click.option("--trace-level", default="TIMESTAMPS", show_default=True,
              help="--trace: what Triton records per request: TIMESTAMPS, TENSORS (inputs and "
                   "outputs: names, types, shapes), or both as TIMESTAMPS,TENSORS.")
@click.option("-f", "csv_path", type=click.Path(dir_okay=False), help="perf_analyzer-style CSV.")
@click.option("--windows-csv", type=click.Path(dir_okay=False), help="Per-window time series CSV.")
@click.option("--trace-csv", type=click.Path(dir_okay=False),
              help="Joined per-request CSV (--trace).")
@click.option("--node-csv", type=click.Path(dir_okay=False),
              help="--trace against gpuprof triton serve --ort-profile: one row per request "
                   "and ONNX Runtime node.")
@click.option("--net", is_flag=True,
              help="Capture the TCP calls with eBPF (bpftrace, root) and join each request's "
                   "network path: client send, wire, server, wire, client receive.")
@click.option("--net-file", type=click.Path(dir_okay=False),
              help="Keep the eBPF capture here (--net; default: a temporary file).")
@click.option("--net-program", type=click.Choice(["auto", "tracepoint", "kprobe"]),
              default="auto", show_default=True, help="Which bpftrace program (--net).")
@click.option("--waterfall", type=click.Path(dir_okay=False),
              help="PNG of the slowest requests' paths (--net).")
@click.option("--chrome-trace", type=click.Path(dir_okay=False),
              help="Chrome/Perfetto trace of every traced request's path (--trace or --net; "
                   "with --server-nsys also its GPU kernels and TensorRT layers).")
@click.option("--server-nsys", type=click.Path(exists=True, dir_okay=False),
              help="--trace: an nsys export of the server made during the run; its GPU kernels "
                   "go to the request whose compute window holds them, by TensorRT layer.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Also write the report (.md, .json, .txt, .html).")
@click.option("--no-live", is_flag=True, help="No live display on stderr.")
def perf_command(**opts) -> None:
    """Load-test MODEL on a Triton server: throughput, latency percentiles, server breakdown."""
    _check_trace_needs(opts)
    spec = _spec(opts)
    with _net_file(opts) as net_file, _live_display(not opts["no_live"]) as progress:
        from ..pipeline.perf_run import run_perf

        run = run_perf(spec, progress=progress, net_file=net_file,
                       net_program=opts["net_program"], server_nsys=opts["server_nsys"])
        _write_outputs(run, opts)
    result = run.sweep
    if result.partial:
        hint = "The results above are partial"
        if result.server_lost and spec.trace:
            hint += (". While it traces, tritonserver 2.51 (the release checked) crashes or hangs "
                     "now and then: a use-after-free in its trace release, likelier the more "
                     "requests it traces (docs/BENCHMARKS.md). Restart it; --trace-rate N traces "
                     "fewer")
        raise CaptureError(f"the run stopped early ({result.reason})", hint)


def _spec(opts: dict):
    from ..capture.loadgen import LoadSpec, parse_range, parse_shape

    if opts["concurrency_range"] and opts["request_rate_range"]:
        raise BadInputError("--concurrency-range and --request-rate-range exclude each other",
                            "Pick one mode")
    rate = opts["request_rate_range"]
    return LoadSpec(
        model=opts["model"], url=opts["url"], protocol=opts["protocol"],
        model_version=opts["model_version"],
        mode="request_rate" if rate else "concurrency",
        levels=parse_range(rate, integer=False) if rate else
        parse_range(opts["concurrency_range"] or "1"),
        distribution=opts["request_distribution"], batch_size=opts["batch_size"],
        shapes=dict(parse_shape(s) for s in opts["shapes"]), input_data=opts["input_data"],
        measurement_mode=opts["measurement_mode"],
        measurement_interval_ms=opts["measurement_interval"],
        measurement_request_count=opts["measurement_request_count"],
        stability_pct=opts["stability_percentage"], max_trials=opts["max_trials"],
        percentile=float(opts["percentile"]) if opts["percentile"] else None,
        warmup_ms=opts["warmup_ms"], max_threads=opts["max_threads"],
        max_duration_s=opts["max_duration"], max_requests=opts["max_requests"],
        request_timeout_s=opts["request_timeout"], trace=opts["trace"],
        trace_rate=_trace_rate(opts["trace_rate"]),
        trace_level=_trace_level(opts["trace_level"]),
    ).validate()


def _trace_level(text: str) -> tuple[str, ...]:
    from ..capture.loadgen.options import TRACE_LEVELS

    levels = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    if not levels or any(level not in TRACE_LEVELS for level in levels):
        raise BadInputError(f"--trace-level must be TIMESTAMPS or TIMESTAMPS,TENSORS, not "
                            f"'{text}'", "E.g. --trace-level TIMESTAMPS,TENSORS")
    if "TIMESTAMPS" not in levels:
        raise BadInputError("--trace joins each request by its timestamps: TENSORS alone has "
                            "none", "Use --trace-level TIMESTAMPS,TENSORS")
    return levels


def _check_trace_needs(opts: dict) -> None:
    if opts["server_nsys"] and not opts["trace"]:
        raise BadInputError("--server-nsys needs --trace (kernels go to requests by their "
                            "traced compute windows)", "Add --trace")
    if opts["node_csv"] and not opts["trace"]:
        raise BadInputError("--node-csv needs --trace", "Add --trace")
    if opts["trace_level"].upper() != "TIMESTAMPS" and not opts["trace"]:
        raise BadInputError("--trace-level needs --trace", "Add --trace")
    if opts["net"] and opts["protocol"] == "grpc":
        raise BadInputError("--net ties TCP calls to requests by each connection's client "
                            "port, which the gRPC client hides", "Use -i http with --net")


def _trace_rate(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadInputError(f"--trace-rate must be 'auto' or a whole number >= 1, not '{text}'",
                            "E.g. --trace-rate 10 traces 1 request in 10")
    return int(text)


def _net_file(opts: dict):
    """Where the eBPF capture goes: the user's file, or a temporary one removed afterwards."""
    import contextlib
    import tempfile

    if not opts["net"]:
        for flag in ("net_file", "waterfall"):
            if opts[flag]:
                raise BadInputError(f"--{flag.replace('_', '-')} needs --net",
                                    "Add --net (eBPF capture, as root)")
        if opts["chrome_trace"] and not opts["trace"]:
            raise BadInputError("--chrome-trace needs --trace or --net",
                                "Add --trace (server stages) or --net (eBPF capture, as root)")
        return contextlib.nullcontext(None)
    if opts["net_file"]:
        return contextlib.nullcontext(Path(opts["net_file"]))

    @contextlib.contextmanager
    def temporary():
        with tempfile.TemporaryDirectory(prefix="gpuprof-net-") as tmp:
            yield Path(tmp) / "net.txt"
    return temporary()


def _live_display(enabled: bool):
    from .perf_live import LiveDisplay

    return LiveDisplay(enabled)


def _write_outputs(run, opts: dict) -> None:
    from ..pipeline.sweep import level_table
    from ..render import perf_report
    from ..render.report import render, write_report

    result = run.sweep
    table = level_table(result)
    joined, notes = run.joined, _notes(result, table)
    report = perf_report.perf_report(table, _facts(result), notes, result.spec.mode, joined)
    node_rows = _add_nodes(report, run, opts)
    written = _add_net(report, run, opts, node_rows)
    if run.kernels is not None and joined is not None:
        from ..render.request_path import kernel_section

        k = run.kernels
        report.add(kernel_section(k.found, k.clock, k.export_name, len(joined)))
    click.echo(render(report, "terminal"), nl=False)
    if opts["csv_path"] and not table.empty:
        written.append(perf_report.write_perf_csv(table, result.spec.mode, opts["csv_path"]))
    if opts["windows_csv"]:
        written.append(perf_report.write_windows_csv(result.windows_table(), opts["windows_csv"]))
    per_request = run.request_table()
    if opts["trace_csv"] and per_request is not None:
        written.append(_write_frame(per_request, opts["trace_csv"]))
    if opts["node_csv"] and node_rows is not None:
        from ..render.request_nodes import write_node_csv

        written.append(write_node_csv(node_rows, opts["node_csv"]))
    if opts["output"]:
        _add_html_plots(report, result, opts)
        written.append(write_report(report, opts["output"]))
    for path in written:
        click.echo(f"Wrote {path}", err=True)


def _add_html_plots(report, result, opts: dict) -> None:
    """An HTML report's plots: each window's throughput, and the waterfall when written."""
    from ..render.report import format_for

    if format_for(opts["output"], None) != "html":
        return
    from ..render.html_plots import window_throughput
    from ..render.html_visuals import plot_file

    windows = window_throughput(result.windows_table())
    report.visuals += [windows] if windows is not None else []
    if opts["waterfall"] and Path(opts["waterfall"]).exists():
        report.visuals.append(plot_file(opts["waterfall"], "The slowest requests' paths"))


def _add_nodes(report, run, opts: dict):
    """The ONNX Runtime nodes section; returns the request x node rows (or None)."""
    from ..render import request_nodes
    from ..render.report import Section

    if run.nodes is None:
        if opts["node_csv"]:
            report.add(Section("ort_nodes", "Inside compute: ONNX Runtime nodes", notes=[
                "no node times: the model writes no ONNX Runtime profile (serve it with "
                "gpuprof triton serve --ort-profile DIR)"]))
        return None

    report.add(request_nodes.nodes_section(run.nodes))
    if run.nodes.result is None:
        return None
    return request_nodes.node_rows(run.nodes.result, run.requests)


def _add_net(report, run, opts: dict, node_rows=None) -> list[Path]:
    """The per-request path sections, and the waterfall PNG and trace when asked for (the
    trace also without eBPF, from the server trace alone)."""
    from ..analyze.net_path import slowest
    from ..render import request_path, request_trace

    frame, segments = run.path()
    written = []
    if opts["chrome_trace"] and segments:
        kernels = None if run.kernels is None else (run.kernels.placed, run.kernels.members)
        written.append(request_trace.write_request_trace(opts["chrome_trace"], frame, segments,
                                                           node_rows, run.joined, kernels))
    if run.net is None:
        return written
    net = run.net
    for section in request_path.path_sections(frame, segments, net.match, net.clocks,
                                              net.facts):
        report.add(section)
    if opts["waterfall"] and not frame.empty:
        written.append(request_path.plot_waterfall(slowest(frame, 20), segments,
                                                   opts["waterfall"]))
    if opts["net_file"]:
        written.append(net.capture_path)
    return written


def _write_frame(frame, path) -> Path:
    from ..fsutil import atomic_write

    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    return Path(path)


def _facts(result) -> dict[str, str]:
    from ..analyze.perf import STABILITY_WINDOWS, stable_latency_label

    spec, model = result.spec, result.model
    shapes = "; ".join(f"{k} [{','.join(map(str, v))}]" for k, v in result.shapes.items())
    window = (f"{spec.measurement_interval_ms:g} ms" if spec.measurement_mode == "time_windows"
              else f"{spec.measurement_request_count} requests")
    facts = {"Server": f"{spec.url} ({spec.protocol})", "Model": f"{model.name} v{model.version}",
             "Inputs": shapes, "Batch size": str(spec.batch_size),
             "Windows": f"{spec.measurement_mode}, {window}, stable within "
                        f"{spec.stability_pct:g}% over {STABILITY_WINDOWS} on throughput and "
                        f"{stable_latency_label(spec.percentile)} latency, "
                        f"at most {spec.max_trials}",
             "Latency": "client-side, ms; client = send + receive in the client; net+srv, "
                        "queue, compute: per-request averages (statistics extension), as in "
                        "perf_analyzer's CSV"}
    if result.partial:
        facts["Status"] = f"PARTIAL: {result.reason}"
    return facts


def _notes(result, table) -> list[str]:
    from ..analyze.stats import unreliable_percentiles

    notes = []
    for row in table.to_dict("records"):
        weak = unreliable_percentiles(int(row["samples"]))
        if weak:
            notes.append(f"level {row['level']:g}: {', '.join(weak)} rest on fewer than 10 "
                         f"samples beyond them ({int(row['samples'])} samples)")
        if not row["complete"]:
            notes.append(f"level {row['level']:g}: the run stopped during this level; its "
                         f"numbers come from the {row['windows']} window(s) measured")
        elif not row["stable"]:
            notes.append(f"level {row['level']:g}: not stable within "
                         f"{result.spec.stability_pct:g}% after {row['windows']} windows")
        if row["errors"]:
            notes.append(f"level {row['level']:g}: {row['errors']} requests failed")
        if row.get("delayed", 0):
            notes.append(f"level {row['level']:g}: {row['delayed']} requests started over 1 ms "
                         "late (raise --max-threads or lower the rate)")
    sampled = [f"{lv.level:g}: 1 in {lv.trace_rate}" for lv in result.levels
               if lv.trace_rate and lv.trace_rate > 1]
    if sampled:
        notes.append(f"the server traced a sample of the requests ({', '.join(sampled)}), "
                     f"to stay under {TRACED_PER_S_CAP} traced requests a second: "
                     "tritonserver 2.51 risks a crash with each request it traces (a "
                     "use-after-free in its trace release, docs/BENCHMARKS.md); sampling makes "
                     "that rare, not impossible (tools/repro/perf_trace_soak.py); execution sizes "
                     "and compute shares then count traced requests only")
    if result.trace_error:
        notes.append(f"trace not collected: {result.trace_error}")
    notes += [f"trace: {issue}" for issue in result.trace_issues]
    return notes
