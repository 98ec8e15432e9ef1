"""perf_analyzer-style load generation against a Triton server (HTTP or gRPC).

``run_sweep(LoadSpec(...))`` measures each load level until stable and returns a
``SweepResult``; ``gpuprof.analyze.perf`` turns records into numbers and
``gpuprof.render.perf_report`` writes them. Needs ``tritonclient[http,grpc]``.
"""

from .options import LoadSpec, parse_range, parse_shape
from .runner import SweepResult, run_sweep

__all__ = ["LoadSpec", "SweepResult", "parse_range", "parse_shape", "run_sweep"]
