"""Memory copies and sets by (kind, direction): volume, time and achieved bandwidth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import NOT_APPLICABLE, UNNAMED, duration_ns, labelled

KEYS = ["kind", "direction"]
COLUMNS = KEYS + ["count", "total_bytes", "total_ns", "bandwidth_bytes_per_s", "min_bytes",
                  "mean_bytes", "max_bytes"]


def copy_summary(copies: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, direction), heaviest total time first.

    Bandwidth is total bytes over the summed duration of the operations (bytes/s), i.e. the
    rate while a copy was in flight, not over the wall-clock span; NaN when no time was spent.
    Memsets have no direction: theirs is "n/a" unless the ingest set one.
    """
    if copies.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    frame = pd.DataFrame({
        "kind": labelled(copies["kind"], UNNAMED),
        "direction": labelled(copies["direction"], NOT_APPLICABLE),
        "bytes": copies["bytes"].to_numpy(dtype=np.int64),
        "duration_ns": duration_ns(copies),
    })
    grouped = frame.groupby(KEYS, observed=True, sort=False)
    out = grouped.agg(count=("bytes", "size"), total_bytes=("bytes", "sum"),
                      total_ns=("duration_ns", "sum"), min_bytes=("bytes", "min"),
                      mean_bytes=("bytes", "mean"), max_bytes=("bytes", "max")).reset_index()
    seconds = out["total_ns"].to_numpy(dtype="float64") / 1e9
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bandwidth_bytes_per_s"] = np.where(seconds > 0, out["total_bytes"] / seconds, np.nan)
    for key in KEYS:
        out[key] = out[key].astype(str)
    out = out.sort_values(["total_ns"] + KEYS, ascending=[False, True, True], kind="stable")
    return out[COLUMNS].reset_index(drop=True)
