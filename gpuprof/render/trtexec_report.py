"""The `gpuprof trtexec` report: TREx's tables from trtexec's files, in every text format."""

from __future__ import annotations

import pandas as pd

from ..analyze import trtexec as analysis
from ..units import MICROSECONDS, NS_PER_US
from .report import Report, Section

US = f"({MICROSECONDS})"
NS_PER_MS = 1_000_000


def trtexec_report(run, top: int | None = None) -> Report:
    """``run`` is an ``ingest.trtexec.TrtexecRun``."""
    layers = analysis.layer_table(run.layer_profile, run.profile.engine_layers, run.formats)
    report = Report(title="trtexec engine profile", facts=_facts(run, layers))
    report.add(_layers_section(run, layers, top))
    report.add(_by_type_section(layers))
    report.add(_precision_section(layers))
    report.add(_reformat_section(layers))
    if not run.profile.iterations.empty:
        report.add(_latency_section(run.profile.iterations))
    if run.log is not None and run.log.summary:
        report.add(_log_summary_section(run.log))
    return report


def _facts(run, layers: pd.DataFrame) -> dict[str, str]:
    facts = {"Profiled runs": str(run.profiled_runs), "Layers profiled": str(len(layers)),
             f"Profiled GPU time per inference {US}": f"{layers['mean_ns'].sum() / NS_PER_US:.1f}"}
    if run.log is not None:
        facts.update(run.log.facts)
    facts["Files"] = ", ".join(source.name for source in run.profile.meta.sources)
    return facts


def _layers_section(run, layers: pd.DataFrame, top: int | None) -> Section:
    n, share = analysis.pareto_line(layers)
    table = pd.DataFrame({
        "Layer": layers["layer"], "Type": layers["layer_type"], "Precision": layers["precision"],
        f"Mean {US}": _us(layers["mean_ns"]), f"Median {US}": _us(layers["median_ns"]),
        "Share (%)": (layers["share"] * 100).round(2), "Cumulative (%)": (layers["cumulative_share"] * 100).round(2),
        "Reformat": layers["reformat"].map({True: "yes", False: ""}),
        "Tactic": layers["tactic"], "Input formats": layers["inputs"], "Output formats": layers["outputs"],
    })
    notes = [f"Times are trtexec's mean per inference over {run.profiled_runs} profiled runs; "
             "shares are of their sum.",
             f"Pareto: {n} of {len(layers)} layers take {share * 100:.1f}% of the profiled time."]
    if run.unmatched_layers:
        notes.append(f"{len(run.unmatched_layers)} profiled layers are not in the layer information "
                     f"(no type, precision or tactic): {', '.join(run.unmatched_layers[:5])}")
    if run.profile.engine_layers.empty:
        notes.append("No layer information given: types, precisions, tactics and formats are unknown.")
    return Section("layers", "Layers (heaviest first)", table, notes, max_rows=top)


def _by_type_section(layers: pd.DataFrame) -> Section:
    return _time_by_section(analysis.time_by_type(layers), "layer_type", "Layer type",
                            "layer_types", "Time by layer type")


def _precision_section(layers: pd.DataFrame) -> Section:
    return _time_by_section(analysis.precision_split(layers), "precision", "Output precision",
                            "precisions", "Time by output precision")


def _time_by_section(split: pd.DataFrame, column: str, heading: str, key: str, title: str) -> Section:
    table = pd.DataFrame({heading: split[column], "Layers": split["layers"],
                          f"Time per inference {US}": _us(split["mean_ns"]),
                          "Share (%)": (split["share"] * 100).round(2)})
    return Section(key, title, table)


def _reformat_section(layers: pd.DataFrame) -> Section:
    cost = analysis.reformat_cost(layers)
    reformats = layers[layers["reformat"]]
    table = pd.DataFrame({"Reformat layer": reformats["layer"], f"Mean {US}": _us(reformats["mean_ns"]),
                          "Input formats": reformats["inputs"], "Output formats": reformats["outputs"]})
    note = (f"{cost['count']} reformat layers take {cost['mean_ns'] / NS_PER_US:.2f} {MICROSECONDS} per "
            f"inference, {cost['share'] * 100:.2f}% of the profiled time.")
    return Section("reformats", "Reformat layers and their cost", table, [note])


def _latency_section(iterations: pd.DataFrame) -> Section:
    table = analysis.latency_table(iterations)
    out = pd.DataFrame({"Stage": table["stage"], "Inferences": table["count"]})
    for column in ("mean", "min", *(f"p{q:g}" for q in analysis.LATENCY_PERCENTILES), "max"):
        out[f"{column} {US}"] = _us(table[column])
    return Section("latency", "Latency per inference (--exportTimes)", out,
                   ["Percentiles: numpy 'linear' over every timed inference in the times file."])


def _log_summary_section(log) -> Section:
    # the log prints ms; shown in µs like every other table (trtexec's digits kept)
    rows = [{"Metric": metric, **{f"{key} {US}": round(value * 1000, 4) for key, value in stats.items()}}
            for metric, stats in log.summary.items()]
    return Section("log_summary", "trtexec's performance summary (from the log)", pd.DataFrame(rows),
                   [f"As trtexec printed it in {log.name}."])


def _us(values: pd.Series) -> pd.Series:
    return (values.astype(float) / NS_PER_US).round(3)
