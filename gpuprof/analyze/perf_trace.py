"""Join each load-test request's client timestamps with its server stages from a Triton trace.

The join key is the request id the load generator sent (``prefix + number``), which Triton
writes into the trace header. Both sides are on CLOCK_MONOTONIC of the same machine (loopback),
so a request's client latency splits exactly into consecutive segments:

    client start -> server starts receiving (HTTP_RECV_START / GRPC_WAITREAD_END)  to_server
                 -> QUEUE_START          server_receive (read, parse, create the request)
                 -> COMPUTE_START        queue
                 -> COMPUTE_INPUT_END    compute_input
                 -> COMPUTE_OUTPUT_START compute_infer
                 -> response send starts server_output (outputs, response building)
                 -> client end           from_server (send, wire, client read and parse)

The response's send *start* (HTTP_SEND_START / GRPC_SEND_START) is the last boundary: its end
can be stamped after the client already has the answer (gRPC stamps GRPC_SEND_END when its
completion queue reports the write), and Triton's COMPUTE_OUTPUT and REQUEST spans may end
after the response went out (the python backend finishes its bookkeeping after sending), so
``compute_output_ns`` and ``server_ns`` (frontend receive start to send end) are information,
not segments. Causality gives a clock check: a request cannot reach the server before the
client started it, nor finish at the client before the server began sending (``clock_issues``).
"""

from __future__ import annotations

import pandas as pd

from .executions import COLUMNS as EXECUTION_COLUMNS
from .executions import executions

FRONTEND = ("END_TO_END", "REQUEST")   # the server span: frontend receive..send, else core
SEND_STAGES = ("HTTP_SEND", "GRPC_SEND")
SEGMENTS = ["to_server_ns", "server_receive_ns", "queue_ns", "compute_input_ns",
            "compute_infer_ns", "server_output_ns", "from_server_ns"]
JOINED_COLUMNS = ["request_id", "level", "trial", "client_latency_ns", *SEGMENTS,
                  "compute_output_ns", "server_ns", *EXECUTION_COLUMNS]
# the raw stamps kept beside them (not segments): what the path, the executions and the
# Perfetto trace are drawn from
STAMPS = ["send_start_ns", "end_ns", "start_ns", "compute_start_ns", "compute_end_ns"]
# trace stage -> the statistics-extension stage it must agree with
STATS_STAGE = {"QUEUE": "queue", "COMPUTE_INPUT": "compute_input",
               "COMPUTE_INFER": "compute_infer", "COMPUTE_OUTPUT": "compute_output"}


def _stage_table(trace_requests: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Rows of this run's requests, one per (request, stage), stage as plain text."""
    ids = trace_requests["request_id"].astype("string")
    rows = trace_requests[ids.str.startswith(prefix, na=False)]
    return rows.assign(stage=rows["stage"].astype(str))


def server_spans(trace_requests: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """One row per traced request of this run with its server boundaries (ns, monotonic)."""
    rows = _stage_table(trace_requests, prefix)
    starts = rows.pivot_table(index="request_id", columns="stage", values="start_ns", aggfunc="min")
    ends = rows.pivot_table(index="request_id", columns="stage", values="end_ns", aggfunc="max")
    out = pd.DataFrame(index=starts.index)
    span = next((s for s in FRONTEND if s in starts.columns), None)
    out["server_start_ns"] = starts[span] if span else pd.NA
    out["server_end_ns"] = ends[span] if span else pd.NA
    send = [s for s in SEND_STAGES if s in starts.columns]
    out["send_start_ns"] = starts[send].min(axis=1) if send else out["server_end_ns"]
    for column, (table, stage) in {"queue_start_ns": (starts, "QUEUE"),
                                   "compute_start_ns": (starts, "COMPUTE_INPUT"),
                                   "input_end_ns": (ends, "COMPUTE_INPUT"),
                                   "infer_end_ns": (ends, "COMPUTE_INFER"),
                                   "output_start_ns": (starts, "COMPUTE_OUTPUT"),
                                   "output_end_ns": (ends, "COMPUTE_OUTPUT")}.items():
        out[column] = table[stage] if stage in table.columns else pd.NA
    # COMPUTE_END: the end of the whole compute, the same for every request of a batch
    out["compute_end_ns"] = ends["COMPUTE"] if "COMPUTE" in ends.columns else out["output_end_ns"]
    return out.reset_index()


def join_requests(client: pd.DataFrame, spans: pd.DataFrame, rows: int = 1) -> pd.DataFrame:
    """Client records (``SweepResult.requests_table``) joined with ``server_spans``; ``rows``:
    each request's batch rows (the first dim of its input as sent), for its compute share."""
    ok = client[client["ok"]] if "ok" in client else client
    m = ok.merge(spans, on="request_id", how="inner")
    if m.empty:
        return pd.DataFrame(columns=JOINED_COLUMNS)
    m["client_latency_ns"] = m["end_ns"] - m["start_ns"]
    m["to_server_ns"] = m["server_start_ns"] - m["start_ns"]
    m["server_receive_ns"] = m["queue_start_ns"] - m["server_start_ns"]
    m["queue_ns"] = m["compute_start_ns"] - m["queue_start_ns"]
    m["compute_input_ns"] = m["input_end_ns"] - m["compute_start_ns"]
    m["compute_infer_ns"] = m["infer_end_ns"] - m["input_end_ns"]
    m["server_output_ns"] = m["send_start_ns"] - m["infer_end_ns"]
    m["from_server_ns"] = m["end_ns"] - m["send_start_ns"]
    m["compute_output_ns"] = m["output_end_ns"] - m["output_start_ns"]
    m["server_ns"] = m["server_end_ns"] - m["server_start_ns"]
    m = m.join(executions(m, rows))
    out = m[JOINED_COLUMNS + STAMPS].copy()
    timed = [c for c in JOINED_COLUMNS[3:] if c != "compute_share"] + STAMPS[3:]
    out[timed] = out[timed].astype("Int64")
    return out


def clock_issues(joined: pd.DataFrame) -> int:
    """Requests that break causality on the shared clock: reached the server before the client
    started them, or completed at the client before the server began sending the response."""
    before = joined["to_server_ns"] < 0
    early = joined["end_ns"] < joined["send_start_ns"]
    return int((before | early).fillna(False).sum())


def stage_totals(trace_requests: pd.DataFrame, prefix: str) -> dict[str, tuple[int, int]]:
    """{stats stage: (requests, total ns)} over this run's traced requests: the trace's view of
    what ``/v2/models/M/stats`` counts, so the two can be compared."""
    rows = _stage_table(trace_requests, prefix)
    out = {}
    for stage, stats_stage in STATS_STAGE.items():
        picked = rows[rows["stage"] == stage]
        out[stats_stage] = (int(picked["request_id"].nunique()),
                            int((picked["end_ns"] - picked["start_ns"]).sum()))
    return out
