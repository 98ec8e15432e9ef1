"""GPU kernels inside each request's compute window, with the TensorRT layer each ran for.

A request's window is the server's compute span for it (Triton's COMPUTE_START to
COMPUTE_OUTPUT_START, on the reference clock). A kernel belongs to the request whose window
holds the kernel's *start*; a kernel whose start lies in two or more windows (model instances
computing at the same time) belongs to none and is counted as ambiguous: which request
launched it is not known from times alone. Kernels outside every window are counted too. The
layer comes from the NVTX projection (``layers.kernel_ranges``): the innermost TensorRT layer
range around the launching call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NO_REQUEST = -1
WINDOW = ["start_ns", "end_ns"]   # a compute window; equal windows are one execution


@dataclass
class RequestKernels:
    per_request: pd.DataFrame   # request_id, kernels, gpu_ns, layers, top_layer, top_layer_ns
    per_layer: pd.DataFrame     # layer, requests, kernels, gpu_ns, mean_per_request_ns
    ambiguous: int              # kernels whose start lies in two or more windows
    outside: int                # kernels in no window


def window_owner(starts: np.ndarray, ends: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each time, the index of the one window [start, end] holding it; -1 when none, -2
    when two or more do."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    open_count = (np.searchsorted(s, times, side="right")
                  - np.searchsorted(np.sort(e), times, side="left"))
    last = np.searchsorted(s, times, side="right") - 1
    owner = np.where(open_count > 1, -2, -1)
    hit = (open_count == 1) & (last >= 0)
    direct = hit.copy()
    direct[hit] = e[last[hit]] >= times[hit]
    owner[direct] = order[last[direct]]
    for k in np.flatnonzero(hit & ~direct):   # held by an earlier, longer window: rare
        holding = np.flatnonzero((s <= times[k]) & (e >= times[k]))
        owner[k] = order[holding[0]]
    return owner


def kernels_per_request(windows: pd.DataFrame, kernels: pd.DataFrame,
                        layers: pd.Series) -> RequestKernels:
    """``windows``: request_id, start_ns, end_ns; ``kernels``: start_ns, end_ns; ``layers``:
    each kernel's layer name (NA outside any layer), aligned with ``kernels``."""
    owner = window_owner(windows["start_ns"].to_numpy(), windows["end_ns"].to_numpy(),
                         kernels["start_ns"].to_numpy())
    mine = owner >= 0
    rows = pd.DataFrame({
        "request_id": windows["request_id"].to_numpy()[owner[mine]],
        "layer": layers.to_numpy()[mine],
        "gpu_ns": (kernels["end_ns"] - kernels["start_ns"]).to_numpy()[mine]})
    return RequestKernels(_per_request(rows), _per_layer(rows), int((owner == -2).sum()),
                          int((owner == -1).sum()))


def kernels_per_execution(windows: pd.DataFrame, kernels: pd.DataFrame,
                          layers: pd.Series) -> RequestKernels:
    """``kernels_per_request`` where requests batched into one model execution (the same
    compute window, to the ns) share it: the kernels go to the execution, and each of its
    requests gets the execution's row with ``execution_requests`` (its share is 1/that)."""
    first = windows.drop_duplicates(WINDOW)
    found = kernels_per_request(first, kernels, layers)
    members = execution_members(windows)
    size = members.groupby("execution")["request_id"].transform("size")
    per = members.assign(execution_requests=size.to_numpy())
    per = per.merge(found.per_request.rename(columns={"request_id": "execution"}),
                    on="execution").drop(columns="execution")
    return RequestKernels(per, found.per_layer, found.ambiguous, found.outside)


def execution_members(windows: pd.DataFrame) -> pd.DataFrame:
    """request_id -> execution: the first request id of its compute window, which names the
    execution in ``kernels_per_execution`` and ``placed_kernels``."""
    first = windows.drop_duplicates(WINDOW)
    return windows.merge(first[[*WINDOW, "request_id"]].rename(
        columns={"request_id": "execution"}), on=WINDOW)[["request_id", "execution"]]


def placed_kernels(windows: pd.DataFrame, kernels: pd.DataFrame,
                   layers: pd.Series) -> pd.DataFrame:
    """Each kernel given to an execution, one row per kernel (what a trace draws): the
    ``kernels`` columns, its ``layer`` and ``execution`` (``execution_members``), by start."""
    first = windows.drop_duplicates(WINDOW)
    owner = window_owner(first["start_ns"].to_numpy(), first["end_ns"].to_numpy(),
                         kernels["start_ns"].to_numpy())
    mine = owner >= 0
    out = kernels[mine].reset_index(drop=True)
    out["layer"] = layers.to_numpy()[mine]
    out["execution"] = first["request_id"].to_numpy()[owner[mine]]
    return out.sort_values("start_ns", kind="stable").reset_index(drop=True)


def _per_request(rows: pd.DataFrame) -> pd.DataFrame:
    totals = rows.groupby("request_id", sort=False).agg(kernels=("gpu_ns", "size"),
                                                       gpu_ns=("gpu_ns", "sum"),
                                                       layers=("layer", "nunique"))
    by_layer = rows.dropna(subset=["layer"]).groupby(["request_id", "layer"],
                                                     sort=False)["gpu_ns"].sum()
    top = by_layer.sort_values(ascending=False, kind="stable").reset_index()
    top = top.drop_duplicates("request_id").set_index("request_id")
    totals["top_layer"] = top["layer"]
    totals["top_layer_ns"] = top["gpu_ns"]
    return totals.reset_index()


def _per_layer(rows: pd.DataFrame) -> pd.DataFrame:
    named = rows.dropna(subset=["layer"])
    out = named.groupby("layer", sort=False).agg(requests=("request_id", "nunique"),
                                                 kernels=("gpu_ns", "size"),
                                                 gpu_ns=("gpu_ns", "sum"))
    out["mean_per_request_ns"] = out["gpu_ns"] / out["requests"]
    return out.sort_values("gpu_ns", ascending=False, kind="stable").reset_index()


def kernel_layers(run) -> pd.Series:
    """Each kernel's TensorRT layer name (NA outside any layer) through the run's NVTX
    projection; ``run`` is an ``api.Run`` (its projection is cached and saved with it)."""
    from .layers import NO_RANGE, TENSORRT_DOMAIN, layer_name

    rows = run.attributed(TENSORRT_DOMAIN)["range_row"].to_numpy()
    texts = run.frame("nvtx_ranges", ["text"])["text"].astype(object).to_numpy()
    names = np.full(len(rows), None, dtype=object)
    inside = rows != NO_RANGE
    names[inside] = [layer_name(t) for t in texts[rows[inside]]]
    return pd.Series(names, dtype="object")
