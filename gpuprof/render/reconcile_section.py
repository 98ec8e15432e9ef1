"""The TensorRT layer reconciliation as a report section (display units only)."""

from __future__ import annotations

import pandas as pd

from ..analyze.reconcile import profiler_overhead, reconcile_layers
from .report import Section

TERMINAL_ROWS = 25


def reconcile_section(profile) -> Section | None:
    """None unless the run has both IProfiler times and nsys kernels to compare."""
    has_iprofiler = (profile.layer_timings["source"] == "iprofiler").any()
    if not has_iprofiler or profile.kernels.empty:
        return None
    table = reconcile_layers(profile)
    table = _with_layer_info(table, profile.engine_layers)
    shown = pd.DataFrame({
        "layer": table["layer"].astype(str),
        "type": table["layer_type"].astype(object).fillna(""),
        "precision": table["precision"].astype(object).fillna(""),
        "IProfiler µs": table["iprofiler_ns"] / 1e3,
        "GPU span µs": table["span_ns"] / 1e3,
        "kernels µs": table["kernel_ns"] / 1e3,
        "IProfiler vs span %": table["iprofiler_vs_span"] * 100,
        "gaps µs": table["gaps_ns"] / 1e3,
        "tactic": table["tactic"].astype(object).fillna(""),
    })
    notes = ["Per call: IProfiler = TensorRT's per-layer time (separate pass with the profiler "
             "attached); GPU span = first kernel start to last kernel end inside the layer's "
             "NVTX range (nsys); kernels = summed kernel durations. Gaps = span - kernels."]
    overhead = profiler_overhead(profile)
    if overhead:
        notes.append(f"Profiler overhead: summed IProfiler layer time per iteration is "
                     f"{overhead['ratio']:.2f}x the timed pass's median compute time "
                     f"({overhead['iprofiler_sum_ns'] / 1e3:,.1f} µs vs "
                     f"{overhead['timed_compute_ns'] / 1e3:,.1f} µs).")
    kinds = set(profile.engine_layers["info_kind"].astype(str))
    if "network_pre_optimisation" in kinds:
        notes.append("Type and precision come from the network before TensorRT's optimisation "
                     "(no GPU could load the plan to inspect it): fused layers show no match.")
    return Section("reconcile", "TensorRT layers: three measurements", shown, notes,
                   max_rows=TERMINAL_ROWS)


def _with_layer_info(table: pd.DataFrame, engine_layers: pd.DataFrame) -> pd.DataFrame:
    info = engine_layers.drop_duplicates("layer").set_index("layer")[["layer_type", "precision", "tactic"]]
    return table.join(info.astype(object), on="layer")
