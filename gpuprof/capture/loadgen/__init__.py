"""perf_analyzer-style load generation against a Triton server (HTTP or gRPC).

``measure_sweep(LoadSpec(...), analysis)`` measures each load level until stable and returns a
``SweepResult``; ``gpuprof.pipeline.sweep.run_sweep`` hands it the analysis
(``gpuprof.analyze.perf`` turns records into numbers) and ``gpuprof.render.perf_report``
writes them. Needs ``tritonclient[http,grpc]``.
"""

from .options import LoadSpec, parse_range, parse_shape

__all__ = ["LoadSpec", "SweepResult", "measure_sweep", "parse_range", "parse_shape"]


def __getattr__(name: str):
    # the runner (pandas, numpy) loads on first use: `gpuprof perf --help` reads only options
    if name in ("SweepResult", "measure_sweep"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
