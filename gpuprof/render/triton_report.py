"""The ``gpuprof triton`` report: stage statistics, the seed's offsets timeline, per-request
stages, incomplete requests and TENSORS records, in microseconds.

The timeline holds what the original trace parser printed (each timestamp's mean offset from the
first receive and the gap between consecutive timestamps) as a table, one timestamp per row with
a bar showing where each gap falls. ``ascii_timeline`` draws the parser's own horizontal layout
(names in a row, offsets under them, an arrow, the gaps), wrapped into blocks that fit a terminal;
it is attached as verbatim lines where the Report contract can carry them.
"""

from __future__ import annotations

import pandas as pd

from ..analyze.requests import RequestAnalysis, model_order
from ..analyze.stats import DEFAULT_PERCENTILES, min_samples_for, percentile_label
from ..units import MICROSECONDS, NS_PER_US
from .report import Report, Section

US = f"({MICROSECONDS})"  # column-name suffix
ART_WIDTH = 112        # the timeline art, indented by 2 in the terminal, fits 120 columns
BAR_WIDTH = 32
REQUEST_ROWS = 60      # per-request stage rows shown in terminal/Markdown


def build_triton_report(analysis: RequestAnalysis, facts: dict[str, str],
                        issues: list[str], title: str = "Triton trace") -> Report:
    report = Report(title=title, facts=dict(facts), kind="triton")
    if issues:
        report.add(Section("warnings", "Warnings", notes=list(issues)))
    report.add(_summary_section(analysis))
    for (model, path), layout in analysis.layout.groupby(["model", "path"], sort=False):
        report.add(_timeline_section(str(model), str(path), layout))
    report.add(_incomplete_section(analysis))
    report.add(_requests_section(analysis))
    if not analysis.tensors.empty:
        report.add(_tensor_section(analysis.tensors))
    return report


def trace_facts(files: list[str], analysis: RequestAnalysis, partial: bool) -> dict[str, str]:
    tree = analysis.tree
    models = model_order(tree)
    top = int((tree["depth"] == 0).sum())
    facts = {
        "Files": ", ".join(files[:4]) + (f" (+{len(files) - 4} more)" if len(files) > 4 else ""),
        "Requests": f"{len(tree)} ({top} top-level, {len(tree) - top} ensemble/BLS children, "
                    f"{len(analysis.incomplete)} incomplete)",
        "Models": ", ".join(models),
        "Clock": "CLOCK_MONOTONIC (Triton trace ns)",
    }
    if partial:
        facts["Status"] = "PARTIAL: trace records were lost (see Warnings)"
    return facts


# --- summary -------------------------------------------------------------------------------

def _summary_section(analysis: RequestAnalysis) -> Section:
    summary = analysis.summary
    labels = [percentile_label(q) for q in DEFAULT_PERCENTILES]
    table = pd.DataFrame({"model": summary["model"].astype(str), "stage": summary["stage"].astype(str),
                          "count": summary["count"].astype("int64")})
    # no max column: with it the table no longer fits a 120-column terminal (p99.9 is near it)
    for col in ["mean", *labels]:
        table[f"{col} {US}"] = summary[col].astype("float64") / NS_PER_US
    table["unreliable"] = [_tail(text, labels) for text in summary["unreliable"]]
    return Section("summary", "Stages per model", table=table, notes=_summary_notes(analysis))


def _tail(unreliable: str, labels: list[str]) -> str:
    """'p95, p99, p99.9' -> 'p95+': the flagged percentiles are always the highest ones."""
    names = [n for n in unreliable.split(", ") if n]
    if not names:
        return "-"
    return f"{names[0]}+" if names == labels[-len(names):] and len(names) > 1 else ", ".join(names)


def _summary_notes(analysis: RequestAnalysis) -> list[str]:
    need = ", ".join(f"{percentile_label(q)} needs {min_samples_for(q):,}" for q in DEFAULT_PERCENTILES
                     if q >= 90)
    notes = [
        "count: requests behind each row. Percentiles interpolate linearly between ranks.",
        "'unreliable': fewer than 10 samples lie beyond that percentile ('p99+': p99 and above)",
        f"({need}).",
        "END_TO_END: first receive to last send. A gRPC request is received at GRPC_WAITREAD_END,",
        "because gRPC wait/read includes the time spent waiting for the client to send.",
    ]
    for child, callers in analysis.callers.items():
        notes.append(f"{child} runs as an ensemble/BLS child of {', '.join(callers)}; "
                     "its rows count those requests too.")
    return notes


# --- the seed's timeline -------------------------------------------------------------------

def _timeline_section(model: str, path: str, layout: pd.DataFrame) -> Section:
    used, total = int(layout["requests"].iloc[0]), int(layout["of"].iloc[0])
    notes = ["Timestamps in time order: mean offset from the first receive and mean gap from the",
             f"previous timestamp, over the {used} of {total} request(s) that hold all of them."]
    if path == "gRPC":
        notes.append("GRPC_WAITREAD_START is left out: it includes waiting for the client to send.")
    offsets, gaps = layout["mean_offset_ns"].tolist(), layout["delta_ns"].tolist()
    table = pd.DataFrame({"timestamp": layout["name"].astype(str).tolist(),
                          f"offset {US}": [o / NS_PER_US for o in offsets],
                          f"gap {US}": [g / NS_PER_US for g in gaps],
                          "gap on the timeline": gap_bars(offsets, gaps)})
    section = Section(f"timeline:{model}:{path}", f"Timeline: {model} ({path})", table=table,
                      notes=notes)
    section.preformatted = ascii_timeline(layout["name"].tolist(), offsets, gaps)  # the seed's layout
    return section


