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


NO_TIME = np.iinfo(np.int64).min
# a direct table of (pid, correlation id) -> call is used while it is at most this many
# times the calls (nsys numbers correlation ids densely per process)
DENSE_TABLE_FACTOR = 8
DENSE_TABLE_ROWS = 1_000_000  # and always up to this size


@dataclass
class _TableFlows:
    """One GPU table's rows against the calls that launched them."""

    api_row: np.ndarray  # per row: the launching call's api_calls row (-1: none)
    last: np.ndarray     # per row: the flow ends here
    latest: np.ndarray   # per call: the start of its latest row in this table (NO_TIME: none)


def launch_flows(profile: Profile) -> LaunchFlows:
    calls = profile.api_calls
    rows = _launch_rows(profile)
    tables = {name: _table_flows(rows[name], profile.tables[name]["start_ns"].to_numpy(),
                                 len(calls)) for name in GPU_TABLES}
    # a flow passes from one table's rows to the other's: only the latest row may end it
    _end_once(tables["kernels"], tables["copies"])
    ids = _flow_ids(calls["start_ns"].to_numpy(), tables, profile)
    reaching = {name: np.where(t.api_row >= 0, ids[t.api_row], 0).astype(np.uint64)
                for name, t in tables.items()}
    return LaunchFlows(ids, reaching, {name: t.last for name, t in tables.items()})


def _launch_rows(profile: Profile) -> dict[str, np.ndarray]:
    """Per GPU table row: the first api_calls row with its (pid, correlation id), -1: none.
    Correlation id 0 is CUPTI's "none" (as ``align.nvtx.match_calls`` reads it): rows with
    it launch nothing and are reached by nothing."""
    calls = profile.api_calls
    frames = [calls] + [profile.tables[name] for name in GPU_TABLES]
    pids = np.unique(np.concatenate([pd.unique(f["pid"].to_numpy(np.int64)) for f in frames]))
    span = 1 + max([int(f["correlation_id"].max()) for f in frames if len(f)] or [0])
    if len(pids) * span > DENSE_TABLE_FACTOR * len(calls) + DENSE_TABLE_ROWS:
        return _launch_rows_sorted(profile)
    valid = np.flatnonzero(calls["correlation_id"].to_numpy() > 0)
    first = np.full(len(pids) * span, len(calls), np.int64)
    np.minimum.at(first, _dense_keys(calls, pids, span)[valid], valid)
    first[first == len(calls)] = -1
    out = {}
    for name in GPU_TABLES:
        table = profile.tables[name]
        corr = table["correlation_id"].to_numpy()
        out[name] = np.where(corr > 0, first[np.where(corr > 0, _dense_keys(table, pids, span),
                                                      0)], -1)
    return out


def _dense_keys(table: pd.DataFrame, pids: np.ndarray, span: int) -> np.ndarray:
    """(pid, correlation id) as one index into a table of len(pids) * span."""
    corr = table["correlation_id"].to_numpy(np.int64)
    if len(pids) == 1:  # the common case: one process
        return corr
    return np.searchsorted(pids, table["pid"].to_numpy(np.int64)) * span + corr


def _launch_rows_sorted(profile: Profile) -> dict[str, np.ndarray]:
    """``_launch_rows`` for sparse correlation ids: a sorted search instead of a table."""
    calls = profile.api_calls
    valid = np.flatnonzero(calls["correlation_id"].to_numpy() > 0)
    keys, first = np.unique(_launch_keys(calls)[valid], return_index=True)
    return {name: _matching_rows(_launch_keys(profile.tables[name]), keys, valid[first],
                                 profile.tables[name]["correlation_id"].to_numpy() > 0)
            for name in GPU_TABLES}


def _launch_keys(table: pd.DataFrame) -> np.ndarray:
    """(pid, correlation id) as one int64: pids fit 24 bits, correlation ids 39."""
    pid = table["pid"].to_numpy(np.int64)
    corr = table["correlation_id"].to_numpy(np.int64)
    return (pid << 39) | (corr & ((1 << 39) - 1))


