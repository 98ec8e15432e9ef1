"""``gpuprof build MODEL.onnx``: build (or find in the cache) a TensorRT engine, trtexec-style.

Only parses options, calls ``gpuprof.capture.trt.build`` and renders: a progress bar on stderr
fed by TensorRT's progress monitor, then one summary line on stdout.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click

SHAPES_HELP = "NAME:DIMS[,NAME:DIMS...], dims joined by 'x' (e.g. x:1x3x640x640)."


@click.command("build")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fp16", is_flag=True, help="Allow FP16 kernels (full TensorRT only).")
@click.option("--bf16", is_flag=True, help="Allow BF16 kernels (full TensorRT only).")
@click.option("--int8", is_flag=True, help="Allow INT8 kernels (full TensorRT only).")
@click.option("--best", is_flag=True, help="Allow every precision (as trtexec --best).")
@click.option("--shapes", multiple=True, help=f"Fixed input shapes: {SHAPES_HELP}")
@click.option("--min-shapes", multiple=True, help=f"Smallest shapes of dynamic inputs: {SHAPES_HELP}")
@click.option("--opt-shapes", multiple=True, help=f"Shapes to optimise for: {SHAPES_HELP}")
@click.option("--max-shapes", multiple=True, help=f"Largest shapes of dynamic inputs: {SHAPES_HELP}")
@click.option("--workspace", type=click.IntRange(min=1), metavar="MiB",
              help="Workspace memory pool limit in MiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path),
              help="Timing cache file to read and update (ignored by TensorRT-RTX).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Engine cache folder [default: $GPUPROF_ENGINE_CACHE, else "
                   "$XDG_CACHE_HOME/gpuprof/engines (~/.cache/gpuprof/engines)].")
@click.option("--force", is_flag=True, help="Rebuild even when the cache holds this engine.")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@click.option("--verbose", is_flag=True, help="Show TensorRT's warnings and errors.")
def build_command(model: Path, fp16: bool, bf16: bool, int8: bool, best: bool,
                  shapes: tuple[str, ...], min_shapes: tuple[str, ...], opt_shapes: tuple[str, ...],
                  max_shapes: tuple[str, ...], workspace: int | None, timing_cache: Path | None,
                  cache_dir: Path | None, force: bool, no_progress: bool, verbose: bool) -> None:
    """Build a TensorRT engine from MODEL (ONNX) with DETAILED profiling verbosity and cache it.

    A dynamic input without --shapes/--min-shapes/... is built for one default shape: batch 1,
    640 for the height and width of image-like inputs, 128 for any other dynamic dimension.
    """
    from ..capture.trt.build import build_engine
    from ..capture.trt.options import BuildOptions, parse_shapes

    options = BuildOptions(fp16=fp16, bf16=bf16, int8=int8, best=best, shapes=parse_shapes(shapes),
                           min_shapes=parse_shapes(min_shapes), opt_shapes=parse_shapes(opt_shapes),
                           max_shapes=parse_shapes(max_shapes), workspace_mib=workspace)
    console = _stderr_console()
    log = (lambda severity, msg: console.print(f"[TensorRT {severity}] {msg}", markup=False,
                                               highlight=False)) if verbose else None
    with PhaseBars(console, enabled=not no_progress) as bars:
        result = build_engine(model, options, cache_dir=cache_dir, force=force,
                              timing_cache=timing_cache, progress=bars.listener, log=log)
    for note in result.notes:
        console.print(f"Note: {note}", markup=False, highlight=False)
    click.echo(_summary(result))


def _summary(result: Any) -> str:
    side = result.sidecar
    layers = f"{side['layer_count']} {'engine' if side['layer_info_kind'] == 'engine_inspector' else 'network'} layers"
    size = f"{side['plan_bytes'] / 1e6:.1f} MB"
    what = (f"Cache hit ({result.seconds:.2f} s)" if result.cache_hit
            else f"Built in {side['build_seconds']:.2f} s ({result.seconds:.2f} s in all)")
    tensorrt = f"{side['tensorrt']['module']} {side['tensorrt']['version']}"
    return f"{what}: {result.plan} ({size}, {layers}, {tensorrt})"


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class PhaseBars:
    """One rich progress bar per open TensorRT build phase; finished phases disappear."""

    def __init__(self, console: Any, enabled: bool = True):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                  transient=True, disable=not (enabled and console.is_terminal))
        self._tasks: dict[str, Any] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> PhaseBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def listener(self, event: str, phase: str, parent: str | None, value: int) -> None:
        with self._lock:
            if event == "start":
                depth = self._depth.get(parent, -1) + 1 if parent else 0
                self._depth[phase] = depth
                self._tasks[phase] = self._progress.add_task("  " * depth + phase, total=value)
            elif event == "step" and phase in self._tasks:
                self._progress.update(self._tasks[phase], completed=value + 1)
            elif event == "finish" and phase in self._tasks:
                self._progress.remove_task(self._tasks.pop(phase))
