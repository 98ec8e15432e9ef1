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


def _index_dtype(n: int) -> type:
    """int32 positions where they fit: per-row index arrays of millions halve in size."""
    return np.int32 if n < 2**31 else np.int64


def project_to_ranges(work: pd.DataFrame, api_calls: pd.DataFrame, ranges: pd.DataFrame,
                      domain: str | None = None) -> np.ndarray:
    """Row position in ``ranges`` of each ``work`` row's innermost enclosing range, or -1.

    ``work`` is the kernels or copies table, ``api_calls`` the runtime calls, ``ranges`` the
    nvtx_ranges table. With ``domain`` set, only that NVTX domain's ranges are candidates.
    """
    call_pos = match_calls(work, api_calls)
    is_launched = call_pos >= 0
    cand_rows = push_pop_rows(ranges, domain)
    if not is_launched.any() or cand_rows.size == 0:
        return np.full(len(work), NO_RANGE, dtype=_index_dtype(len(ranges)))
    if is_launched.all():  # every row was launched: index nothing
        launched, pos = slice(None), call_pos
    else:
        launched = np.flatnonzero(is_launched)
        pos = call_pos[launched]
    del is_launched
    del call_pos
    call_start = api_calls["start_ns"].to_numpy()[pos]
    # call ends are needed only where a candidate range ends too early: looked up there
    call_end = _Lookup(api_calls["end_ns"].to_numpy(), pos)
    all_tid = api_calls["global_tid"].to_numpy()
    # all calls on one thread (the common case): no per-call thread ids to gather
    call_tid = None if all_tid.min() == all_tid.max() else all_tid[pos]

    def candidates(column):
        values = ranges[column].to_numpy()
        return values if cand_rows.size == len(values) else values[cand_rows]

    all_range_tid = ranges["global_tid"].to_numpy()
    if all_range_tid.min() == all_range_tid.max():  # one thread: no thread ids to gather
        range_tid = all_range_tid[:1]
    else:
        range_tid = candidates("global_tid")
    range_start, range_end = candidates("start_ns"), candidates("end_ns")
    one_thread = range_tid.min() == range_tid.max()
    if one_thread and call_tid is None and all_tid[0] == range_tid[0] and isinstance(launched, slice):
        # the common case: every row launched from the one thread that has ranges
        return _innermost(range_start, range_end, cand_rows, call_start, call_end)
    result = np.full(len(work), NO_RANGE, dtype=_index_dtype(len(ranges)))
    for gtid in (range_tid[:1] if one_thread else np.unique(range_tid)):
        if call_tid is None:
            if all_tid[0] != gtid:
                continue
            on_thread = None
        else:
            on_thread = call_tid == gtid
            on_thread = None if on_thread.all() else np.flatnonzero(on_thread)
            if on_thread is not None and on_thread.size == 0:
                continue
        mine = slice(None) if one_thread else range_tid == gtid
        if on_thread is None:
            result[launched] = _innermost(range_start[mine], range_end[mine], cand_rows[mine],
                                          call_start, call_end)
        else:
            target = on_thread if isinstance(launched, slice) else launched[on_thread]
            result[target] = _innermost(range_start[mine], range_end[mine], cand_rows[mine],
                                        call_start[on_thread], call_end.subset(on_thread))
    return result


class _Lookup:
    """``values[positions]`` read only at the indices asked for, never gathered in full."""

    def __init__(self, values: np.ndarray, positions: np.ndarray):
        self.values, self.positions = values, positions

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.values[self.positions[index]]

    def subset(self, index: np.ndarray) -> _Lookup:
        return _Lookup(self.values, self.positions[index])


def match_calls(work: pd.DataFrame, api_calls: pd.DataFrame) -> np.ndarray:
    """Row position in ``api_calls`` with the same (pid, correlation_id) as each work row, or -1.

    Where one call row has a key, the first (lowest) row position wins."""
    if work.empty or api_calls.empty:
        return np.full(len(work), NO_RANGE, dtype=np.int64)
    found = _match_dense(work, api_calls)
    if found is None:
        found = _match_sorted(_key(api_calls), _key(work))
    found[work["correlation_id"].to_numpy() <= 0] = NO_RANGE
    return found


