"""Report sections for layer tables: display units and names, nothing computed here."""

from __future__ import annotations

import pandas as pd

from ..analyze.layers import pareto
from .report import Section

TERMINAL_LAYER_ROWS = 25


def shorten(name: str, width: int = 60) -> str:
    return name if len(name) <= width else name[: width // 2 - 1] + "…" + name[-(width - width // 2):]


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
    return Section(key, title, table, notes, max_rows=TERMINAL_LAYER_ROWS)


def for_terminal(section: Section) -> Section:
    """A copy whose long names fit a terminal; CSV and JSON keep the full names."""
    if section.table is None:
        return section
    table = section.table.copy()
    for col in ("layer", "name", "kernel", "top kernels"):
        if col in table:
            table[col] = table[col].astype(str).map(lambda s: shorten(s, 48))
    return Section(section.key, section.title, table, section.notes, section.max_rows)
