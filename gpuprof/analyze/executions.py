"""Model executions that requests shared under Triton's dynamic batching, and each one's share.

What the trace really shows (tritonserver 2.51, python backend, ``dynamic_batching``, checked
on traces of ``gpuprof triton serve --dynamic-batching``): every request of one batch carries
the same COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START and COMPUTE_END, to the ns,
while its receive, QUEUE_START and send stamps are its own. A TIMESTAMPS trace names no model
instance, so requests whose compute start AND compute end are identical shared one execution
(two instances would have to start and end to the same ns to be confused).

Share rule: a request's ``compute_share`` is its batch rows over all rows of its execution,
rows being the first dim of the request's input as sent (the dim Triton stacks requests
along); with one shape for every request of a load test that is 1 / execution_requests.
Only traced requests are seen: under a sampled trace an execution's untraced requests are
missing from its count and rows.
"""

from __future__ import annotations

import pandas as pd

KEY = ["compute_start_ns", "compute_end_ns"]
COLUMNS = ["execution_id", "execution_requests", "execution_rows", "compute_share"]


def executions(spans: pd.DataFrame, rows: pd.Series | int = 1) -> pd.DataFrame:
    """Per row of ``spans`` (``compute_start_ns``, ``compute_end_ns``): ``execution_id``
    (0, 1, ... by compute start), ``execution_requests``, ``execution_rows`` and
    ``compute_share``; NA for a request without both compute stamps. ``rows``: each request's
    batch rows (aligned with ``spans``) or one number for all."""
    rows = pd.Series(rows, index=spans.index, dtype="int64") if not isinstance(
        rows, pd.Series) else rows.astype("int64")
    key = spans[KEY]
    known = key.notna().all(axis=1)
    stamps = key[known].astype("int64")
    number = stamps.groupby(KEY, sort=True).ngroup()
    out = pd.DataFrame(index=spans.index, columns=COLUMNS, dtype="float64")
    out["execution_id"] = number.astype("Int64")
    out["execution_requests"] = number.map(number.value_counts()).astype("Int64")
    total = rows[known].groupby(number).transform("sum")
    out["execution_rows"] = total.astype("Int64")
    out["compute_share"] = rows[known] / total
    return out


def execution_table(joined: pd.DataFrame) -> pd.DataFrame:
    """One row per execution: execution_id, requests, rows, compute_start_ns, compute_end_ns
    and its request ids (in compute-share order) from a table with ``executions`` columns."""
    known = joined.dropna(subset=["execution_id"])
    grouped = known.groupby("execution_id", sort=True)
    return pd.DataFrame({
        "requests": grouped["request_id"].size(),
        "rows": grouped["execution_rows"].first().astype("int64"),
        "compute_start_ns": grouped["compute_start_ns"].first().astype("int64"),
        "compute_end_ns": grouped["compute_end_ns"].first().astype("int64"),
        "request_ids": grouped["request_id"].agg(list),
    }).reset_index()


def by_size(table: pd.DataFrame) -> pd.DataFrame:
    """Executions grouped by how many requests shared them: executions, requests, mean rows
    and mean compute span (COMPUTE_START to COMPUTE_END, ns), largest first."""
    span = table["compute_end_ns"] - table["compute_start_ns"]
    out = table.assign(compute_ns=span).groupby("requests").agg(
        executions=("execution_id", "size"), rows=("rows", "mean"),
        compute_ns=("compute_ns", "mean"))
    out["total_requests"] = out.index * out["executions"]
    return out.sort_index(ascending=False).reset_index()
