"""Parse ONNX Runtime's profiling JSON (``SessionOptions.enable_profiling``) into tables.

The file is a Chrome-trace list of complete events (``ph: "X"``) with ``ts``/``dur`` in
microseconds from the profiling start. ``cat: "Session"`` events include one ``model_run`` per
``session.run`` call; ``cat: "Node"`` events named ``<node>_kernel_time`` carry one node's
execution with ``args.op_name`` and ``args.provider`` (older releases also wrote
``_fence_before``/``_fence_after`` events, which are skipped). Node names are those of the
*optimized* graph ORT ran, so fused nodes (e.g. ``..._nchwc``) differ from the ONNX file's.

Each node event belongs to the ``model_run`` whose interval holds its start; that run's index
(after ``skip_runs`` warm-up runs) is the ``iteration``. Resolution is 1 us.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError, NoDataError

SOURCE = "onnxruntime"
KERNEL_SUFFIX = "_kernel_time"
RUN_EVENT = "model_run"
EXECUTE_EVENT = "SequentialExecutor::Execute"
US = 1000


@dataclass
class OrtProfile:
    layer_timings: pd.DataFrame        # the ``layer_timings`` table
    runs: pd.DataFrame                 # iteration, start_ns, end_ns, run_ns, execute_ns, nodes_ns
    providers: dict[str, int] = field(default_factory=dict)  # node executions per provider


def read_events(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        events = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"'{path.name}' is not an ONNX Runtime profile ({exc.__class__.__name__})",
                            "Pass the JSON file that session.end_profiling() returned") from exc
    if not isinstance(events, list):
        raise BadInputError(f"'{path.name}' is not an ONNX Runtime profile (not a JSON list)",
                            "Pass the JSON file that session.end_profiling() returned")
    return events


def parse_events(events: list[dict], offset_ns: int = 0, skip_runs: int = 0) -> OrtProfile:
    """Tables from profile events; ``offset_ns`` is added to ``ts * 1000`` to reach the run clock."""
    frame = _complete_events(events)
    runs = frame[(frame["cat"] == "Session") & (frame["name"] == RUN_EVENT)].sort_values("ts")
    nodes = frame[(frame["cat"] == "Node") & frame["name"].str.endswith(KERNEL_SUFFIX)]
    if nodes.empty:
        raise NoDataError("the ONNX Runtime profile holds no node events",
                          "Run at least one inference with profiling enabled")
    iteration = _run_index(nodes["ts"].to_numpy(), runs) - skip_runs
    keep = iteration >= 0
    nodes, iteration = nodes[keep], iteration[keep]
    layers = pd.DataFrame({
        "iteration": iteration,
        "layer": nodes["name"].str.slice(stop=-len(KERNEL_SUFFIX)).to_numpy(),
        "layer_type": nodes["op_name"].to_numpy(),
        "duration_ns": nodes["dur"].to_numpy() * US,
        "start_ns": nodes["ts"].to_numpy() * US + offset_ns,
        "source": SOURCE,
        "provider": nodes["provider"].to_numpy(),
    })
    providers = nodes["provider"].value_counts().to_dict()
    return OrtProfile(layers, _run_table(frame, runs.iloc[skip_runs:], layers, offset_ns), providers)


def _complete_events(events: list[dict]) -> pd.DataFrame:
    rows = [(e.get("cat"), str(e.get("name", "")), int(e.get("ts", 0)), int(e.get("dur", 0)),
             (e.get("args") or {}).get("op_name", "?"), (e.get("args") or {}).get("provider", "?"))
            for e in events if isinstance(e, dict) and e.get("ph", "X") == "X"]
    return pd.DataFrame(rows, columns=["cat", "name", "ts", "dur", "op_name", "provider"])


def _run_index(ts: np.ndarray, runs: pd.DataFrame) -> np.ndarray:
    """Index of the run whose [start, end] holds each ts; -1 when none does."""
    if runs.empty:
        return np.zeros(len(ts), dtype=np.int64)  # no run events: one pass, iteration 0
    starts, ends = runs["ts"].to_numpy(), (runs["ts"] + runs["dur"]).to_numpy()
    index = np.searchsorted(starts, ts, side="right") - 1
    inside = (index >= 0) & (ts <= ends[np.clip(index, 0, None)])
    return np.where(inside, index, -1 - len(starts)).astype(np.int64)


def _run_table(frame: pd.DataFrame, runs: pd.DataFrame, layers: pd.DataFrame,
               offset_ns: int) -> pd.DataFrame:
    execute = frame[(frame["cat"] == "Session") & (frame["name"] == EXECUTE_EVENT)]
    exec_index = _run_index(execute["ts"].to_numpy(), runs)
    exec_ns = pd.Series(execute["dur"].to_numpy() * US, index=exec_index).groupby(level=0).sum()
    node_ns = layers.groupby("iteration")["duration_ns"].sum()
    table = pd.DataFrame({
        "iteration": np.arange(len(runs), dtype=np.int64),
        "start_ns": runs["ts"].to_numpy() * US + offset_ns,
        "run_ns": runs["dur"].to_numpy() * US,
    })
    table["end_ns"] = table["start_ns"] + table["run_ns"]
    table["execute_ns"] = table["iteration"].map(exec_ns).fillna(-1).astype("int64")
    table["nodes_ns"] = table["iteration"].map(node_ns).fillna(0).astype("int64")
    return table
