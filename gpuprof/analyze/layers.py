"""GPU time per NVTX range, and the TensorRT layer bottleneck table built on it.

Kernels are attributed to ranges by ``align.nvtx.project_to_ranges``. A layer's GPU time is the
summed duration of the kernels attributed to its ranges; its calls are its range instances
(one per inference), so per-call statistics include calls that launched no kernel.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from ..align.nvtx import NO_RANGE, project_to_ranges
from ..model import Profile

TENSORRT_DOMAIN = "TensorRT"
# Outer ranges TensorRT wraps around a whole inference; kernels directly in them belong to no layer.
ENGINE_WRAPPER = re.compile(r"^(I?ExecutionContext|IRuntime|ICudaEngine)::")
REFORMAT = re.compile(r"^Reformat|Reformatting CopyNode", re.IGNORECASE)
UNATTRIBUTED = "(outside any layer)"


def is_tensorrt(profile: Profile) -> bool:
    return bool((profile.nvtx_ranges["domain"] == TENSORRT_DOMAIN).any())


def kernel_ranges(profile: Profile, domain: str | None = None) -> pd.DataFrame:
    """Kernels with ``range_row`` (row in nvtx_ranges, -1 if none), ``duration_ns`` and
    ``kernel`` (the kernel name as a categorical, so millions of rows stay cheap)."""
    kernels = profile.kernels
    rows = project_to_ranges(kernels, profile.api_calls, profile.nvtx_ranges, domain)
    return pd.DataFrame({
        "range_row": rows,
        "duration_ns": (kernels["end_ns"].to_numpy() - kernels["start_ns"].to_numpy()),
        "kernel": kernels["name"].array,
    }, copy=False)


def coverage(attributed: pd.DataFrame) -> float:
    """Share of kernel time attributed to any range (0..1; NaN with no kernel time)."""
    total = attributed["duration_ns"].sum()
    inside = attributed.loc[attributed["range_row"] != NO_RANGE, "duration_ns"].sum()
    return float(inside / total) if total > 0 else float("nan")


def layer_name(text: str) -> str:
    """The layer name from a range text; DETAILED builds put JSON with a "name" field there."""
    if isinstance(text, str) and text.startswith("{"):
        try:
            details = json.loads(text)
            for key in ("name", "Name", "LayerName"):
                if isinstance(details.get(key), str):
                    return details[key]
        except (json.JSONDecodeError, AttributeError):
            match = re.search(r'"[Nn]ame"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
            if match:
                return match.group(1)
    return str(text)


def gpu_time_by_range(profile: Profile, domain: str | None = None,
                      attributed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (domain, range name): calls, total/mean/median GPU ns per call, kernels per call,
    share and cumulative share of attributed GPU time, and the heaviest kernels."""
    if attributed is None:
        attributed = kernel_ranges(profile, domain)
    ranges = profile.nvtx_ranges
    instances = _instances(ranges, domain)
    time_per_row, kernels_per_row = _per_row_totals(attributed, len(ranges))
    per_call = instances.assign(sum=time_per_row[instances["row"].to_numpy()],
                                count=kernels_per_row[instances["row"].to_numpy()])
    table = _summarise_calls(per_call)
    return _with_kernels(table, attributed, instances, len(ranges))


def _instances(ranges: pd.DataFrame, domain: str | None) -> pd.DataFrame:
    """One row per push/pop range instance: its row, domain and (layer) name as categoricals.

    Names are decoded once per distinct range text, not once per instance.
    """
    mask = (ranges["range_kind"] == "push_pop").to_numpy()
    if domain is not None:
        mask = mask & (ranges["domain"] == domain).to_numpy()  # to_numpy may be a read-only view
    rows = np.flatnonzero(mask)
    text = ranges["text"].array
    decoded = pd.Series([layer_name(c) for c in text.categories], dtype=object)
    name_of_code, names = pd.factorize(decoded)
    codes = text.codes[rows]
    name_codes = np.where(codes >= 0, name_of_code[np.maximum(codes, 0)] if len(name_of_code) else -1, -1)
    return pd.DataFrame({
        "row": rows,
        "domain": ranges["domain"].array.take(rows),
        "name": pd.Categorical.from_codes(name_codes, categories=pd.Index(names, dtype=object)),
    }, copy=False)


def _per_row_totals(attributed: pd.DataFrame, n_ranges: int) -> tuple[np.ndarray, np.ndarray]:
    """Summed kernel ns and kernel count per nvtx_ranges row."""
    rows = attributed["range_row"].to_numpy()
    inside = rows != NO_RANGE
    durations = attributed["duration_ns"].to_numpy()[inside]
    # float64 sums are exact below 2**53 ns (104 days of kernel time per range)
    time = np.bincount(rows[inside], weights=durations, minlength=n_ranges)
    count = np.bincount(rows[inside], minlength=n_ranges)
    return time, count