def _match_sorted(call_keys: np.ndarray, work_keys: np.ndarray) -> np.ndarray:
    order = np.argsort(call_keys, kind="stable")
    sorted_keys = call_keys[order]
    pos = np.searchsorted(sorted_keys, work_keys)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == work_keys, order[pos], NO_RANGE)


LOW32 = 0xFFFFFFFF


def _low32(values: np.ndarray) -> np.ndarray:
    """``values & 0xFFFFFFFF``, without a copy where that changes nothing."""
    if len(values) and values.min() >= 0 and values.max() <= LOW32:
        return values
    return values & LOW32


def _match_dense(work: pd.DataFrame, api_calls: pd.DataFrame) -> np.ndarray | None:
    """The common case in O(n): all calls in one process, correlation ids unique and dense
    enough to index a lookup table directly. None when the case does not apply.

    Same keys as ``_key``: equal keys mean equal low 32 bits of pid and of correlation id."""
    call_pid = api_calls["pid"].to_numpy(np.int64)
    if call_pid.min() != call_pid.max():
        return None
    low = _low32(api_calls["correlation_id"].to_numpy(np.int64))
    size = int(low.max()) + 1
    n = len(low)
    if size > 4 * n + (1 << 20):
        return None
    dtype = np.int32 if n < 2**31 else np.int64
    table = np.full(size, NO_RANGE, dtype=dtype)
    table[low] = np.arange(n, dtype=dtype)
    if np.count_nonzero(table >= 0) != n:  # repeated keys: leave the choice to the sort
        return None
    del low
    work_low = _low32(work["correlation_id"].to_numpy(np.int64))
    work_pid = work["pid"].to_numpy(np.int64)
    same = (int(call_pid[0]) & LOW32)
    if work_pid.min() == work_pid.max() and (int(work_pid[0]) & LOW32) == same:
        usable = None if work_low.max() < size else work_low < size
    else:
        usable = ((work_pid & LOW32) == same) & (work_low < size)
    if usable is None:
        return table[work_low]
    found = table[np.where(usable, work_low, 0)]
    found[~usable] = NO_RANGE
    return found


def _key(frame: pd.DataFrame) -> np.ndarray:
    # PIDs fit in 24 bits and correlation ids in 32, so one int64 holds both.
    return (frame["pid"].to_numpy(np.int64) << 32) | (frame["correlation_id"].to_numpy(np.int64) & 0xFFFFFFFF)


def push_pop_rows(ranges: pd.DataFrame, domain: str | None) -> np.ndarray:
    """Positions in ``ranges`` of the push/pop ranges (of ``domain`` when given)."""
    mask = _equals(ranges["range_kind"], "push_pop")
    if domain is not None:
        mask &= _equals(ranges["domain"], domain)
    return np.flatnonzero(mask).astype(_index_dtype(len(ranges)), copy=False)


def _equals(column: pd.Series, label: str) -> np.ndarray:
    """``column == label`` for a categorical, through its codes (no pandas temporaries)."""
    values = column.array
    if not isinstance(values, pd.Categorical):
        return (column == label).to_numpy(dtype=bool)
    if label not in values.categories:
        return np.zeros(len(values), dtype=bool)
    return values.codes == values.categories.get_loc(label)


def _innermost(r_start: np.ndarray, r_end: np.ndarray, rows: np.ndarray,
               start: np.ndarray, end) -> np.ndarray:
    """For calls on one thread, the ``rows`` entry of the innermost enclosing range, or -1.

    ``end`` is indexed only by arrays of call indices (an array or a ``_Lookup``)."""
    order = _by_start_outer_first(r_start, r_end)
    if order is not None:
        r_start, r_end, rows = r_start[order], r_end[order], rows[order]
    cand = np.searchsorted(r_start, start, side="right")
    cand -= 1
    # Climb parents only for calls whose candidate does not enclose them: usually few, so
    # parents are found only for the ranges that need them.
    active = np.concatenate([_ending_before(r_end, cand, end, a, min(a + CHUNK, len(cand)))
                             for a in range(0, len(cand), CHUNK)] or [np.empty(0, dtype=np.int64)])
    active = _drop_unenclosed(r_end, cand, end, active)
    active = _walk_back(r_end, cand, end, active)
    parents = _Parents(r_start, r_end) if active.size else None
    for _ in range(len(r_start) + 1):  # at most the nesting depth; bounded for damaged input
        if active.size == 0:
            break
        cand[active] = parents.of(cand[active])
        active = active[cand[active] >= 0]
        active = active[r_end[cand[active]] < end[active]]
    found = rows.take(cand)  # -1 takes the last row: overwritten just below
    found[cand < 0] = NO_RANGE
    return found


