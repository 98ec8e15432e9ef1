"""Memory use per run phase (load, warm-up, timed, profiled, ...) from ``memory_events``.

Built on ``memory.memory_timeline`` (running sum per source and device); pure, raw bytes/ns.
"""

from __future__ import annotations

import pandas as pd

from .memory import memory_timeline

COLUMNS = ["source", "device_id", "phase", "start_ns", "end_ns", "start_bytes", "peak_bytes",
           "end_bytes", "change_bytes"]


def memory_by_phase(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, device, phase) in time order: use at its start, peak and end.

    A phase's start use is the use just before its first event (the previous phase's end), so
    ``change_bytes`` is what the phase itself added or released.
    """
    timeline = memory_timeline(events)
    if timeline.empty or timeline["phase"].isna().all():
        return pd.DataFrame(columns=COLUMNS)
    timeline = timeline.assign(phase=timeline["phase"].astype(str), source=timeline["source"].astype(str))
    keys = ["source", "device_id"]
    timeline["before"] = timeline.groupby(keys)["used_bytes"].shift(1).fillna(0).astype("int64")
    # consecutive rows with the same phase form one block (a phase may recur, e.g. two loads)
    block = (timeline["phase"] != timeline.groupby(keys)["phase"].shift(1)).cumsum()
    grouped = timeline.groupby(keys + [block.rename("block")], sort=False)
    out = grouped.agg(phase=("phase", "first"), start_ns=("time_ns", "first"),
                      end_ns=("time_ns", "last"), start_bytes=("before", "first"),
                      peak_bytes=("used_bytes", "max"), end_bytes=("used_bytes", "last")).reset_index()
    out["change_bytes"] = out["end_bytes"] - out["start_bytes"]
    return out.sort_values(keys + ["start_ns"], kind="stable")[COLUMNS].reset_index(drop=True)
