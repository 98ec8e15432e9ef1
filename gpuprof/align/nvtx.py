"""Attribute GPU work (kernels, copies) to the NVTX push/pop range that launched it.

A kernel ran for the runtime call with the same correlation id in the same process; that call
ran on one host thread, and the innermost push/pop range enclosing the call on that thread
(``range.start <= call.start and call.end <= range.end``) is the kernel's range. For TensorRT
engines those ranges are the engine's layers.

Push/pop ranges on one thread nest like a stack, which makes this vectorisable: sort a thread's
ranges by start (outer first on ties), give each its nesting depth and parent, then for each
call take the last range that started before it and climb parents until one encloses it.
Cost: O((calls + ranges) log ranges) per thread, no Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NO_RANGE = -1


def project_to_ranges(work: pd.DataFrame, api_calls: pd.DataFrame, ranges: pd.DataFrame,
                      domain: str | None = None) -> np.ndarray:
    """Row position in ``ranges`` of each ``work`` row's innermost enclosing range, or -1.

    ``work`` is the kernels or copies table, ``api_calls`` the runtime calls, ``ranges`` the
    nvtx_ranges table. With ``domain`` set, only that NVTX domain's ranges are candidates.
    """
    result = np.full(len(work), NO_RANGE, dtype=np.int64)
    call_pos = match_calls(work, api_calls)
    launched = np.flatnonzero(call_pos >= 0)
    candidates = _push_pop(ranges, domain)
    if launched.size == 0 or candidates.empty:
        return result
    calls = api_calls.iloc[call_pos[launched]]
    call_tid = calls["global_tid"].to_numpy()
    call_start, call_end = calls["start_ns"].to_numpy(), calls["end_ns"].to_numpy()
    for gtid, group in candidates.groupby("global_tid", sort=False):
        on_thread = np.flatnonzero(call_tid == gtid)
        if on_thread.size:
            found = _innermost(group, call_start[on_thread], call_end[on_thread])
            result[launched[on_thread]] = found
    return result


def match_calls(work: pd.DataFrame, api_calls: pd.DataFrame) -> np.ndarray:
    """Row position in ``api_calls`` with the same (pid, correlation_id) as each work row, or -1."""
    if work.empty or api_calls.empty:
        return np.full(len(work), NO_RANGE, dtype=np.int64)
    call_keys = _key(api_calls)
    order = np.argsort(call_keys, kind="stable")
    sorted_keys = call_keys[order]
    work_keys = _key(work)
    pos = np.searchsorted(sorted_keys, work_keys)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    hit = (sorted_keys[pos] == work_keys) & (work["correlation_id"].to_numpy() > 0)
    return np.where(hit, order[pos], NO_RANGE)


def _key(frame: pd.DataFrame) -> np.ndarray:
    # PIDs fit in 24 bits and correlation ids in 32, so one int64 holds both.
    return (frame["pid"].to_numpy(np.int64) << 32) | (frame["correlation_id"].to_numpy(np.int64) & 0xFFFFFFFF)


def _push_pop(ranges: pd.DataFrame, domain: str | None) -> pd.DataFrame:
    mask = ranges["range_kind"] == "push_pop"
    if domain is not None:
        mask &= ranges["domain"] == domain
    selected = ranges.loc[mask, ["start_ns", "end_ns", "global_tid"]]
    selected = selected.assign(row=np.flatnonzero(mask.to_numpy()))
    return selected


def _innermost(group: pd.DataFrame, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For calls on one thread, the ``row`` of the innermost enclosing range, or -1."""
    ordered = group.sort_values(["start_ns", "end_ns"], ascending=[True, False], kind="stable")
    r_start = ordered["start_ns"].to_numpy()
    r_end = ordered["end_ns"].to_numpy()
    parent = _parents(r_start, r_end)
    cand = np.searchsorted(r_start, start, side="right") - 1
    for _ in range(len(r_start) + 1):
        valid = cand >= 0
        need_up = valid & (r_end[np.maximum(cand, 0)] < end)
        if not need_up.any():
            break
        cand = np.where(need_up, parent[np.maximum(cand, 0)], cand)
    rows = ordered["row"].to_numpy()
    return np.where(cand >= 0, rows[np.maximum(cand, 0)], NO_RANGE)


def _parents(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Parent index of each range (sorted by start, outer first) in its thread's nesting."""
    n = len(start)
    index = np.arange(n)
    ended_before = np.searchsorted(np.sort(end), start, side="right")
    # A zero-length range counts its own end among those "ended before" it; undo that.
    depth = index - ended_before + (end <= start)
    parent = np.full(n, -1, dtype=np.int64)
    for level in range(1, int(depth.max(initial=0)) + 1):
        children = index[depth == level]
        owners = index[depth == level - 1]
        if owners.size == 0 or children.size == 0:
            continue
        pos = np.searchsorted(owners, children) - 1
        parent[children] = np.where(pos >= 0, owners[np.maximum(pos, 0)], -1)
    return parent