def _summarise_calls(per_call: pd.DataFrame) -> pd.DataFrame:
    grouped = per_call.groupby(["domain", "name"], sort=False, observed=True)
    table = grouped.agg(calls=("row", "size"), total_ns=("sum", "sum"),
                        median_ns=("sum", "median"), kernels=("count", "sum")).reset_index()
    table["domain"] = table["domain"].astype(object)
    table["name"] = table["name"].astype(object)
    table["mean_ns"] = table["total_ns"] / table["calls"]
    table["kernels_per_call"] = table["kernels"] / table["calls"]
    table = table.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    total = table["total_ns"].sum()
    table["share"] = table["total_ns"] / total if total > 0 else np.nan
    table["cumulative_share"] = table["share"].cumsum()
    return table


def _with_kernels(table: pd.DataFrame, attributed: pd.DataFrame, instances: pd.DataFrame,
                  n_ranges: int, top: int = 2) -> pd.DataFrame:
    """The ``top`` kernels by summed time within each (domain, name) group."""
    group_of_instance = instances.groupby(["domain", "name"], sort=False, observed=True).ngroup()
    keys = instances[["domain", "name"]].astype(object).assign(group=group_of_instance.to_numpy())
    keys = keys.drop_duplicates("group").set_index(["domain", "name"])["group"]
    group_of_row = np.full(n_ranges, -1, dtype=np.int64)
    group_of_row[instances["row"].to_numpy()] = group_of_instance.to_numpy()
    rows = attributed["range_row"].to_numpy()
    kernel = attributed["kernel"].array
    group = np.where(rows >= 0, group_of_row[np.maximum(rows, 0)], -1)
    valid = (group >= 0) & (kernel.codes >= 0)
    n_names = max(len(kernel.categories), 1)
    combined = group[valid] * n_names + kernel.codes[valid]
    sums = pd.Series(attributed["duration_ns"].to_numpy()[valid]).groupby(combined).sum()
    best = pd.DataFrame({"group": sums.index // n_names, "kernel": sums.index % n_names,
                         "ns": sums.to_numpy()}).sort_values(["group", "ns"], ascending=[True, False])
    best = best.groupby("group").head(top)
    names = np.asarray(kernel.categories, dtype=object)
    tops = best.groupby("group")["kernel"].agg(lambda ks: [str(names[k]) for k in ks])
    per_key = keys.map(tops)
    table["top_kernels"] = [v if isinstance(v, list) else [] for v in
                            per_key.reindex(pd.MultiIndex.from_frame(table[["domain", "name"]])).to_numpy()]
    return table


def layer_table(profile: Profile) -> pd.DataFrame:
    """The TensorRT layer bottleneck table: one row per layer, heaviest first.

    Engine wrapper ranges (ExecutionContext::...) are folded into one UNATTRIBUTED row holding
    the kernel time inside an inference but outside every layer.
    """
    attributed = kernel_ranges(profile, TENSORRT_DOMAIN)
    table = gpu_time_by_range(profile, TENSORRT_DOMAIN, attributed)
    wrapper = table["name"].str.match(ENGINE_WRAPPER)
    layers = table[~wrapper].drop(columns=["domain"]).reset_index(drop=True)
    outside = table[wrapper]
    if outside["total_ns"].sum() > 0:
        row = {"name": UNATTRIBUTED, "calls": int(outside["calls"].max()),
               "total_ns": outside["total_ns"].sum(), "kernels": outside["kernels"].sum(),
               "median_ns": float("nan"), "top_kernels": []}
        layers = pd.concat([layers, pd.DataFrame([row])], ignore_index=True)
    layers = layers.rename(columns={"name": "layer"})
    layers["reformat"] = layers["layer"].str.contains(REFORMAT)
    return _reshare(layers)


def _reshare(layers: pd.DataFrame) -> pd.DataFrame:
    layers = layers.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    total = layers["total_ns"].sum()
    layers["share"] = layers["total_ns"] / total if total > 0 else np.nan
    layers["cumulative_share"] = layers["share"].cumsum()
    layers["mean_ns"] = layers["total_ns"] / layers["calls"]
    layers["kernels_per_call"] = layers["kernels"] / layers["calls"]
    return layers


def pareto(layers: pd.DataFrame, share: float = 0.8) -> tuple[int, float]:
    """Fewest layers whose GPU time reaches ``share`` of the total, and their exact share."""
    if layers.empty or not layers["total_ns"].sum():
        return 0, float("nan")
    n = int(np.searchsorted(layers["cumulative_share"].to_numpy(), share - 1e-12) + 1)
    n = min(n, len(layers))
    return n, float(layers["cumulative_share"].iloc[n - 1])
