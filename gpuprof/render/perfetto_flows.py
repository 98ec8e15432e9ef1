"""Launch arrows of the Perfetto protobuf trace: which slices a flow starts, passes, ends, and
the small, reused ids that name them.

One flow per API call that launched GPU work: it runs from the call through each kernel or
copy with the call's correlation id (same process), in start order, and ends at the last (a
graph launch has many). Perfetto's trace processor reads a flow id it has not seen (or seen
end) as a new flow, so an id can be used again once its flow has ended: ids recycled that way
stay below 128 or 16,384 (one or two varint bytes) where unique ids would take three or four,
about 2 bytes less per kernel and per launching call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import Profile

GPU_TABLES = ("kernels", "copies")
# ids 1..pool: one varint byte up to 127, two up to 16,383, three up to 2,097,151
ID_POOLS = (127, 16_383, 2_097_151)


@dataclass
class LaunchFlows:
    """Per api_calls row, the flow it starts (0: none); per GPU table row, the flow reaching
    it (0: none) and whether the flow ends there. Ids are small and reused (see module)."""

    out: np.ndarray                 # per api_calls row (uint64)
    reaching: dict[str, np.ndarray]  # per GPU table row (uint64)
    last: dict[str, np.ndarray]      # per GPU table row (bool)


def launch_flows(profile: Profile) -> LaunchFlows:
    calls = profile.api_calls
    keys, first_rows = _first_call_per_key(calls)
    api_rows, last = {}, {}
    for name in GPU_TABLES:
        table = profile.tables[name]
        api_rows[name] = _matching_rows(_launch_keys(table), keys, first_rows)
        last[name] = _last_of_each_flow(api_rows[name], table["start_ns"].to_numpy())
    # a flow passes from one table's rows to the other's: only the latest row may end it
    _end_once(api_rows, last, profile)
    ids = _flow_ids(calls["start_ns"].to_numpy(), api_rows, last, profile)
    reaching = {name: np.where(rows >= 0, ids[rows], 0).astype(np.uint64)
                for name, rows in api_rows.items()}
    return LaunchFlows(ids, reaching, last)


def _first_call_per_key(calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorted launch keys and, for each, the first api_calls row with it."""
    valid = np.flatnonzero(calls["correlation_id"].to_numpy() >= 0)
    keys, first = np.unique(_launch_keys(calls)[valid], return_index=True)
    return keys, valid[first]


def _launch_keys(table: pd.DataFrame) -> np.ndarray:
    """(pid, correlation id) as one int64: pids fit 24 bits, correlation ids 39."""
    pid = table["pid"].to_numpy(np.int64)
    corr = table["correlation_id"].to_numpy(np.int64)
    return (pid << 39) | (corr & ((1 << 39) - 1))


def _matching_rows(work_keys: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per GPU row: the api_calls row of its launch (-1: none)."""
    if not len(keys) or not len(work_keys):
        return np.full(len(work_keys), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, work_keys), len(keys) - 1)
    return np.where(keys[at] == work_keys, rows[at], -1)


def _last_of_each_flow(api_row: np.ndarray, start_ns: np.ndarray) -> np.ndarray:
    """True on the latest-starting row of each flow (within one table)."""
    order = np.lexsort((start_ns, api_row))
    sorted_rows = api_row[order]
    is_last = np.ones(len(order), bool)
    is_last[:-1] = sorted_rows[:-1] != sorted_rows[1:]
    out = np.zeros(len(api_row), bool)
    out[order] = is_last & (sorted_rows >= 0)
    return out


def _end_once(api_rows: dict, last: dict, profile: Profile) -> None:
    """Where one call launched both kernels and copies, keep the end on the later of the two
    tables' last rows only."""
    k_last, c_last = np.flatnonzero(last["kernels"]), np.flatnonzero(last["copies"])
    if not len(k_last) or not len(c_last):
        return
    both, k_at, c_at = np.intersect1d(api_rows["kernels"][k_last], api_rows["copies"][c_last],
                                      return_indices=True)
    if not len(both):
        return
    k_start = profile.tables["kernels"]["start_ns"].to_numpy()[k_last[k_at]]
    c_start = profile.tables["copies"]["start_ns"].to_numpy()[c_last[c_at]]
    last["kernels"][k_last[k_at[k_start < c_start]]] = False
    last["copies"][c_last[c_at[k_start >= c_start]]] = False


def _flow_ids(call_start: np.ndarray, api_rows: dict, last: dict, profile: Profile) -> np.ndarray:
    """Per api_calls row, its flow's id (0: starts none). A flow lives from its earliest
    slice (the call, or a kernel a skewed clock puts first) to its end."""
    begin = np.full(len(call_start), np.iinfo(np.int64).max, np.int64)
    end = np.full(len(call_start), np.iinfo(np.int64).min, np.int64)
    for name, rows in api_rows.items():
        starts = profile.tables[name]["start_ns"].to_numpy(np.int64)
        reached = rows >= 0
        np.minimum.at(begin, rows[reached], starts[reached])
        end[rows[last[name]]] = starts[last[name]]
    flows = np.flatnonzero(end > np.iinfo(np.int64).min)
    ids = np.zeros(len(call_start), np.uint64)
    ids[flows] = recycled_ids(np.minimum(begin[flows], call_start[flows]), end[flows])
    return ids


def recycled_ids(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """An id from 1 up per interval [begin, end], the same id only for intervals that do not
    meet: in begin order, id = rank % pool + 1 with the smallest pool for which every
    interval begins strictly after the one ``pool`` places before it has ended (so every
    earlier interval with its id has ended too). Unique ids when no pool fits."""
    order = np.argsort(begin, kind="stable")
    b, e = begin[order], end[order]
    rank = np.arange(len(order), dtype=np.uint64)
    ids = np.empty(len(order), np.uint64)
    for pool in ID_POOLS:
        if len(b) <= pool or bool(np.all(b[pool:] > e[:-pool])):
            ids[order] = rank % np.uint64(pool) + np.uint64(1)
            return ids
    ids[order] = rank + np.uint64(1)
    return ids
