"""Memory use per run phase (load, warm-up, timed, profiled, ...) from ``memory_events``.

Built on ``memory.memory_timeline`` (running sum per source, device and memory kind); pure, raw bytes/ns.
"""

from __future__ import annotations

import pandas as pd

from .memory import KEYS, memory_timeline

COLUMNS = ["source", "device_id", "memory_kind", "phase", "start_ns", "end_ns", "start_bytes", "peak_bytes",
           "end_bytes", "change_bytes"]


def memory_by_phase(events: pd.DataFrame) -> pd.DataFrame:
    """One row per run of consecutive events of one phase, per (source, device, memory kind),
    in time order within each: use at its start, peak and end.

    A phase may recur (e.g. two loads): each run is its own row. A phase's start use is the use
    just before its first event (the previous phase's end), so ``change_bytes`` is what the
    phase itself added or released. Events without a phase (e.g. nsys CUDA memory, which
    knows no run phases) count in the use but belong to no row.
    """
    timeline = memory_timeline(events)
    timeline["before"] = (timeline.groupby(KEYS, observed=True)["used_bytes"].shift(1)
                          .fillna(0).astype("int64"))
    timeline = timeline[timeline["phase"].notna()]
    if timeline.empty:
        return pd.DataFrame(columns=COLUMNS)
    timeline = timeline.assign(phase=timeline["phase"].astype(str),
                               source=timeline["source"].astype(str),
                               memory_kind=timeline["memory_kind"].astype(str))
    # a block is a run of consecutive rows of one phase within its own (source, device): rows
    # of other sources in between neither split it nor start a new one
    grouped = timeline.groupby(KEYS, sort=False)
    changed = timeline["phase"] != grouped["phase"].shift(1)
    block = changed.groupby([timeline[k] for k in KEYS], sort=False).cumsum().rename("block")
    blocks = timeline.groupby(KEYS + [block], sort=False)
    out = blocks.agg(phase=("phase", "first"), start_ns=("time_ns", "first"),
                     end_ns=("time_ns", "last"), start_bytes=("before", "first"),
                     peak_bytes=("used_bytes", "max"),
                     end_bytes=("used_bytes", "last")).reset_index()
    out["change_bytes"] = out["end_bytes"] - out["start_bytes"]
    return out.sort_values(KEYS + ["start_ns"], kind="stable")[COLUMNS].reset_index(drop=True)
