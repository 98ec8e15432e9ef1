"""``gpuprof triton serve model.onnx``: serve an ONNX model on loopback until Ctrl-C.

Uses the tritonserver bundled in nvidia-pytriton with a python-backend model running ONNX
Runtime (CPU), so the load tests and trace tools have a real server to talk to.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

TRACE_LEVELS = ("TIMESTAMPS", "TENSORS")
HTTP_PORT, GRPC_PORT = 8000, 8001  # tritonserver's own defaults, which perf examples assume


@click.command("serve")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Model name on the server (default: the file name).")
@click.option("--http-port", type=int,
              help=f"HTTP port on 127.0.0.1 (default: {HTTP_PORT} when free, else a free one).")
@click.option("--grpc-port", type=int,
              help=f"gRPC port on 127.0.0.1 (default: {GRPC_PORT} when free, else a free one).")
@click.option("--trace-file", type=click.Path(dir_okay=False), help="Write a Triton trace here.")
@click.option("--trace-level", type=click.Choice(TRACE_LEVELS + ("OFF",)), default="TIMESTAMPS",
              show_default=True, help="OFF: trace file set, tracing switched on later "
                                      "(e.g. by gpuprof perf --trace).")
@click.option("--trace-rate", type=int, default=1, show_default=True,
              help="Trace one request in N.")
@click.option("--log-frequency", type=int, default=0, show_default=True,
              help="Write the trace every N traces (0: at shutdown).")
@click.option("--instances", type=int, default=1, show_default=True, help="Model instances.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="ONNX Runtime intra-op threads per instance.")
@click.option("--ort-profile", "ort_profile", type=click.Path(file_okay=False),
              help="Profile ONNX Runtime into this folder (per-node times per request; "
                   "gpuprof perf --trace reads them).")
@click.option("--dynamic-batching", is_flag=True,
              help="Let Triton batch requests (the ONNX model's first dim must be a free batch "
                   "dim); each batch runs as one ONNX Runtime call.")
@click.option("--max-batch-size", type=int, default=8, show_default=True,
              help="--dynamic-batching: rows per execution at most.")
@click.option("--max-queue-delay-us", type=int, default=0, show_default=True,
              help="--dynamic-batching: how long a request may wait for others to join it.")
@click.option("--max-seconds", type=float, default=0, help="Stop by itself after this long.")
def serve_command(model: str, name: str | None, http_port: int | None, grpc_port: int | None,
                  trace_file: str | None, trace_level: str, trace_rate: int, log_frequency: int,
                  instances: int, threads: int, ort_profile: str | None,
                  dynamic_batching: bool, max_batch_size: int, max_queue_delay_us: int,
                  max_seconds: float) -> None:
    """Serve MODEL (.onnx) with the bundled Triton on 127.0.0.1 until Ctrl-C."""
    from ..capture.triton_server import TraceConfig, serve_onnx, server_malloc

    batching = _batching(dynamic_batching, max_batch_size, max_queue_delay_us)

    trace = None
    if trace_file:
        trace = TraceConfig(Path(trace_file).resolve(), (trace_level,), trace_rate, log_frequency)
    click.echo("Starting tritonserver (about 10 s)...", err=True)
    with serve_onnx(model, name=name, http_port=http_port or _if_free(HTTP_PORT),
                    grpc_port=grpc_port or _if_free(GRPC_PORT), trace=trace,
                    instances=instances, intra_op_threads=threads, profile_dir=ort_profile,
                    batching=batching, keep_log=True) as server:
        click.echo(f"Serving '{server.model_name}'\n  HTTP  http://{server.http_url}\n"
                   f"  gRPC  {server.grpc_url}\n  log   {server.log_path}\n"
                   f"  malloc {server_malloc()[1]}")
        if batching:
            click.echo(f"  dynamic batching: up to {batching.max_batch_size} rows, queue delay "
                       f"{batching.max_queue_delay_us} µs (clients leave out the batch dim: "
                       "gpuprof perf --shape without it, -b sets it)")
        if ort_profile:
            click.echo(f"  ORT profiles {Path(ort_profile).resolve()}")
        if trace:
            click.echo(f"  trace {trace.file} ({trace_level}, 1 in {trace_rate})")
        if http_port is None and server.http_port != HTTP_PORT:
            click.echo(f"Port {HTTP_PORT} is in use: HTTP is on {server.http_port}.", err=True)
        click.echo(f"Run: {perf_command(model, server)}\nPress Ctrl-C to stop.", err=True)
        _wait(server, max_seconds)
    click.echo("Stopped.", err=True)


def _batching(enabled: bool, max_batch_size: int, max_queue_delay_us: int):
    from ..capture.triton_repo import Batching
    from ..errors import BadInputError

    if not enabled:
        if (max_batch_size, max_queue_delay_us) != (8, 0):
            raise BadInputError("--max-batch-size and --max-queue-delay-us need "
                                "--dynamic-batching", "Add --dynamic-batching")
        return None
    return Batching(max_batch_size, max_queue_delay_us).check()


def _if_free(port: int) -> int | None:
    """``port`` when nothing listens on it on 127.0.0.1, else None (the server picks one)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def perf_command(model: str, server) -> str:
    """The load test to run against this server, with a --shape for each variable input (gpuprof's
    default sizes, as ``gpuprof engine`` picks them) since perf cannot send -1 dims."""
    from ..capture import onnx_inputs

    specs = onnx_inputs.read_inputs(onnx_inputs.load_onnx(model))
    shapes = [f" --shape {r.spec.name}:{','.join(map(str, r.shape))}"
              for r in onnx_inputs.resolve_shapes(specs) if r.guessed_axes]
    return f"gpuprof perf -m {server.model_name} -u {server.http_url}{''.join(shapes)}"


def _wait(server, max_seconds: float) -> None:
    from ..errors import CaptureError

    deadline = time.monotonic() + max_seconds if max_seconds > 0 else None
    while deadline is None or time.monotonic() < deadline:
        if not server.running():
            raise CaptureError(f"tritonserver exited:\n{server.log_tail()}",
                               "Read the server log lines above")
        time.sleep(0.5)
