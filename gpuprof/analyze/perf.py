"""Load-test numbers from raw request records and server statistics: pure functions.

A window's client numbers come from the requests that *completed* inside it (perf_analyzer's
rule); its server numbers from the difference of two ``/v2/models/M/stats`` samples taken at
its edges, averaged per request with each stage's own count. A level's result merges its last
``STABILITY_WINDOWS`` windows. All times stay in ns here; render chooses units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .stats import DEFAULT_PERCENTILES, describe, percentile_label

RECORD_COLUMNS = ["seq", "sched_ns", "start_ns", "sent_ns", "recv_ns", "end_ns", "error",
                  "client_port", "sent_bytes", "received_bytes"]
INT_COLUMNS = [c for c in RECORD_COLUMNS if c != "error"]
SERVER_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")
STABILITY_WINDOWS = 3


def records_frame(records: Sequence, prefix: str = "") -> pd.DataFrame:
    """One row per request, with derived durations (ns) and the request id sent to the server."""
    frame = pd.DataFrame.from_records(list(records), columns=RECORD_COLUMNS)
    for col in INT_COLUMNS:
        frame[col] = frame[col].astype("int64")
    frame["ok"] = frame["error"].isna()
    frame["latency_ns"] = frame["end_ns"] - frame["start_ns"]
    frame["send_ns"] = frame["sent_ns"] - frame["start_ns"]
    frame["wait_ns"] = frame["recv_ns"] - frame["sent_ns"]
    frame["receive_ns"] = frame["end_ns"] - frame["recv_ns"]
    frame["delay_ns"] = np.where(frame["sched_ns"] > 0, frame["start_ns"] - frame["sched_ns"], 0)
    frame["request_id"] = prefix + frame["seq"].astype(str)
    return frame


def server_averages(delta: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Average ns per request of each server stage over a window, and its request count."""
    out = {f"server_{stage}_ns": _per(delta.get(stage, (0, 0))) for stage in SERVER_STAGES}
    out["server_requests"] = int(delta.get("success", (0, 0))[0])
    out["server_failed"] = int(delta.get("fail", (0, 0))[0])
    out["server_executions"] = int(delta.get("execution_count", (0, 0))[0])
    return out


def _per(item: tuple[int, int]) -> float:
    count, ns = item
    return ns / count if count > 0 else float("nan")


def window_metrics(frame: pd.DataFrame, duration_ns: int, delta: dict, batch_size: int = 1,
                   percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
    """Throughput, client latency statistics and the server breakdown of one window (or merge)."""
    ok = frame[frame["ok"]]
    latency = describe(ok["latency_ns"], percentiles)
    seconds = duration_ns / 1e9
    out = {
        "requests": int(len(frame)), "errors": int((~frame["ok"]).sum()),
        "samples": int(latency["count"]), "duration_ns": int(duration_ns),
        "throughput_infer_s": len(ok) * batch_size / seconds if seconds > 0 else float("nan"),
        "latency_mean_ns": latency.get("mean", float("nan")),
        "latency_std_ns": latency.get("std", float("nan")),
        "send_ns": _mean(ok["send_ns"]), "wait_ns": _mean(ok["wait_ns"]),
        "receive_ns": _mean(ok["receive_ns"]),
        "delayed": int((frame["delay_ns"] > 1_000_000).sum()),
    }
    out |= {f"latency_{percentile_label(q)}_ns": latency[percentile_label(q)] for q in percentiles}
    return out | server_averages(delta)


def _mean(series: pd.Series) -> float:
    return float(series.mean()) if len(series) else float("nan")


def network_misc_ns(metrics: dict) -> float:
    """perf_analyzer's "Network+Server Send/Recv": client wait minus server queue and compute,
    floored at 0 because the two sides are measured separately."""
    server = sum(metrics.get(f"server_{s}_ns", 0) for s in SERVER_STAGES)
    if np.isnan(server) or np.isnan(metrics["latency_mean_ns"]):
        return float("nan")
    wait = metrics["latency_mean_ns"] - metrics["send_ns"] - metrics["receive_ns"]
    return max(0.0, wait - server)


def stable_latency_label(percentile: float | None) -> str:
    """The latency that must be stable: "mean" (perf_analyzer's default) or a percentile's
    label ("p95")."""
    return "mean" if percentile is None else percentile_label(percentile)


def stable_latency_key(percentile: float | None) -> str:
    """The ``window_metrics`` key of that latency."""
    return f"latency_{stable_latency_label(percentile)}_ns"


def is_stable(windows: Sequence[dict], pct: float, latency_key: str = "latency_mean_ns",
              count: int = STABILITY_WINDOWS) -> bool:
    """perf_analyzer's rule: the last ``count`` windows all have throughput, and max/min - 1 of
    both throughput and latency is within ``pct`` percent."""
    if len(windows) < count:
        return False
    last = windows[-count:]
    return (_within([w["throughput_infer_s"] for w in last], pct)
            and _within([w[latency_key] for w in last], pct))


def _within(values: list[float], pct: float) -> bool:
    arr = np.asarray(values, dtype="float64")
    if np.isnan(arr).any() or (arr <= 0).any():
        return False
    return arr.max() / arr.min() - 1 <= pct / 100.0


def sum_deltas(deltas: Sequence[dict]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for delta in deltas:
        for key, (count, ns) in delta.items():
            c, n = out.get(key, (0, 0))
            out[key] = (c + count, n + ns)
    return out


def level_table(levels: Sequence[dict]) -> pd.DataFrame:
    """One row per load level from ``{"level": x, "stable": b, "windows": n, **metrics}``."""
    frame = pd.DataFrame(list(levels))
    if not frame.empty:
        frame["network_misc_ns"] = [network_misc_ns(row) for row in frame.to_dict("records")]
    return frame
