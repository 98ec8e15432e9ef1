"""Clock offsets measured from cause and effect, not assumed.

Two sources that see the same requests give ordered pairs of timestamps: the kernel's send
call cannot return before the program started sending, Triton cannot start a request before
its first bytes were read. If ``delta`` is what must be added to a source's times to put them
on the reference clock, each pair "source event after reference event" says
``delta >= ref - src`` and each "source event before reference event" says
``delta <= ref - src``. Over many requests that pins ``delta`` into an interval; when the
interval holds 0 the two clocks agree (same CLOCK_MONOTONIC) and its reach either side of 0
is the error bound. An empty interval means the clocks cannot be the same (or a pair's order
assumption is wrong): that is reported, never smoothed over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import ClockDomain


@dataclass
class OffsetBounds:
    lower_ns: float          # delta is at least this (max over "after" pairs)
    upper_ns: float          # delta is at most this (min over "before" pairs)
    pairs: int

    @property
    def consistent(self) -> bool:
        return self.pairs > 0 and self.lower_ns <= self.upper_ns

    @property
    def holds_zero(self) -> bool:
        return self.lower_ns <= 0 <= self.upper_ns


def offset_bounds(after: list[np.ndarray], before: list[np.ndarray]) -> OffsetBounds:
    """``after``: arrays of ``ref - src`` for pairs where the source event came later;
    ``before``: the same for pairs where it came earlier. NaNs (a missing side) are skipped."""
    lows = np.concatenate([_clean(a) for a in after]) if after else np.empty(0)
    highs = np.concatenate([_clean(b) for b in before]) if before else np.empty(0)
    return OffsetBounds(float(lows.max()) if lows.size else -np.inf,
                        float(highs.min()) if highs.size else np.inf,
                        int(lows.size + highs.size))


def _clean(values) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    return arr[~np.isnan(arr)]


def clock_domain(name: str, bounds: OffsetBounds, what: str) -> ClockDomain:
    """The anchor to record for a source found on the reference clock by ``bounds``.

    Offset 0 when the interval holds 0 (same clock, verified); the error is how far the
    interval reaches either side (a one-sided interval leaves the bound unknown, -1)."""
    if bounds.pairs == 0:
        return ClockDomain(name, 0, f"not checked: no {what}; times used as recorded",
                           error_ns=-1)
    if not bounds.consistent:
        return ClockDomain(name, 0, f"causality over {bounds.pairs} {what}: INCONSISTENT "
                           f"(offset would need to be >= {bounds.lower_ns:.0f} ns and <= "
                           f"{bounds.upper_ns:.0f} ns); times left as recorded", error_ns=-1)
    if bounds.holds_zero:
        reach = max(-bounds.lower_ns, bounds.upper_ns)
        error = int(np.ceil(reach)) if np.isfinite(reach) else -1
        return ClockDomain(name, 0, f"same clock, verified: causality, {bounds.pairs} "
                           f"{what}", error_ns=error)
    middle = (bounds.lower_ns + bounds.upper_ns) / 2
    if not np.isfinite(middle):
        return ClockDomain(name, 0, f"causality over {bounds.pairs} {what} leaves the offset "
                           "unbounded on one side; times left as recorded", error_ns=-1)
    return ClockDomain(name, int(round(middle)), f"offset measured by causality over "
                       f"{bounds.pairs} {what}, NOT applied: times used as recorded",
                       error_ns=int(np.ceil((bounds.upper_ns - bounds.lower_ns) / 2)))
