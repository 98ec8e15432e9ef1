"""A run cut to a time window, so a trace holds only what the user looks at.

The window is in ns on the run's own clock. Kernels, copies, API calls and NVTX ranges are
kept when they overlap it; memory events are kept up to its end, because memory in use at
any moment is the running sum of every earlier event (a cut that dropped them would show
wrong levels). Launch configurations follow their kernels. Other tables are kept whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import Profile
from ..model.tables import TABLE_NAMES

INTERVAL_TABLES = ("kernels", "copies", "api_calls", "nvtx_ranges")


def cut(profile: Profile, start_ns: int, end_ns: int) -> Profile:
    """``profile`` with the rows of ``INTERVAL_TABLES`` that overlap [start_ns, end_ns]."""
    tables = {name: profile.tables[name] for name in TABLE_NAMES}
    kept_kernels = _overlapping(tables["kernels"], start_ns, end_ns)
    for name in INTERVAL_TABLES:
        keep = kept_kernels if name == "kernels" else _overlapping(tables[name], start_ns, end_ns)
        tables[name] = tables[name][keep].reset_index(drop=True)
    tables["kernel_launches"] = _launches_of(tables["kernel_launches"], kept_kernels)
    memory = tables["memory_events"]
    tables["memory_events"] = memory[memory["time_ns"] <= end_ns].reset_index(drop=True)
    return Profile(tables=tables, meta=profile.meta)


def _overlapping(table: pd.DataFrame, start_ns: int, end_ns: int) -> np.ndarray:
    starts, ends = table["start_ns"].to_numpy(), table["end_ns"].to_numpy()
    return (starts <= end_ns) & (np.maximum(ends, starts) >= start_ns)


def _launches_of(launches: pd.DataFrame, kept_kernels: np.ndarray) -> pd.DataFrame:
    """Launch rows of kept kernels, renumbered to the cut kernel table's rows."""
    new_row = np.cumsum(kept_kernels) - 1
    rows = launches["kernel_row"].to_numpy()
    valid = (rows >= 0) & (rows < len(kept_kernels))
    keep = valid & kept_kernels[np.where(valid, rows, 0)]
    out = launches[keep].copy()
    out["kernel_row"] = new_row[rows[keep]]
    return out.reset_index(drop=True)
