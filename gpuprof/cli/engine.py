"""``gpuprof engine MODEL.onnx``: run a model, profile it, write every report into one folder.

Thin: parse options, pick the backend, call the capture, build and write the report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..render.report import FORMATS

PHASE_LABELS = {"load": "loading model", "warmup": "warm-up", "timed": "timed pass",
                "profile_load": "loading profiling session", "profiled": "layer profile"}


@click.command("engine")
@click.argument("model", type=str)
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "onnxruntime"]), default="auto",
              show_default=True, help="auto: TensorRT when a TensorRT runtime and a GPU are usable, "
              "else ONNX Runtime.")
@click.option("--iterations", "-n", type=click.IntRange(min=1), default=None,
              help="Timed iterations. Default: auto, at least 10 and at least --duration seconds.")
@click.option("--duration", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Minimum seconds of timed runs when --iterations is not given.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed iterations before the timed pass.")
@click.option("--profile-iterations", type=click.IntRange(min=1), default=5, show_default=True,
              help="Iterations of the separate per-layer profiling pass.")
@click.option("--shapes", type=str, default=None, metavar="NAME:1x3x640x640[,...]",
              help="Input shapes for dynamic dims (a lone 1x3x640x640 for one-input models).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder. Default: gpuprof-out/<model name>/")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True,
              help="What to print on stdout (the folder always gets md, json and csv).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Layers shown in the terminal and Markdown tables.")
@click.option("--no-layer-profile", is_flag=True, help="Skip the per-layer profiling pass.")
def engine_command(model, backend, iterations, duration, warmup, profile_iterations, shapes,
                   out_dir, fmt, top, no_layer_profile):
    """Run MODEL (ONNX) on TensorRT or ONNX Runtime and report latency, layers and memory."""
    from ..capture import onnx_inputs
    from ..capture.ort.fallback import choose_backend

    model_path = Path(model)
    onnx_inputs.load_onnx(model_path)  # fail fast on a bad file, before any backend loads
    chosen, note = choose_backend(backend, tensorrt_wired=_tensorrt_runner() is not None)
    out_dir = out_dir or Path("gpuprof-out") / (model_path.stem or "model")
    config = _ort_config(model_path, iterations, duration, warmup, profile_iterations, shapes,
                         no_layer_profile, out_dir)
    profile = _capture(chosen, config)
    _write_and_print(profile, out_dir, fmt, top, note)


def _tensorrt_runner():
    """The TensorRT run path for this command; choose_backend decides whether it can run here."""
    return _run_tensorrt


def _run_tensorrt(config):
    """Build (cached) and profile on TensorRT in a child process, under nsys when installed."""
    import shutil

    from ..capture.trt.options import BuildOptions
    from ..capture.trt.pipeline import TrtRunConfig, run_tensorrt

    out = (config.raw_profile_path.parent if config.raw_profile_path else Path("gpuprof-out")) / "trt_run"
    trt_config = TrtRunConfig(
        model=config.model, out_dir=out, options=BuildOptions(shapes=dict(config.shapes)),
        iterations=config.iterations or 50, warmup=config.warmup,
        profile_iterations=config.profile_iterations, layer_profile=config.layer_profile,
        nsys=shutil.which("nsys") is not None)
    return run_tensorrt(trt_config)


def _ort_config(model_path, iterations, duration, warmup, profile_iterations, shapes,
                no_layer_profile, out_dir):
    from ..capture import onnx_inputs
    from ..capture.ort import OrtRunConfig

    return OrtRunConfig(model=model_path, iterations=iterations, min_seconds=duration,
                        warmup=warmup, shapes=onnx_inputs.parse_shapes(shapes),
                        layer_profile=not no_layer_profile, profile_iterations=profile_iterations,
                        raw_profile_path=out_dir / "onnxruntime_profile.json")


def _capture(chosen: str, config):
    from ..capture.ort import run_onnxruntime

    if chosen == "tensorrt":
        return _tensorrt_runner()(config)
    with _Progress() as progress:
        return run_onnxruntime(config, progress=progress)


def _write_and_print(profile, out_dir: Path, fmt: str, top: int, note: str | None) -> None:
    from ..render.engine_report import write_engine_outputs
    from ..render.report import render

    report, outputs = write_engine_outputs(profile, out_dir, top=top, backend_note=note)
    text = render(report, fmt, table=_csv_table(report) if fmt == "csv" else None, width=_width())
    click.echo(text, nl=not text.endswith("\n"))
    click.echo(f"Wrote {', '.join(outputs.written)} to {out_dir}/", err=True)
    for name, why in outputs.skipped.items():
        click.echo(f"Skipped {name}: {why}", err=True)
    if profile.meta.extra.get("partial"):
        click.echo(f"Interrupted: partial results written to {out_dir}/", err=True)
        # main() turns KeyboardInterrupt into exit status 130 (it ignores click.exceptions.Exit's)
        raise KeyboardInterrupt


def _csv_table(report) -> str:
    """CSV on stdout holds one table: the layers, or the iterations when there are no layers."""
    layers = report.section("layers")
    return "layers" if layers is not None and layers.table is not None else "iterations"


def _width() -> int:
    import shutil

    return max(shutil.get_terminal_size((120, 24)).columns, 80)


class _Progress:
    """A rich progress bar on a terminal's stderr; one plain line per phase elsewhere (logs)."""

    def __init__(self):
        self._bar = None
        self._tasks: dict[str, int] = {}
        self._interactive = sys.stderr.isatty()

    def __enter__(self):
        if self._interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        label = PHASE_LABELS.get(phase, phase)
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(label, total=total) if self._bar else 0
            if not self._bar:
                count = "" if phase.endswith("load") else (
                    f" ({total} iterations)" if total is not None else " (auto iterations)")
                click.echo(f"gpuprof: {label}{count}", err=True)
        if self._bar:
            self._bar.update(self._tasks[phase], completed=done, total=total)
