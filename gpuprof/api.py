"""The Python facade: ``gpuprof.load(path)`` returns a ``Run`` whose tables are DataFrames
and whose methods each delegate to one analysis or renderer.

    run = gpuprof.load("report.sqlite")      # or a .nsys-rep, or a saved .gpuprof
    run.kernels                              # DataFrame
    run.layers()                             # TensorRT layer bottleneck table
    run.report().sections                    # everything `gpuprof nsys` shows
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from .model import Profile
from .model.profile import SUFFIX


def load(path: str | Path, details: bool = False) -> Run:
    """Load a saved run or an nsys export; ``details`` also reads kernel launch configurations."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return Run.of(Profile.load(path))
    from .ingest.nsys import read_nsys

    return Run.of(read_nsys(path, details=details))


class Run(Profile):
    """A loaded run: the model's tables plus analysis methods."""

    @classmethod
    def of(cls, profile: Profile) -> Run:
        return cls(tables=profile.tables, meta=profile.meta)

    # -- NVTX projection and layers -------------------------------------------------------
    @functools.cached_property
    def _attributed(self) -> pd.DataFrame:
        from .analyze.layers import kernel_ranges

        return kernel_ranges(self)

    def is_tensorrt(self) -> bool:
        from .analyze.layers import is_tensorrt

        return is_tensorrt(self)

    def layers(self) -> pd.DataFrame:
        from .analyze.layers import layer_table

        return layer_table(self)

    def gpu_time_by_range(self, domain: str | None = None) -> pd.DataFrame:
        from .analyze.layers import gpu_time_by_range

        attributed = self._attributed if domain is None else None
        return gpu_time_by_range(self, domain, attributed)

    def nvtx_coverage(self, domain: str | None = None) -> float:
        from .analyze.layers import coverage, kernel_ranges

        return coverage(self._attributed if domain is None else kernel_ranges(self, domain))

    # -- everything else `gpuprof nsys` reports -------------------------------------------
    def report(self, top: int | None = None):
        from .render.nsys_full import nsys_report

        return nsys_report(self, top=top)
