"""Memory over time from allocation and free events, per kind of memory.

Each ``memory_events`` row is one allocation (positive bytes) or free (negative bytes); the
running sum per (source, device, memory kind) is the memory in use. Sources are kept apart
because they count different things (an allocator sees only its own allocations, nsys sees every
cudaMalloc) and adding them would double-count. Kinds are kept apart because they live in
different places: nsys records pinned and pageable host allocations under the GPU whose context
made them, and adding those to device memory reports more "GPU memory" than the GPU has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import UNNAMED, labelled

# memory_kind of the rows of a source that tells no kinds apart (NA in the table): its one kind
# is given by device_id (device memory on a GPU, process memory on -1)
ONE_KIND = "(one kind)"
# nsys memKind labels (ingest/nsys/schema.py) of memory that lives on the host, whatever GPU's
# context allocated it
HOST_KINDS = frozenset({"pageable", "pinned"})
KEYS = ["source", "device_id", "memory_kind"]
PHASE_KIND = "phase"  # ``kind`` of a zero-byte row that marks a phase change
TIMELINE_COLUMNS = ["time_ns", "device_id", "source", "memory_kind", "used_bytes", "phase"]
SUMMARY_COLUMNS = KEYS + ["events", "allocations", "frees", "allocated_bytes", "freed_bytes",
                          "peak_bytes", "peak_time_ns", "peak_phase", "final_bytes"]


def on_host(device_id: int, memory_kind: str) -> bool:
    """True for memory in host RAM: a host kind, or a one-kind source without a GPU."""
    return memory_kind in HOST_KINDS or (memory_kind == ONE_KIND and device_id < 0)


def memory_timeline(events: pd.DataFrame) -> pd.DataFrame:
    """Memory in use after each event, per (source, device, memory kind), in time order.

    Events at the same instant keep their input order, so an allocation followed by a free at
    one timestamp shows its short-lived peak.
    """
    return _running_use(events)[TIMELINE_COLUMNS]


def memory_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Per (source, device, memory kind): peak use, when it happened and in which phase, and
    final use.

    ``final_bytes`` above zero means memory still held when the capture ended (or freed by a
    path the source does not see). ``peak_phase`` is NA when the events carry no phase.
    """
    use = _running_use(events)
    if use.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in SUMMARY_COLUMNS})
    use["allocation"] = use["bytes"] > 0
    use["free"] = use["bytes"] < 0
    use["allocated"] = use["bytes"].clip(lower=0)
    use["freed"] = (-use["bytes"]).clip(lower=0)
    grouped = use.groupby(KEYS, observed=True, sort=True)
    out = grouped.agg(events=("bytes", "size"), allocations=("allocation", "sum"),
                      frees=("free", "sum"), allocated_bytes=("allocated", "sum"),
                      freed_bytes=("freed", "sum"), final_bytes=("used_bytes", "last"))
    # idxmax takes the first row reaching the maximum: the moment the peak was first reached
    peaks = use.loc[grouped["used_bytes"].idxmax()].set_index(KEYS)
    out["peak_bytes"] = peaks["used_bytes"]
    out["peak_time_ns"] = peaks["time_ns"]
    out["peak_phase"] = peaks["phase"]
    out = out.reset_index()
    out["source"] = out["source"].astype(str)
    out["memory_kind"] = out["memory_kind"].astype(str)
    return out[SUMMARY_COLUMNS]


def _running_use(events: pd.DataFrame) -> pd.DataFrame:
    """Events in time order with ``used_bytes``, the running sum per (source, device, kind)."""
    if events.empty:
        columns = TIMELINE_COLUMNS + ["bytes"]
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    frame = pd.DataFrame({
        "time_ns": events["time_ns"].to_numpy(dtype=np.int64),
        "device_id": events["device_id"].to_numpy(),
        "source": labelled(events["source"], UNNAMED),
        "memory_kind": labelled(_memory_kinds(events), ONE_KIND),
        "bytes": events["bytes"].to_numpy(dtype=np.int64),
        "phase": events["phase"].to_numpy(),
    }).sort_values("time_ns", kind="stable")
    frame["used_bytes"] = frame.groupby(KEYS, observed=True)["bytes"].cumsum()
    return frame.reset_index(drop=True)


def _memory_kinds(events: pd.DataFrame) -> pd.Series:
    """The events' memory kinds; all NA for a frame built without the column (a caller's own
    events, not a conformed table): one kind per source, as before kinds were told apart."""
    if "memory_kind" in events.columns:
        return events["memory_kind"]
    return pd.Series(pd.NA, index=events.index, dtype="object")


def is_phase_marker(events: pd.DataFrame) -> pd.Series:
    """Rows of ``events`` that only mark a phase change (a run's phase instants).

    A zero-byte row is not enough: an RSS sample that found no change and a failed or refused
    TensorRT allocation are zero-byte rows with a phase too. Markers say so in ``kind``
    ("phase", see ``capture/ort/rss.py``); rows without a kind are taken as markers.
    """
    kind = events["kind"].astype(object)
    return (events["bytes"] == 0) & events["phase"].notna() & (kind.isna() | (kind == PHASE_KIND))
