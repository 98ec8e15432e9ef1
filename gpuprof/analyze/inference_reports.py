"""The reports of a ``gpuprof.profile()`` run (the FuriosaAI profiler's, for GPU runtimes):
an inference summary, one row per inference with its record label, one per execution, per
operator type, the operators that ran on the CPU, and every span as one raw frame.

Pure functions of a Profile's tables (``iterations``: one row per captured call;
``nvtx_ranges`` in domain "gpuprof": the records; ``layer_timings``: ONNX Runtime's nodes),
so a saved run gives the same tables as the live profiler.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BadInputError
from ..model import Profile
from .stats import PERCENTILE_METHOD, describe, describe_by, unreliable_percentiles

RECORD_DOMAIN = "gpuprof"
SUMMARY_PERCENTILES = (50, 90, 95, 97, 99, 99.9)
UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
NO_RECORD = "(no record)"
CPU_PROVIDER = "CPUExecutionProvider"


def records(profile: Profile) -> pd.DataFrame:
    ranges = profile.nvtx_ranges
    return ranges[(ranges["domain"] == RECORD_DOMAIN) & (ranges["range_kind"] == "push_pop")]


def record_labels(calls: pd.DataFrame, spans: pd.DataFrame) -> np.ndarray:
    """The innermost record on the calling thread that holds each call (records on one thread
    nest, so among those holding a call the one that starts last is innermost)."""
    labels = np.full(len(calls), NO_RECORD, dtype=object)
    start, end, tid = (calls[c].to_numpy() for c in ("start_ns", "end_ns", "tid"))
    for span in spans.sort_values("start_ns", kind="stable").itertuples(index=False):
        inside = (tid == span.tid) & (start >= span.start_ns) & (end <= span.end_ns)
        labels[inside] = str(span.text)
    return labels


def inferences(profile: Profile) -> pd.DataFrame:
    """One row per captured inference call, in call order."""
    calls = profile.iterations
    return pd.DataFrame({
        "inference": calls["iteration"].to_numpy(),
        "record": record_labels(calls, records(profile)),
        "runtime": calls["source"].astype(object).to_numpy(),
        "thread": calls["tid"].to_numpy(),
        "start_ns": calls["start_ns"].to_numpy(),
        "latency_ns": calls["latency_ns"].to_numpy(),
    })


def summary(profile: Profile, unit: str = "ns") -> pd.DataFrame:
    """count, min, max, mean, median, p90, p95, p97, p99, p99.9 of the inference latency in
    ``unit``; ``attrs`` state n, the percentile method and the percentiles too few samples back."""
    scale = _scale(unit)
    latency = profile.iterations["latency_ns"].to_numpy(dtype="float64")
    stats = describe(latency, SUMMARY_PERCENTILES)
    names = ["min", "max", "mean", "p50", "p90", "p95", "p97", "p99", "p99.9"]
    values = [stats["count"]] + [stats[name] / scale for name in names]
    index = ["count", "min", "max", "mean", "median", "p90", "p95", "p97", "p99", "p99.9"]
    # object dtype: the count stays an integer beside the float statistics
    frame = pd.DataFrame({f"latency_{_ascii(unit)}": pd.Series(values, dtype=object).to_numpy()},
                         index=pd.Index(index, name="statistic"))
    frame.attrs.update(n=int(stats["count"]), unit=unit, percentile_method=PERCENTILE_METHOD,
                       unreliable=unreliable_percentiles(int(stats["count"]), SUMMARY_PERCENTILES))
    return frame


def executions(profile: Profile) -> pd.DataFrame:
    """Per inference, what the runtime executed: GPU time from CUDA events (TensorRT), and
    ONNX Runtime's nodes (count and summed time) with the host time outside them."""
    calls = profile.iterations
    nodes = profile.layer_timings.groupby("iteration")["duration_ns"].agg(["count", "sum"])
    iteration = calls["iteration"]
    operators = iteration.map(nodes["count"]).fillna(0).astype("int64")
    operators_ns = iteration.map(nodes["sum"]).astype("Int64")
    return pd.DataFrame({
        "inference": iteration.to_numpy(),
        "record": record_labels(calls, records(profile)),
        "runtime": calls["source"].astype(object).to_numpy(),
        "latency_ns": calls["latency_ns"].to_numpy(),
        "gpu_ns": calls["compute_ns"].where(calls["compute_ns"] >= 0).astype("Int64").to_numpy(),
        "operators": operators.to_numpy(),
        "operators_ns": operators_ns.to_numpy(),
        "outside_operators_ns": (calls["latency_ns"].astype("Int64") - operators_ns).to_numpy(),
    })


