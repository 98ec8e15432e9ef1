"""Report section, CSV rows and trace slices for the ONNX Runtime nodes inside each request's
compute (``gpuprof perf --trace`` against ``gpuprof triton serve --ort-profile``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.stats import DEFAULT_PERCENTILES, PERCENTILE_METHOD, percentile_label
from ..units import NS_PER_US as US
from .report import Section

TERMINAL_ROWS = 20
CSV_COLUMNS = ["request_id", "client_port", "layer", "layer_type", "start_ns", "duration_ns",
               "pid", "session", "run", "run_requests", "share"]


def nodes_section(nodes) -> Section:
    """``nodes``: pipeline.ort_nodes.NodesResult."""
    title = "Inside compute: ONNX Runtime nodes per request (µs)"
    result = nodes.result
    if result is None:
        return Section("ort_nodes", title, notes=list(nodes.notes))
    return Section("ort_nodes", title, _node_display(result.per_node),
                   notes=_notes(nodes, result), max_rows=TERMINAL_ROWS,
                   data=_node_data(result.per_node))


def _node_data(per_node: pd.DataFrame) -> pd.DataFrame:
    """The rows for JSON/CSV: the same statistics in raw ns (keys mean_ns, p50_ns, ...)."""
    stats = ["mean", *[percentile_label(q) for q in DEFAULT_PERCENTILES], "max"]
    out = pd.DataFrame({"node": per_node["layer"].astype(str),
                        "op": per_node["layer_type"].astype(str),
                        "n": per_node["count"].astype("int64")})
    for col in stats:
        out[f"{col}_ns"] = per_node[col].astype("float64")
    return out


def _node_display(per_node: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"node": per_node["layer"].astype(str),
                        "op": per_node["layer_type"].astype(str),
                        "n": per_node["count"].astype("int64")})
    for col in ["mean", *[percentile_label(q) for q in DEFAULT_PERCENTILES], "max"]:
        out[col] = per_node[col] / US
    return out


def _notes(nodes, result) -> list[str]:
    from ..analyze.stats import unreliable_percentiles

    weak = unreliable_percentiles(result.runs - result.runs_without_nodes)
    notes = [f"{result.runs} measured requests ran in ONNX Runtime, {result.runs_without_nodes} "
             f"of them without node times; per node: executions (n), mean and percentiles "
             f"(numpy '{PERCENTILE_METHOD}' interpolation), heaviest mean first"
             + (f"; {', '.join(weak)} rest on fewer than 10 samples beyond them" if weak else ""),
             f"per request: node time p50 {_us(result.node_ns, 'p50')} µs, p99 "
             f"{_us(result.node_ns, 'p99')} µs; session.run p50 {_us(result.run_ns, 'p50')} µs",
             f"{result.nodes_outside_run} node events lie outside their request's "
             "session.run stamps", *_shared_note(result),
             f"{result.runs_outside_compute} of {result.traced} traced requests ran ONNX Runtime "
             "outside their Triton COMPUTE_INPUT_END..COMPUTE_OUTPUT_START (kept, not dropped)"]
    clock = nodes.clock
    bound = f"{clock.error_ns / US:.1f} µs" if clock.error_ns >= 0 else "unknown"
    notes.append(f"clock: onnxruntime offset {clock.offset_ns / US:.1f} µs, error bound "
                 f"{bound} ({clock.method}); ORT writes whole µs")
    notes.append(f"profiles read from {nodes.folder}; ONNX Runtime's profiler was on during "
                 "the test, so the latencies above include its overhead")
    return notes + list(nodes.notes)


def _shared_note(result) -> list[str]:
    if not result.shared_runs:
        return []
    return [f"dynamic batching: {result.shared_requests} requests shared "
            f"{result.shared_runs} ONNX Runtime runs; each of them is given its run's nodes "
            "(CSV: run_requests, share = its rows over the batch's); per node, n counts each "
            "execution once"]


def _us(stats: dict, key: str) -> str:
    value = stats.get(key, float("nan"))
    return "-" if value != value else f"{value / US:.1f}"


def node_rows(result, client: pd.DataFrame) -> pd.DataFrame:
    """One row per request x node, with the request's client port when the client knew it and
    how many requests shared the ORT run (``run_requests``) with this one's ``share``."""
    ports = client[["request_id", "client_port"]] if "client_port" in client else None
    rows = result.nodes.merge(result.per_request[["request_id", "run_requests", "share"]],
                              on="request_id", how="left")
    rows = rows if ports is None else rows.merge(ports, on="request_id", how="left")
    if "client_port" not in rows:
        rows = rows.assign(client_port=-1)
    return rows[CSV_COLUMNS]


def write_node_csv(rows: pd.DataFrame, path: str | Path) -> Path:
    from ..fsutil import atomic_write

    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        rows.to_csv(handle, index=False)
    return Path(path)
