"""Inside compute: each request's ONNX Runtime node times, and the checks that tie them to it.

A request's nodes are the node events of the ORT run the model made for it (the run line
carries Triton's request id, which is gpuprof's); every one must also lie inside that run's
python stamps (``nodes_outside_run``). The run itself must lie inside Triton's compute span,
COMPUTE_INPUT_END..COMPUTE_OUTPUT_START, for the traced requests: those that do not are
counted (``runs_outside_compute``), never dropped.

Under dynamic batching one ORT run serves several requests: each of them gets the run's nodes
(its compute is the batch's), ``run_requests`` says how many shared it and ``share`` the
request's rows over the batch's. Per-node statistics and the outside-run count take each node
execution once, however many requests shared it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .stats import describe, describe_by

PER_REQUEST = ["request_id", "run_ns", "ort_run_ns", "run_requests", "share", "nodes",
               "node_ns", "top_node", "top_node_ns"]
EXECUTION = ["pid", "session", "run", "layer", "start_ns"]   # one node execution


@dataclass
class RequestNodes:
    nodes: pd.DataFrame          # request x node: request_id, layer, layer_type, start_ns, ...
    per_request: pd.DataFrame    # PER_REQUEST
    per_node: pd.DataFrame       # describe_by per node (ns), heaviest mean first
    runs: int                    # this run's requests the model ran
    runs_without_nodes: int      # ... whose profile was not read or matched
    nodes_outside_run: int       # node events outside their run's python stamps
    traced: int                  # runs with Triton compute timestamps to check against
    runs_outside_compute: int    # ... whose run is not inside COMPUTE_INPUT_END..OUTPUT_START
    node_ns: dict = field(default_factory=dict)   # stats.describe of node time per request
    run_ns: dict = field(default_factory=dict)    # ... of session.run per request (python)
    shared_runs: int = 0         # ORT runs that served two or more of the measured requests
    shared_requests: int = 0     # ... and the measured requests in them


def request_nodes(runs: pd.DataFrame, nodes: pd.DataFrame, request_ids,
                  spans: pd.DataFrame | None = None) -> RequestNodes:
    """``runs``/``nodes`` as ``ingest.ort_server_profile`` reads them (on the client clock);
    ``request_ids``: the requests measured (the load test's windows); ``spans``:
    ``analyze.perf_trace.server_spans`` of the traced ones."""
    wanted = set(map(str, request_ids))
    runs = runs[runs["request_id"].isin(wanted)]
    nodes = nodes[nodes["request_id"].isin(wanted)].merge(
        runs[["request_id", "before_ns", "after_ns"]], on="request_id", how="left")
    once = executions(nodes)
    outside = ~((once["start_ns"] >= once["before_ns"])
                & (once["start_ns"] + once["duration_ns"] <= once["after_ns"]))
    traced, out_of_compute = compute_check(runs, spans)
    table = per_request(runs, nodes)
    shared = runs[runs["run_requests"] > 1]
    return RequestNodes(
        nodes.drop(columns=["before_ns", "after_ns"]), table, per_node(once), len(runs),
        int(runs["ort_start_ns"].isna().sum()), int(outside.sum()), traced, out_of_compute,
        describe(table.loc[table["nodes"] > 0, "node_ns"]), describe(table["run_ns"]),
        len(shared.drop_duplicates(["pid", "session", "run"])), len(shared))


def executions(nodes: pd.DataFrame) -> pd.DataFrame:
    """Each node execution once (a batch's nodes are listed under each of its requests)."""
    return nodes.drop_duplicates(EXECUTION)


def per_request(runs: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """Per request: the python-timed run, ORT's model_run, node count and sum, heaviest node."""
    sums = nodes.groupby("request_id")["duration_ns"].agg(nodes="count", node_ns="sum")
    top = nodes.sort_values(["request_id", "duration_ns"], ascending=[True, False],
                            kind="stable").drop_duplicates("request_id")
    top = top.set_index("request_id")[["layer", "duration_ns"]].rename(
        columns={"layer": "top_node", "duration_ns": "top_node_ns"})
    out = runs[["request_id", "run_requests", "share"]].assign(
        run_ns=runs["after_ns"] - runs["before_ns"],
        ort_run_ns=runs["ort_end_ns"] - runs["ort_start_ns"])
    out = out.join(sums, on="request_id").join(top, on="request_id")
    out["nodes"] = out["nodes"].fillna(0).astype("int64")
    return out[PER_REQUEST].reset_index(drop=True)


def per_node(nodes: pd.DataFrame) -> pd.DataFrame:
    """count, mean, percentiles per node (ns), heaviest mean first."""
    table = describe_by(nodes, ["layer", "layer_type"], "duration_ns")
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def compute_check(runs: pd.DataFrame, spans: pd.DataFrame | None) -> tuple[int, int]:
    """(traced runs, runs not inside their request's COMPUTE_INPUT_END..COMPUTE_OUTPUT_START)."""
    if spans is None or spans.empty:
        return 0, 0
    m = runs.merge(spans[["request_id", "input_end_ns", "output_start_ns"]], on="request_id")
    m = m.dropna(subset=["input_end_ns", "output_start_ns"])
    inside = (m["before_ns"] >= m["input_end_ns"]) & (m["after_ns"] <= m["output_start_ns"])
    return len(m), int((~inside).sum())
