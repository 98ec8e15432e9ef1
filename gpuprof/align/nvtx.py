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
    cand_rows = _push_pop_rows(ranges, domain)
    if launched.size == 0 or cand_rows.size == 0:
        return result
    pos = call_pos[launched]
    call_tid = api_calls["global_tid"].to_numpy()[pos]
    call_start = api_calls["start_ns"].to_numpy()[pos]
    call_end = api_calls["end_ns"].to_numpy()[pos]
    range_tid = ranges["global_tid"].to_numpy()[cand_rows]
    range_start = ranges["start_ns"].to_numpy()[cand_rows]
    range_end = ranges["end_ns"].to_numpy()[cand_rows]
    for gtid in np.unique(range_tid):
        on_thread = np.flatnonzero(call_tid == gtid)
        if on_thread.size:
            mine = range_tid == gtid
            found = _innermost(range_start[mine], range_end[mine], cand_rows[mine],
                               call_start[on_thread], call_end[on_thread])
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


def _push_pop_rows(ranges: pd.DataFrame, domain: str | None) -> np.ndarray:
    mask = (ranges["range_kind"] == "push_pop").to_numpy()
    if domain is not None:
        mask = mask & (ranges["domain"] == domain).to_numpy()
    return np.flatnonzero(mask)


def _innermost(r_start: np.ndarray, r_end: np.ndarray, rows: np.ndarray,
               start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For calls on one thread, the ``rows`` entry of the innermost enclosing range, or -1."""
    order = np.lexsort((-r_end, r_start))  # by start, outer (longer) first on ties
    r_start, r_end, rows = r_start[order], r_end[order], rows[order]
    parent = _parents(r_start, r_end)
    cand = np.searchsorted(r_start, start, side="right") - 1
    for _ in range(len(r_start) + 1):  # at most the nesting depth; bounded for damaged input
        need_up = (cand >= 0) & (r_end[np.maximum(cand, 0)] < end)
        if not need_up.any():
            break
        cand = np.where(need_up, parent[np.maximum(cand, 0)], cand)
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
