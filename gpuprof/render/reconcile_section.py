"""The TensorRT layer reconciliation as a report section (display units only)."""

from __future__ import annotations

import pandas as pd

from ..analyze.reconcile import iprofiler_rows, profiler_overhead
from ..model.engine_layers import layer_info_by_name
from ..units import MICROSECONDS
from .report import Section

TERMINAL_ROWS = 25


def reconcile_section(run) -> Section | None:
    """None unless the run (an ``api.Run``) has both IProfiler times and nsys kernels to compare."""
    if iprofiler_rows(run.layer_timings).empty or run.num_rows("kernels") == 0:
        return None
    table = _with_layer_info(run.reconcile(), run.engine_layers)
    us = MICROSECONDS
    shown = pd.DataFrame({
        "layer": table["layer"].astype(str),
        "type": table["layer_type"].astype(object).fillna(""),
        "precision": table["precision"].astype(object).fillna(""),
        f"IProfiler {us}": table["iprofiler_ns"] / 1e3,
        f"GPU span {us}": table["span_ns"] / 1e3,
        f"kernels {us}": table["kernel_ns"] / 1e3,
        "IProfiler vs span %": table["iprofiler_vs_span"] * 100,
        f"gaps {us}": table["gaps_ns"] / 1e3,
        "tactic": table["tactic"].astype(object).fillna(""),
    })
    notes = ["Per call: IProfiler = TensorRT's per-layer time (separate pass with the profiler "
             "attached); GPU span = first kernel start to last kernel end inside the layer's "
             "NVTX range (nsys); kernels = summed kernel durations. Gaps = span - kernels."]
    overhead = profiler_overhead(run)
    if overhead:
        notes.append(f"Profiler overhead: summed IProfiler layer time per iteration is "
                     f"{overhead['ratio']:.2f}x the timed pass's median compute time "
                     f"({overhead['iprofiler_sum_ns'] / 1e3:,.1f} {us} vs "
                     f"{overhead['timed_compute_ns'] / 1e3:,.1f} {us}).")
    kinds = set(run.engine_layers["info_kind"].astype(str))
    if "network_pre_optimisation" in kinds:
        notes.append("Type and precision come from the network before TensorRT's optimisation "
                     "(no GPU could load the plan to inspect it): fused layers show no match.")
    return Section("reconcile", "TensorRT layers: three measurements", shown, notes,
                   max_rows=TERMINAL_ROWS)


def _with_layer_info(table: pd.DataFrame, engine_layers: pd.DataFrame) -> pd.DataFrame:
    return table.join(layer_info_by_name(engine_layers), on="layer")