def gap_bars(offsets_ns: list[float], gaps_ns: list[float], width: int = BAR_WIDTH) -> list[str]:
    """Each gap drawn where it falls between the first receive and the last timestamp."""
    span = max(offsets_ns) or 1.0
    bars = []
    for offset, gap in zip(offsets_ns, gaps_ns):
        start = min(round((offset - gap) / span * width), width - (1 if gap > 0 else 0))
        stop = max(round(offset / span * width), start + (1 if gap > 0 else 0))
        bars.append("·" * start + "█" * (stop - start) + "·" * (width - stop))
    return bars


def ascii_timeline(names: list[str], offsets_ns: list[float], deltas_ns: list[float],
                   width: int = ART_WIDTH) -> list[str]:
    """The seed's four-line layout, in blocks of as many names as fit ``width``.

    Each block after the first repeats the previous block's last name, so every gap is shown.
    """
    if not names:
        return []
    col = max(max(len(n) for n in names), max(len(_fmt(o)) for o in offsets_ns)) + 1
    per_block = max(2, (width - 1) // col)
    lines: list[str] = []
    start = 0
    while True:
        stop = min(start + per_block, len(names))
        if lines:
            lines.append("")
        lines += _block(names[start:stop], offsets_ns[start:stop], deltas_ns[start + 1:stop], col)
        if stop >= len(names):
            return lines
        start = stop - 1


def _block(names: list[str], offsets: list[float], deltas: list[float], col: int) -> list[str]:
    arrow = "----+" + ("-" * (col - 1) + "+") * (len(names) - 1) + "-" * (col - 5) + ">"
    gaps = "".join(_fmt(d).rjust(col - 1 if i == 0 else col) for i, d in enumerate(deltas))
    return ["".join(n.ljust(col) for n in names).rstrip(),
            "".join(_fmt(o).ljust(col) for o in offsets).rstrip(), arrow, gaps]


def _fmt(ns: float) -> str:
    return f"{ns / NS_PER_US:,.1f} {MICROSECONDS}"


# --- requests ------------------------------------------------------------------------------

def _requests_section(analysis: RequestAnalysis) -> Section:
    table = request_rows(analysis.per_request)
    notes = ["One row per request and stage. Offsets are from the request's first receive;",
             "ensemble/BLS children follow their parent, with offsets from their root request's."]
    return Section("requests", "Requests", table=table, notes=notes, max_rows=REQUEST_ROWS)


def request_rows(wide: pd.DataFrame) -> pd.DataFrame:
    """The wide per-request table as long rows: request, model, stage, offset and duration (µs)."""
    stages = [c[:-len("_offset_ns")] for c in wide.columns if c.endswith("_offset_ns")]
    depth = wide["depth"].astype("int64")
    prefix = {d: "  " * d + ("└ " if d else "") for d in depth.unique()}
    label = depth.map(prefix) + wide["trace_id"].astype(str)
    base = pd.DataFrame({"request": label, "trace_id": wide["trace_id"], "parent_id": wide["parent_id"],
                         "model": wide["model"].astype(str),
                         "request_id": wide["request_id"].astype(object).fillna("-"),
                         "_row": range(len(wide))})
    parts = [base.assign(stage=stage, _order=i, **{
        f"offset {US}": wide[f"{stage}_offset_ns"] / NS_PER_US,
        f"duration {US}": wide[f"{stage}_ns"] / NS_PER_US}) for i, stage in enumerate(stages)]
    if not parts:
        return base.drop(columns="_row").assign(stage=[], **{f"offset {US}": [], f"duration {US}": []})
    rows = pd.concat(parts, ignore_index=True).dropna(subset=[f"duration {US}"])
    rows = rows.sort_values(["_row", "_order"], kind="stable")
    return rows.drop(columns=["_row", "_order"]).reset_index(drop=True)


def _incomplete_section(analysis: RequestAnalysis) -> Section:
    bad, total = analysis.incomplete, len(analysis.tree)
    if bad.empty:
        return Section("incomplete", "Incomplete requests",
                       notes=[f"All {total} request(s) hold every timestamp they should."])
    table = bad.assign(model=bad["model"].astype(str))[["trace_id", "parent_id", "model", "missing"]]
    notes = [f"{len(bad)} of {total} request(s) lack timestamps they should have. They are kept:",
             "their complete stages are in the statistics, the missing ones are not."]
    return Section("incomplete", "Incomplete requests", table=table, notes=notes, max_rows=30)


def _tensor_section(tensors: pd.DataFrame) -> Section:
    return Section("tensors", "Tensors (TENSORS level)", table=tensors.astype({"count": "int64"}),
                   notes=["Tensor records per model; their data is not kept."])
