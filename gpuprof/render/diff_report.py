"""`gpuprof diff` as a Report (terminal, Markdown for a pull-request comment, CSV) and as a JSON
document with raw numbers (snake_case keys, ``schema_version``)."""

from __future__ import annotations

import json
import math

import pandas as pd

from ..analyze.diff import MIN_SAMPLES, Diff, significant
from ..analyze.diff_gates import GateResult
from ..units import MICROSECONDS, NS_PER_US
from .report import Report, Section

SCHEMA_VERSION = 1
US = f"({MICROSECONDS})"
TITLES = {"layer": "Layers", "range": "NVTX ranges (own GPU time)", "kernel": "Kernels",
          "stage": "Stages", "latency": "Latency"}
NOISE = {True: "yes", False: "no (noise)", None: "n/a"}


def diff_report(diff: Diff, gates: list[GateResult], top: int | None = None) -> Report:
    report = Report(title=f"gpuprof diff: {diff.base} -> {diff.new}",
                    facts={"Base": diff.base, "New": diff.new, "Significance": diff.method})
    if gates:
        report.add(_gates_section(gates))
    for category, table in diff.tables.items():
        report.add(_category_section(category, table, top))
    if not diff.layer_changes.empty:
        report.add(Section("layer_changes", "Precision, tactic and format changes",
                           diff.layer_changes.rename(columns=str.capitalize)))
    report.add(Section("notes", "Sources", notes=diff.notes))
    return report


def _category_section(category: str, table: pd.DataFrame, top: int | None) -> Section:
    metric = "p99" if category == "latency" else "total"
    noise_mean = [NOISE[significant(r, "mean")] for _, r in table.iterrows()]
    noise_p99 = [NOISE[significant(r, "p99")] for _, r in table.iterrows()]
    # the verdict columns first: terminals cut the widest tables from the right
    out = pd.DataFrame({
        "Name": table["name"], "Calls base": table["base_count"], "Calls new": table["new_count"],
        "Δ total (%)": table["delta_total_pct"].round(2), f"Δ total {US}": _us(table["delta_total"]),
        "Significant (mean)": noise_mean, "Δ mean (%)": table["delta_mean_pct"].round(2),
        "Δ p99 (%)": table["delta_p99_pct"].round(2), "Significant (p99)": noise_p99,
        f"Base total {US}": _us(table["base_total"]), f"New total {US}": _us(table["new_total"]),
        f"Base mean {US}": _us(table["base_mean"]), f"New mean {US}": _us(table["new_mean"]),
        f"Base p99 {US}": _us(table["base_p99"]), f"New p99 {US}": _us(table["new_p99"]),
        "Status": table["status"],
    })
    counts = f"{int(table['base_count'].sum(skipna=True))} base and {int(table['new_count'].sum(skipna=True))} new samples"
    notes = [f"{counts} over {len(table)} names; largest absolute change in total first; "
             f"'significant' when the 95% bootstrap interval of the change excludes 0 (n/a: under {MIN_SAMPLES} samples a side)."]
    if category == "latency":
        notes.append(f"Gate on {metric} with e.g. --fail-on 'latency.{metric}>+5%'.")
    return Section(category, TITLES[category], out, notes, max_rows=top)


def _gates_section(gates: list[GateResult]) -> Section:
    rows = []
    for result in gates:
        if not result.tripped:
            rows.append({"Gate": result.gate.text, "Result": "pass", "Name": "", "Change": ""})
        if result.unjudged:
            rows.append({"Gate": result.gate.text, "Result": "not judged", "Name": ", ".join(result.unjudged[:10]),
                         "Change": f"{len(result.unjudged)} names past the threshold on under {MIN_SAMPLES} samples a side"})
        for _, line in result.offending.iterrows():
            rows.append({"Gate": result.gate.text, "Result": "FAIL", "Name": line["name"],
                         "Change": offending_text(line)})
    return Section("gates", "Gates", pd.DataFrame(rows))


def offending_text(line: pd.Series) -> str:
    pct = "" if pd.isna(line["delta_pct"]) else f"{line['delta_pct']:+.1f}%, "
    return (f"{pct}{line['base_ns'] / NS_PER_US:.2f} -> {line['new_ns'] / NS_PER_US:.2f} {MICROSECONDS} "
            f"({line['verdict']})")


def _us(values: pd.Series) -> pd.Series:
    return (values.astype(float) / NS_PER_US).round(3)


def diff_json(diff: Diff, gates: list[GateResult]) -> str:
    doc = {
        "schema_version": SCHEMA_VERSION, "base": diff.base, "new": diff.new,
        "significance_method": diff.method, "notes": diff.notes,
        "gates": [{"expression": g.gate.text, "tripped": g.tripped,
                   "offending": _records(g.offending), "not_judged": g.unjudged} for g in gates],
        "categories": {category: _records(table) for category, table in diff.tables.items()},
        "layer_changes": _records(diff.layer_changes),
        "units": "ns for every *_ns, total, mean, pNN, delta and ci value; percent for *_pct",
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]


def _plain(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _plain(value.item())
    if isinstance(value, (int, float)):
        return value
    return None if pd.isna(value) else str(value)
