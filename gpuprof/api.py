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

import numpy as np
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


# Bump when the NVTX projection's result for the same tables changes: saved attributions made
# by another version are then ignored and recomputed.
ATTRIBUTION_VERSION = 2  # 2: with kernel durations


# Bump when gpu_time_by_range's table for the same attribution changes.
RANGE_TABLE_VERSION = 1

# Bump when any `gpuprof nsys` section's analysis table (kernel, NVTX, copy, API, GPU, stream,
# gap and memory summaries), the time zero or the NVTX coverage changes for the same tables:
# a saved run's stored ones are then ignored and recomputed.
SECTION_TABLES_VERSION = 1


def _attribution_name(domain: str | None) -> str:
    return _domain_member("attribution", domain)


def _range_table_name(domain: str | None) -> str:
    return _domain_member("ranges", domain)


def _section_name(name: str) -> str:
    return f"section_{name}"


def _domain_member(kind: str, domain: str | None) -> str:
    # the domain goes into a zip member name as hex: any user string is safe there
    return f"{kind}_all" if domain is None else f"{kind}_{domain.encode().hex()}"


def _narrow(values: np.ndarray) -> np.ndarray:
    """int32 where every value fits (halves what a saved run stores and decodes)."""
    fits = len(values) == 0 or (values.min() >= -(2**31) and values.max() < 2**31)
    return values.astype(np.int32) if fits else values


