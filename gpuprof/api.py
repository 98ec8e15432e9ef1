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
    # The projection is the expensive step; one report asks for it several times per domain
    # (layer table, coverage, artefacts), so each domain's result is computed once per run.
    def attributed(self, domain: str | None = None) -> pd.DataFrame:
        """Kernels with the nvtx_ranges row they are attributed to (``kernel_ranges``)."""
        cache = self.__dict__.setdefault("_attributed_by_domain", {})
        if domain not in cache:
            from .analyze.layers import kernel_ranges

            cache[domain] = kernel_ranges(self, domain)
        return cache[domain]

    def is_tensorrt(self) -> bool:
        from .analyze.layers import is_tensorrt

        return is_tensorrt(self)

    @functools.cached_property
    def _layers(self) -> pd.DataFrame:
        from .analyze.layers import TENSORRT_DOMAIN, layer_table

        return layer_table(self, self.attributed(TENSORRT_DOMAIN))

    def layers(self) -> pd.DataFrame:
        return self._layers.copy()

    def gpu_time_by_range(self, domain: str | None = None) -> pd.DataFrame:
        from .analyze.layers import gpu_time_by_range

        return gpu_time_by_range(self, domain, self.attributed(domain))

    def nvtx_coverage(self, domain: str | None = None) -> float:
        from .analyze.layers import coverage

        return coverage(self.attributed(domain))

    # -- everything else `gpuprof nsys` reports -------------------------------------------
    def report(self, top: int | None = None):
        from .render.nsys_full import nsys_report

        return nsys_report(self, top=top)
