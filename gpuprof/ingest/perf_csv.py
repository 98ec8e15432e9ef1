"""Load-test summary CSVs, as statistics per load level: perf_analyzer's ``-f`` CSV (also what
``gpuprof perf -f`` writes; times in µs) and model_analyzer's inference metrics CSV (p99 in ms).

They hold summaries, not per-request samples: `gpuprof diff` shows their deltas but gives no
significance verdict for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError

LEVELS = {"Concurrency": "concurrency", "Request Rate": "request rate"}
# perf_analyzer stage columns (µs, averages per request)
STAGE_COLUMNS = ("Client Send", "Network+Server Send/Recv", "Server Queue", "Server Compute Input",
                 "Server Compute Infer", "Server Compute Output", "Client Recv")
LATENCY_COLUMNS = {"p50 latency": "p50", "p90 latency": "p90", "p99 latency": "p99", "Avg latency": "mean"}
STAT_COLUMNS = ["name", "count", "total", "mean", "p50", "p90", "p99"]
NS_PER_US = 1_000
NS_PER_MS = 1_000_000


def read_perf_csv(path: str | Path) -> dict[str, pd.DataFrame]:
    """``{"latency": stats, "stage": stats}``, one row per load level (and stage), in ns."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, index_col=False)  # rows may end in a comma the header lacks
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadInputError(f"{path.name} is not a readable CSV ({exc.__class__.__name__})",
                            "Pass perf_analyzer's -f CSV or model_analyzer's metrics-model-inference.csv") from exc
    if "p99 Latency (ms)" in frame.columns:
        return _model_analyzer(frame)
    level = next((c for c in LEVELS if c in frame.columns), None)
    if level is None or not any(c in frame.columns for c in LATENCY_COLUMNS):
        raise BadInputError(f"{path.name} has no Concurrency/Request Rate column with latency percentiles",
                            "Pass perf_analyzer's -f CSV (or gpuprof perf -f) or model_analyzer's inference CSV")
    names = [f"{LEVELS[level]} {value:g}" for value in frame[level].astype(float)]
    latency = _stats(names, {stat: frame[column] * NS_PER_US for column, stat in LATENCY_COLUMNS.items()
                             if column in frame.columns}, frame.get("Samples"))
    stages = [_stats([f"{stage} @ {name}" for name in names], {"mean": frame[stage] * NS_PER_US}, None)
              for stage in STAGE_COLUMNS if stage in frame.columns]
    out = {"latency": latency}
    if stages:
        out["stage"] = pd.concat(stages, ignore_index=True)
    return out


def _model_analyzer(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    keys = [c for c in ("Model", "Model Config Path", "Batch", "Concurrency") if c in frame.columns]
    names = [" ".join(f"{k.lower()} {v}" for k, v in zip(keys, row)) for row in frame[keys].itertuples(index=False)]
    return {"latency": _stats(names, {"p99": frame["p99 Latency (ms)"] * NS_PER_MS}, None)}


def _stats(names: list[str], values: dict[str, pd.Series], samples) -> pd.DataFrame:
    out = pd.DataFrame({"name": names})
    for column in STAT_COLUMNS[1:]:
        out[column] = values[column].to_numpy(dtype=float) if column in values else np.nan
    if samples is not None:
        out["count"] = samples.to_numpy(dtype=float)
    return out.drop_duplicates("name")