class Run(Profile):
    """A loaded run: the model's tables plus analysis methods."""

    @classmethod
    def of(cls, profile: Profile) -> Run:
        return cls(tables=profile.tables, meta=profile.meta)

    # -- NVTX projection and layers -------------------------------------------------------
    # The projection is the expensive step; one report asks for it several times per domain
    # (layer table, coverage, artefacts), so each domain's result is computed once per run.
    def attributed(self, domain: str | None = None) -> pd.DataFrame:
        """Kernels with the nvtx_ranges row they are attributed to (``kernel_ranges``).

        A saved run may hold this attribution already (see ``save``): then it is read, not
        recomputed, so re-analysing a saved run skips the NVTX projection."""
        cache = self._attributed_by_domain
        if domain not in cache:
            from .analyze.layers import kernel_ranges

            saved = self.derived(_attribution_name(domain), ATTRIBUTION_VERSION)
            if saved is not None and len(saved) != self.num_rows("kernels"):
                saved = None  # not this run's kernels: recompute rather than misattribute
            if saved is None:
                cache[domain] = kernel_ranges(self, domain)
            else:
                cache[domain] = kernel_ranges(self, domain, saved["range_row"].to_numpy(),
                                              saved["duration_ns"].to_numpy())
        return cache[domain]

    @property
    def _attributed_by_domain(self) -> dict:
        return self.__dict__.setdefault("_attributed_cache", {})

    # -- finished section tables ----------------------------------------------------------
    # A report's sections each aggregate a whole table (millions of kernels); the results are
    # small, so ``save`` stores them and a saved run's report decodes no event at all.
    @property
    def _section_tables(self) -> dict[str, pd.DataFrame]:
        return self.__dict__.setdefault("_section_table_cache", {})

    def section_table(self, name: str, compute) -> pd.DataFrame:
        """The analysis table of report section ``name``: stored in a saved run, else
        ``compute()``; computed once per run either way, and kept by ``save``."""
        cache = self._section_tables
        if name not in cache:
            saved = self.derived(_section_name(name), SECTION_TABLES_VERSION)
            cache[name] = compute() if saved is None else saved
        return cache[name]

    def _stored_number(self, name: str, compute) -> float:
        """A single figure (time zero, coverage) kept like the section tables."""
        table = self.section_table(name, lambda: pd.DataFrame({"value": [compute()]}))
        return table["value"].iloc[0]

    def range_table(self, domain: str | None = None) -> pd.DataFrame:
        """GPU time per NVTX range name (``analyze.layers.gpu_time_by_range``), computed once
        per run and domain; a saved run may hold it already (see ``save``)."""
        cache = self.__dict__.setdefault("_range_table_cache", {})
        if domain not in cache:
            from .analyze.layers import gpu_time_by_range, range_table_from_storage

            saved = self.derived(_range_table_name(domain), RANGE_TABLE_VERSION)
            cache[domain] = gpu_time_by_range(self, domain, self.attributed(domain)) \
                if saved is None else range_table_from_storage(saved)
        return cache[domain]

    def save(self, path: str | Path, derived=None) -> Path:
        """Save the run with the NVTX attribution and the per-range GPU time computed so far
        (always the TensorRT layers' ones), so that re-analysing the saved run repeats neither
        the projection nor the aggregation of millions of kernels."""
        from .analyze.layers import TENSORRT_DOMAIN, range_table_for_storage

        if self.is_tensorrt():
            self.range_table(TENSORRT_DOMAIN)
        derived = dict(derived or {})
        for domain, frame in self._attributed_by_domain.items():
            derived[_attribution_name(domain)] = (ATTRIBUTION_VERSION, pd.DataFrame({
                "range_row": _narrow(frame["range_row"].to_numpy()),
                # durations too: a re-analysis then decodes no kernel start/end times
                "duration_ns": _narrow(frame["duration_ns"].to_numpy())}))
        for domain, table in self.__dict__.get("_range_table_cache", {}).items():
            derived[_range_table_name(domain)] = (RANGE_TABLE_VERSION,
                                                  range_table_for_storage(table))
        for name, table in self._section_tables.items():
            derived[_section_name(name)] = (SECTION_TABLES_VERSION, table)
        return super().save(path, derived)

    def is_tensorrt(self) -> bool:
        """Whether TensorRT's NVTX domain is in the run, kept like the section figures: the
        answer reads the whole domain column (millions of ranges), a saved run's report none."""
        from .analyze.layers import is_tensorrt

        return bool(self._stored_number("is_tensorrt", lambda: is_tensorrt(self)))

    @functools.cached_property
    def _layers(self) -> pd.DataFrame:
        from .analyze.layers import TENSORRT_DOMAIN, layer_table

        return layer_table(self, ranges=self.range_table(TENSORRT_DOMAIN))

    def layers(self) -> pd.DataFrame:
        return self._layers.copy()

    def host_layers(self) -> pd.DataFrame:
        """TensorRT layers by host-side range time (``analyze.host_layers``), for an export
        with layer ranges but no kernels; kept like the section tables."""
        from .analyze.host_layers import host_time_by_layer

        return self.section_table("host_layers", lambda: host_time_by_layer(self)).copy()

    def kernel_devices(self) -> list[int]:
        """The devices the kernels ran on, for an export that names no GPU; kept like the
        section tables, so a saved run's report decodes no kernel."""
        table = self.section_table("kernel_devices", lambda: pd.DataFrame({"device_id": sorted(
            self.frame("kernels", ["device_id"])["device_id"].unique().tolist())}))
        return table["device_id"].tolist()

    def gpu_time_by_range(self, domain: str | None = None) -> pd.DataFrame:
        return self.range_table(domain).copy()

    def nvtx_coverage(self, domain: str | None = None) -> float:
        from .analyze.layers import coverage

        return float(self._stored_number(_domain_member("coverage", domain),
                                         lambda: coverage(self.attributed(domain))))

    def reconcile(self) -> pd.DataFrame:
        """Each TensorRT layer measured three ways (``analyze.reconcile``), on the run's cached
        TensorRT projection (the one its layer table uses)."""
        from .analyze.layers import TENSORRT_DOMAIN
        from .analyze.reconcile import reconcile_layers

        return reconcile_layers(self, self.attributed(TENSORRT_DOMAIN))

    @functools.cached_property
    def time_zero(self) -> int:
        """The run's first event (ns), from which every report, trace and plot counts time
        (``analyze.common.first_event_ns``), found once per run (kept by ``save``)."""
        from .analyze.common import first_event_ns

        return int(self._stored_number("time_zero", lambda: first_event_ns(self.tables)))

    # -- everything else `gpuprof nsys` reports -------------------------------------------
    def report(self, top: int | None = None, release: bool = False):
        """Everything `gpuprof nsys` shows. ``release=True`` spends the run: each event table
        is dropped (``release``) once no later section reads it, for a caller that needs
        nothing more from the run (the CLI when nothing is saved or written beside it)."""
        from .render.nsys_full import nsys_report

        return nsys_report(self, top=top, release=release)

    def release(self, table: str) -> None:
        """Drop ``table``'s rows to free their memory; the run is spent for any analysis
        that reads it (reading it now raises, never reads as empty). Releasing NVTX ranges, API calls or kernels
        drops the NVTX attribution made from them too. A saved run's tables are decoded
        on use and kept as they are."""
        from .model.profile import SpentTables
        from .model.saved import LazyTables

        if isinstance(self.tables, LazyTables):
            return
        if not isinstance(self.tables, SpentTables):
            self.tables = SpentTables(self.tables)
        self.tables.release(table)
        if table in ("nvtx_ranges", "api_calls", "kernels"):
            self._attributed_by_domain.clear()

    def write_trace(self, path: str | Path) -> Path:
        """The Chrome/Perfetto trace of the run, written atomically."""
        from .render.chrome_trace import write_chrome_trace

        return write_chrome_trace(self, path, self.time_zero)

    # -- gpuprof.profile() reports (analyze/inference_reports.py) ---------------------------
    def summary(self, unit: str = "ns") -> pd.DataFrame:
        from .analyze.inference_reports import summary

        return summary(self, unit)

    def inferences(self) -> pd.DataFrame:
        from .analyze.inference_reports import inferences

        return inferences(self)

    def executions(self) -> pd.DataFrame:
        from .analyze.inference_reports import executions

        return executions(self)

    def operators(self) -> pd.DataFrame:
        from .analyze.inference_reports import operators

        return operators(self)

    def cpu_operators(self) -> pd.DataFrame:
        from .analyze.inference_reports import cpu_operators

        return cpu_operators(self)

    def frame(self, name: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Every span of a profile() run as one raw table; with ``name``, ``Profile.frame``."""
        if name is not None:
            return super().frame(name, columns or list(self.tables[name].columns))
        from .analyze.inference_reports import frame

        return frame(self)

    def by_record(self) -> pd.DataFrame:
        from .analyze.inference_reports import by_record

        return by_record(self)
