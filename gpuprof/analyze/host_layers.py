"""TensorRT layers by host-side (CPU) range time: the layer table of an export captured with
NVTX only (no CUDA trace, so no kernel to put GPU time on).

TensorRT pushes one NVTX range per layer on the thread that enqueues the inference. A range's
length is how long the host spent enqueuing that layer, not how long the GPU ran it: with no
kernels traced that is all the export says about layers, and every caller must label it so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import Profile
from . import stats
from .layers import ENGINE_WRAPPER, REFORMAT, TENSORRT_DOMAIN, _instances

COLUMNS = ["layer", "calls", "total_ns", "mean_ns", "median_ns", "min_ns", "max_ns", "share",
           "cumulative_share", "reformat"]


def host_time_by_layer(profile: Profile) -> pd.DataFrame:
    """One row per TensorRT layer (its push/pop ranges in the TensorRT domain, named as the
    GPU layer table names them), heaviest host time first. Engine wrapper ranges
    (``ExecutionContext::execute``...) hold the whole inference and are left out; ``share`` is
    0..1 of the time summed over layers."""
    ranges = profile.frame("nvtx_ranges", ["start_ns", "end_ns", "range_kind", "domain", "text"])
    instances = _instances(ranges, TENSORRT_DOMAIN)
    if instances.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    rows = instances["row"].to_numpy()
    durations = np.maximum(ranges["end_ns"].to_numpy(dtype=np.int64)[rows]
                           - ranges["start_ns"].to_numpy(dtype=np.int64)[rows], 0)
    frame = pd.DataFrame({"layer": instances["name"], "duration_ns": durations})
    frame = frame[~frame["layer"].astype(str).str.match(ENGINE_WRAPPER).to_numpy()]
    out = stats.describe_by(frame, "layer", "duration_ns", (50,))
    out = out.rename(columns={"count": "calls", "total": "total_ns", "mean": "mean_ns",
                              "min": "min_ns", "max": "max_ns", "p50": "median_ns"})
    out["layer"] = out["layer"].astype(str)
    out = out.sort_values(["total_ns", "layer"], ascending=[False, True], kind="stable")
    out = out.reset_index(drop=True)
    out["share"], out["cumulative_share"] = stats.shares(out["total_ns"])
    out["reformat"] = out["layer"].str.contains(REFORMAT)
    return out[COLUMNS]