def operators(profile: Profile) -> pd.DataFrame:
    """Per operator type: its average elapsed time and how many times it ran, slowest first."""
    layers = profile.layer_timings
    types = layers["layer_type"].astype(object).fillna(layers["layer"].astype(object))
    grouped = layers.groupby(types.rename("name"))["duration_ns"]
    out = grouped.agg(average_elapsed_ns="mean", count="count", total_ns="sum").reset_index()
    return out.sort_values(["average_elapsed_ns", "name"], ascending=[False, True],
                           ignore_index=True)


def cpu_operators(profile: Profile) -> pd.DataFrame:
    """Every operator execution that ran on the CPU (ONNX Runtime's CPU provider), with its
    position within its inference."""
    layers = profile.layer_timings
    order = layers.sort_values(["iteration", "start_ns"], kind="stable")
    order = order.assign(operator_index=order.groupby("iteration").cumcount())
    cpu = order[order["provider"].astype(object) == CPU_PROVIDER]
    labels = dict(zip(profile.iterations["iteration"],
                      record_labels(profile.iterations, records(profile))))
    return pd.DataFrame({
        "inference": cpu["iteration"].to_numpy(),
        "record": cpu["iteration"].map(labels).to_numpy(),
        "name": cpu["layer_type"].astype(object).to_numpy(),
        "node": cpu["layer"].astype(object).to_numpy(),
        "operator_index": cpu["operator_index"].to_numpy(),
        "start_ns": cpu["start_ns"].to_numpy(),
        "dur_ns": cpu["duration_ns"].to_numpy(),
    })


def frame(profile: Profile) -> pd.DataFrame:
    """Every span as one table: records, inferences and operators (kind says which)."""
    spans = records(profile)
    calls = inferences(profile)
    layers = profile.layer_timings
    parts = [
        pd.DataFrame({"kind": "record", "name": spans["text"].astype(object),
                      "thread": spans["tid"], "start_ns": spans["start_ns"],
                      "dur_ns": spans["end_ns"] - spans["start_ns"], "inference": -1}),
        pd.DataFrame({"kind": "inference", "name": calls["runtime"], "thread": calls["thread"],
                      "start_ns": calls["start_ns"], "dur_ns": calls["latency_ns"],
                      "inference": calls["inference"]}),
        pd.DataFrame({"kind": "operator", "name": layers["layer"].astype(object), "thread": -1,
                      "start_ns": layers["start_ns"], "dur_ns": layers["duration_ns"],
                      "inference": layers["iteration"]}),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["kind", "name", "thread", "start_ns", "dur_ns", "inference"])
    return pd.concat(parts, ignore_index=True).sort_values("start_ns", kind="stable",
                                                            ignore_index=True)


def _scale(unit: str) -> int:
    if unit not in UNIT_NS:
        raise BadInputError(f"unknown time unit '{unit}'", f"Use one of: {', '.join(UNIT_NS)}")
    return UNIT_NS[unit]


def _ascii(unit: str) -> str:
    return "us" if unit == "µs" else unit


def by_record(profile: Profile) -> pd.DataFrame:
    """Latency statistics per record (ns), records in the order they first ran."""
    table = inferences(profile)
    stats = describe_by(table, "record", "latency_ns", (50, 90, 99))
    first = table.groupby("record", sort=False)["inference"].min()
    return stats.assign(first=stats["record"].map(first)).sort_values("first", ignore_index=True) \
        .drop(columns="first")
