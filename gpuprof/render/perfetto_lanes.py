"""Tracks of the Perfetto protobuf trace as lanes: slices that do not overlap, in start
order, each lane one packet sequence.

Perfetto draws a track's slices as a stack of begin/end pairs, so slices on one track must
nest or follow each other; a track whose slices overlap otherwise (async NVTX start/end
ranges, partly overlapping ranges) is split into lanes. Nested push/pop ranges take one lane
per depth, which keeps a call stack readable.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import perfetto_packets as packets

CHUNK_ROWS = 65_536      # slices encoded at once: the encoder's columns stay in cache


@dataclass
class Slices:
    """Slices for one named track (split into lanes when they overlap)."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    codes: np.ndarray                 # each slice's name: an index into ``names``
    names: np.ndarray                 # object array of str
    flow: np.ndarray | None = None         # flow id started or passed here (0: none)
    terminating: np.ndarray | None = None  # flow id ended here (0: none)


@dataclass
class Lane:
    """Non-overlapping slices of one track, sorted by start: one packet sequence."""

    uuid: int
    start: np.ndarray
    end: np.ndarray
    codes: np.ndarray
    names: np.ndarray
    flow: np.ndarray
    terminating: np.ndarray

    def packets(self, sequence_id: int) -> Iterator:
        """The sequence's opening packet (its names interned), then its slices in chunks."""
        used = np.zeros(len(self.names), bool)
        used[self.codes] = True
        iids = np.cumsum(used)[self.codes]  # the lane's names numbered 1, 2, ... in code order
        base = int(self.start[0])
        yield packets.sequence_start(sequence_id, self.uuid, self.names[used].tolist(), base)
        previous = base
        for at in range(0, len(self.start), CHUNK_ROWS):
            part = slice(at, at + CHUNK_ROWS)
            yield packets.slice_packets(sequence_id, previous, self.start[part], self.end[part],
                                        iids[part], self.flow[part], self.terminating[part])
            previous = int(self.end[part][-1])


def sorted_columns(slices: Slices) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """start, end and (codes, flow, terminating) in start order (GPU work and API calls
    mostly come sorted: then nothing is copied)."""
    start = slices.start_ns
    none = np.zeros(len(start), np.uint64)
    columns = [slices.codes] + [none if a is None else a for a in (slices.flow,
                                                                   slices.terminating)]
    if len(start) < 2 or bool(np.all(start[1:] >= start[:-1])):
        return start, slices.end_ns, columns
    order = np.argsort(start, kind="stable")
    return start[order], slices.end_ns[order], [c[order] for c in columns]


def lane_numbers(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A lane per slice (slices sorted by start) such that no two slices of a lane overlap:
    each goes to the lowest lane free at its start."""
    if len(start) < 2 or np.all(start[1:] >= np.maximum.accumulate(end)[:-1]):
        return np.zeros(len(start), np.int64)  # the common case: nothing overlaps
    # nested ranges (NVTX push/pop): a slice's depth, the slices still open at its start,
    # is a valid lane -- checked, since partly overlapping ranges would break it
    # (ends sort with the stable sort: nested ranges leave them in long sorted runs)
    depth = np.arange(len(start)) - np.searchsorted(np.sort(end, kind="stable"), start,
                                                    side="right")
    if lanes_valid(depth, start, end):
        return depth
    return greedy_lanes(start, end)


def lanes_valid(lanes: np.ndarray, start: np.ndarray, end: np.ndarray) -> bool:
    """No lane's slice starts before the previous one of its lane ends (one pass per lane:
    nesting depths are few)."""
    if lanes.min() < 0:
        return False
    for lane in range(int(lanes.max()) + 1):
        mine = lanes == lane
        if not np.all(start[mine][1:] >= end[mine][:-1]):
            return False
    return True


def greedy_lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Each slice in the lowest lane free at its start (any overlaps)."""
    lanes = np.empty(len(start), np.int64)
    free: list[int] = []
    busy: list[tuple[int, int]] = []  # (end, lane)
    for i, (s, e) in enumerate(zip(start.tolist(), end.tolist(), strict=True)):
        while busy and busy[0][0] <= s:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        lanes[i] = lane
        heapq.heappush(busy, (e, lane))
    return lanes