CHUNK = 1 << 20  # calls per step where a step needs temporaries per call
# Ranges a call's candidate steps back before parents are computed for all ranges: the range
# enclosing such a call (between two layers: the engine's enqueue range) is usually a few
# dozen ranges back, and the parents of millions of ranges cost a sort of all their ends.
WALK_STEPS = 128


def _drop_unenclosed(r_end: np.ndarray, cand: np.ndarray, end, active: np.ndarray) -> np.ndarray:
    """Calls that no range encloses (none of the ranges starting before them reaches their
    end: the running maximum of range ends says so in one pass) get no range (-1, in place);
    the other active calls are returned."""
    if active.size == 0:
        return active
    reach = np.maximum.accumulate(r_end)
    pos = cand[active]
    outside = (pos < 0) | (reach[np.maximum(pos, 0)] < end[active])
    cand[active[outside]] = -1
    return active[~outside]


def _walk_back(r_end: np.ndarray, cand: np.ndarray, end, active: np.ndarray) -> np.ndarray:
    """Step the candidates of ``active`` calls back one range at a time (in place) until one
    encloses the call or none is left; return the calls still unresolved after WALK_STEPS.

    Ranges nest, so the innermost range enclosing a call is the last one before its
    candidate that ends at or after the call (it starts before, so it encloses); a call
    still unresolved climbs parents from where its walk stopped, which is still below that
    range."""
    for _ in range(WALK_STEPS):
        if active.size == 0:
            break
        cand[active] -= 1
        pos = cand[active]
        open_ = pos >= 0  # -1: no range left, so none encloses the call
        active, pos = active[open_], pos[open_]
        active = active[r_end[pos] < end[active]]
    return active


def _ending_before(r_end: np.ndarray, cand: np.ndarray, end, a: int, b: int) -> np.ndarray:
    """Indices in [a, b) of calls with a candidate range that ends before the call does."""
    part = cand[a:b]
    index = np.arange(a, b)
    below = r_end.take(part) < end[index]  # -1 takes the last range: masked just below
    below &= part >= 0
    return index[below]


def _by_start_outer_first(start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """The order by start, outer (longer) first on ties; None when already in that order."""
    if len(start) < 2:
        return None
    if (start[1:] > start[:-1]).all():
        return None
    order = np.argsort(start, kind="stable")
    ordered = start[order]
    if (ordered[1:] > ordered[:-1]).all():  # no ties: nothing for the end to decide
        return order
    return np.lexsort((-end, start))


class _Parents:
    """Parent index of ranges (sorted by start, outer first) in their thread's nesting.

    A range's depth is how many ranges enclose it; its parent is the last range before it
    one level up. Depths are found for all ranges at once, parents only where asked.
    """

    def __init__(self, start: np.ndarray, end: np.ndarray):
        n = len(start)
        dtype = _index_dtype(n)
        # in place and in int32 where it fits: this runs over millions of ranges
        depth = np.arange(n, dtype=dtype)
        depth -= np.searchsorted(np.sort(end), start, side="right").astype(dtype, copy=False)
        # A zero-length range counts its own end among those "ended before" it; undo that.
        depth += end <= start
        self.depth = depth
        self._at_level: dict[int, np.ndarray] = {}

    def of(self, index: np.ndarray) -> np.ndarray:
        parent = np.full(len(index), -1, dtype=np.int64)
        depth = self.depth[index]
        for level in np.unique(depth[depth >= 1]):
            children = depth == level
            owners = self._level(int(level) - 1)
            if owners.size == 0:
                continue
            pos = np.searchsorted(owners, index[children]) - 1
            parent[children] = np.where(pos >= 0, owners[np.maximum(pos, 0)], -1)
        return parent

    def _level(self, level: int) -> np.ndarray:
        if level not in self._at_level:
            self._at_level[level] = np.flatnonzero(self.depth == level)
        return self._at_level[level]


