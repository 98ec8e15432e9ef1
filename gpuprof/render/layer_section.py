"""Report sections for layer tables: display units and names, nothing computed here."""

from __future__ import annotations

import pandas as pd

from ..analyze.layers import pareto
from .report import Section

TERMINAL_LAYER_ROWS = 25
# the layer table's rows for programs: raw ns, shares as fractions, top kernels as a list
LAYER_MACHINE_COLUMNS = ["layer", "reformat", "calls", "total_ns", "mean_ns", "median_ns",
                         "share", "cumulative_share", "kernels_per_call", "top_kernels"]


def layer_section(layers: pd.DataFrame, coverage: float, *, key: str = "layers",
                  title: str = "TensorRT layers by GPU time") -> Section:
    count, share = pareto(layers)
    notes = []
    if count:
        notes.append(f"Top {count} of {len(layers)} layers = {share:.1%} of GPU time in layers.")
    notes.append(f"NVTX coverage: {coverage:.2%} of kernel time falls inside a TensorRT layer range."
                 if coverage == coverage else "NVTX coverage: no kernel time to attribute.")
    reformats = layers[layers["reformat"]]
    if len(reformats):
        notes.append(f"{len(reformats)} reformat layers take {reformats['share'].sum():.1%} of GPU "
                     "time (marked R): precision or layout changes between layers.")
    table = pd.DataFrame({
        "layer": layers["layer"].astype(str),
        "R": layers["reformat"].map({True: "R", False: ""}),
        "calls": layers["calls"].astype("int64"),
        "total ms": layers["total_ns"] / 1e6,
        "mean µs": layers["mean_ns"] / 1e3,
        "median µs": layers["median_ns"] / 1e3,
        "% GPU": layers["share"] * 100,
        "cum %": layers["cumulative_share"] * 100,
        "kernels/call": layers["kernels_per_call"],
        "top kernels": layers["top_kernels"].map(lambda ks: ", ".join(ks)),
    })
    data = layers[[c for c in LAYER_MACHINE_COLUMNS if c in layers]].reset_index(drop=True)
    data = data.assign(layer=data["layer"].astype(str),
                       top_kernels=[[str(k) for k in ks] for ks in data["top_kernels"]])
    return Section(key, title, table, notes, max_rows=TERMINAL_LAYER_ROWS, data=data,
                   name_lists=("top kernels",))

