"""``gpuprof engine MODEL.onnx``: run a model, profile it, write every report into one folder.

Thin: parse options, pick the backend, call the capture, build and write the report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import BadInputError
from ..render.formats import FORMATS

BACKEND_NOTE = "backend_note"  # meta.extra key: why this backend ran, shown again on reopening
NO_NSYS = "nsys (Nsight Systems) is not on PATH"
PHASE_LABELS = {"load": "loading model", "warmup": "warm-up", "timed": "timed pass",
                "profile_load": "loading profiling session", "profiled": "layer profile"}


@dataclass(frozen=True)
class RunArgs:
    """The run options as the user gave them; None where not given, so that each backend can
    apply its own default."""

    model: Path
    out_dir: Path
    iterations: int | None = None
    duration: float | None = None
    warmup: int | None = None
    profile_iterations: int | None = None
    shapes: str | None = None
    layer_profile: bool = True


@click.command("engine")
@click.argument("model", type=str, metavar="MODEL.onnx|RUN.gpuprof")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "onnxruntime"]), default="auto",
              show_default=True, help="auto: TensorRT when a TensorRT runtime and a GPU are usable, "
              "else ONNX Runtime.")
@click.option("--iterations", "-n", type=click.IntRange(min=1), default=None,
              help="Timed iterations. Default: auto, at least 10 and at least --duration seconds "
              "(on TensorRT without --duration: 50).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Minimum seconds of timed runs when --iterations is not given. Default: 2.")
@click.option("--warmup", type=click.IntRange(min=0), default=None,
              help="Untimed iterations before the timed pass. Default: 5 on ONNX Runtime, "
              "10 on TensorRT.")
@click.option("--profile-iterations", type=click.IntRange(min=1), default=None,
              help="Iterations of the separate per-layer profiling pass. Default: 5 on ONNX "
              "Runtime, 10 on TensorRT.")
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
    """Run MODEL (ONNX) on TensorRT or ONNX Runtime and report latency, layers and memory.
    Given a saved engine run (a folder's run.gpuprof), print its report again."""
    from ..capture import onnx_inputs
    from ..capture.ort.fallback import choose_backend
    from ..model.run_kind import is_saved_run

    model_path = Path(model)
    if is_saved_run(model_path):
        _reopen(model_path, out_dir, fmt, top)
        return
    onnx_inputs.load_onnx(model_path)  # fail fast on a bad file, before any backend loads
    chosen, note = choose_backend(backend)
    out_dir = out_dir or Path("gpuprof-out") / (model_path.stem or "model")
    args = RunArgs(model_path, out_dir, iterations, duration, warmup, profile_iterations, shapes,
                   layer_profile=not no_layer_profile)
    profile = _run_tensorrt(args) if chosen == "tensorrt" else _run_onnxruntime(args)
    if note:
        profile.meta.extra[BACKEND_NOTE] = note  # so the saved run's report says it too
    _write_and_print(profile, out_dir, fmt, top, note)


def _reopen(path: Path, out_dir: Path | None, fmt: str, top: int) -> None:
    """The report of a saved engine run; with -o, every file of the run written there again."""
    from ..model import Profile
    from ..model.run_kind import require_command
    from ..render.engine_report import build_engine_report
    from ..render.report import render

    if not path.is_file():
        raise BadInputError(f"{path} does not exist", "Pass the run.gpuprof an engine run wrote")
    profile = Profile.load(path)
    require_command(profile.meta, path.name, "engine")
    note = profile.meta.extra.get(BACKEND_NOTE)
    if out_dir is not None:
        _write_and_print(profile, out_dir, fmt, top, note)
        return
    from ..api import Run

    report = build_engine_report(Run.of(profile), top, note)
    # a terminal's own width; piped, the names stay whole
    text = render(report, fmt, table=_csv_table(report) if fmt == "csv" else None)
    click.echo(text, nl=not text.endswith("\n"))


def _run_tensorrt(args: RunArgs):
    """Build (cached) and profile on TensorRT in a child process, under nsys when installed."""
    import shutil

    from ..pipeline.engine_run import run_tensorrt

    return run_tensorrt(trt_run_config(args, nsys_available=shutil.which("nsys") is not None))


def _run_onnxruntime(args: RunArgs):
    from ..pipeline.engine_run import run_onnxruntime

    with _Progress() as progress:
        return run_onnxruntime(ort_run_config(args), progress=progress)


def trt_run_config(args: RunArgs, nsys_available: bool):
    """The TensorRT run for these options; TensorRT's own defaults (``TrtRunConfig``) where the
    user gave none, not ONNX Runtime's."""
    from ..capture import onnx_inputs, timed_count
    from ..capture.trt.options import BuildOptions
    from ..capture.trt.pipeline import TrtRunConfig

    count = timed_count.requested(args.iterations, args.duration, TrtRunConfig.iterations)
    return TrtRunConfig(model=args.model, out_dir=args.out_dir / "trt_run",
                        options=BuildOptions(shapes=onnx_inputs.parse_shapes(args.shapes)),
                        iterations=count.iterations, min_seconds=count.min_seconds,
                        layer_profile=args.layer_profile, nsys=nsys_available,
                        **_given(warmup=args.warmup, profile_iterations=args.profile_iterations,
                                 no_nsys_reason=None if nsys_available else NO_NSYS))


def ort_run_config(args: RunArgs):
    """The ONNX Runtime run for these options; its own defaults (``OrtRunConfig``) elsewhere."""
    from ..capture import onnx_inputs, timed_count
    from ..capture.ort import OrtRunConfig

    count = timed_count.requested(args.iterations, args.duration, OrtRunConfig.iterations)
    return OrtRunConfig(model=args.model, iterations=count.iterations,
                        min_seconds=count.min_seconds,
                        shapes=onnx_inputs.parse_shapes(args.shapes),
                        layer_profile=args.layer_profile,
                        raw_profile_path=args.out_dir / "onnxruntime_profile.json",
                        **_given(warmup=args.warmup, profile_iterations=args.profile_iterations))


def _given(**options) -> dict:
    """Only the options the user gave, so the config's defaults fill the rest."""
    return {name: value for name, value in options.items() if value is not None}


def _write_and_print(profile, out_dir: Path, fmt: str, top: int, note: str | None) -> None:
    from ..render.report import render
    from .engine_outputs import write_engine_outputs

    report, outputs = write_engine_outputs(profile, out_dir, top=top, backend_note=note)
    # a terminal's own width; piped, the names stay whole
    text = render(report, fmt, table=_csv_table(report) if fmt == "csv" else None)
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