def _matching_rows(work_keys: np.ndarray, keys: np.ndarray, rows: np.ndarray,
                   launched: np.ndarray) -> np.ndarray:
    """Per GPU row: the api_calls row of its launch (-1: none, and where not ``launched``)."""
    if not len(keys) or not len(work_keys):
        return np.full(len(work_keys), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, work_keys), len(keys) - 1)
    return np.where((keys[at] == work_keys) & launched, rows[at], -1)


def _table_flows(api_row: np.ndarray, start_ns: np.ndarray, calls: int) -> _TableFlows:
    """Marks each flow's latest-starting row (the later row of a tie)."""
    reached = np.flatnonzero(api_row >= 0)
    pick = np.full(calls, -1, np.int64)
    if len(start_ns) < 2 or bool(np.all(start_ns[1:] >= start_ns[:-1])):
        np.maximum.at(pick, api_row[reached], reached)  # in start order: the last row
    else:
        latest = np.full(calls, NO_TIME, np.int64)
        np.maximum.at(latest, api_row[reached], start_ns[reached])
        ties = reached[start_ns[reached] == latest[api_row[reached]]]
        np.maximum.at(pick, api_row[ties], ties)
    last = np.zeros(len(api_row), bool)
    last[pick[pick >= 0]] = True
    latest = np.where(pick >= 0, start_ns[np.maximum(pick, 0)] if len(start_ns) else 0, NO_TIME)
    return _TableFlows(api_row, last, latest)


def _end_once(kernels: _TableFlows, copies: _TableFlows) -> None:
    """Where one call launched both kernels and copies, keep the end on the later of the two
    tables' last rows only (the kernel's on a tie)."""
    both = (kernels.latest > NO_TIME) & (copies.latest > NO_TIME)
    if not both.any():
        return
    copies_later = both & (copies.latest > kernels.latest)
    for table, drop in ((kernels, copies_later), (copies, both & ~copies_later)):
        rows = np.flatnonzero(table.last)
        table.last[rows[drop[table.api_row[rows]]]] = False


def _flow_ids(call_start: np.ndarray, tables: dict[str, _TableFlows],
              profile: Profile) -> np.ndarray:
    """Per api_calls row, its flow's id (0: starts none). A flow lives from its earliest
    slice (the call, or a kernel a skewed clock puts first) to its latest."""
    end = np.maximum(tables["kernels"].latest, tables["copies"].latest)
    flows = np.flatnonzero(end > NO_TIME)
    begin = call_start.astype(np.int64)
    for name, table in tables.items():
        starts = profile.tables[name]["start_ns"].to_numpy(np.int64)
        early = (table.api_row >= 0) & (starts < begin[np.maximum(table.api_row, 0)])
        if early.any():  # rare: only then the slower unbuffered minimum
            np.minimum.at(begin, table.api_row[early], starts[early])
    ids = np.zeros(len(call_start), np.uint64)
    ids[flows] = recycled_ids(begin[flows], end[flows])
    return ids


def recycled_ids(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """An id from 1 up per interval [begin, end], the same id only for intervals that do not
    meet: in begin order, id = rank % pool + 1 with the smallest pool for which every
    interval begins strictly after the one ``pool`` places before it has ended (so every
    earlier interval with its id has ended too). Unique ids when no pool fits."""
    in_order = len(begin) < 2 or bool(np.all(begin[1:] >= begin[:-1]))
    order = slice(None) if in_order else np.argsort(begin, kind="stable")
    b, e = begin[order], end[order]
    rank = np.arange(len(b), dtype=np.uint64)
    ids = np.empty(len(b), np.uint64)
    pool = next((p for p in ID_POOLS if len(b) <= p or bool(np.all(b[p:] > e[:-p]))), None)
    ids[order] = rank + np.uint64(1) if pool is None else rank % np.uint64(pool) + np.uint64(1)
    return ids
