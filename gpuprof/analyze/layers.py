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
    """Kernels with ``range_row`` (row in nvtx_ranges, -1 if none) and ``duration_ns``."""
    kernels = profile.kernels
    rows = project_to_ranges(kernels, profile.api_calls, profile.nvtx_ranges, domain)
    return pd.DataFrame({
        "range_row": rows,
        "duration_ns": (kernels["end_ns"] - kernels["start_ns"]).to_numpy(),
        "kernel": kernels["name"].to_numpy(),
    })


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
    mask = ranges["range_kind"] == "push_pop"
    if domain is not None:
        mask &= ranges["domain"] == domain
    instances = pd.DataFrame({"row": np.flatnonzero(mask.to_numpy()),
                              "domain": ranges.loc[mask, "domain"].astype(object).to_numpy(),
                              "name": ranges.loc[mask, "text"].astype(object).map(layer_name).to_numpy()})
    per_call = _per_instance_time(attributed, instances)
    table = _summarise_calls(per_call)
    return _with_kernels(table, attributed, instances)


def _per_instance_time(attributed: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    inside = attributed[attributed["range_row"] != NO_RANGE]
    sums = inside.groupby("range_row")["duration_ns"].agg(["sum", "count"])
    per_call = instances.set_index("row").join(sums, how="left")
    return per_call.fillna({"sum": 0, "count": 0}).reset_index()


def _summarise_calls(per_call: pd.DataFrame) -> pd.DataFrame:
    grouped = per_call.groupby(["domain", "name"], sort=False)
    table = grouped.agg(calls=("row", "size"), total_ns=("sum", "sum"),
                        median_ns=("sum", "median"), kernels=("count", "sum")).reset_index()
    table["mean_ns"] = table["total_ns"] / table["calls"]
    table["kernels_per_call"] = table["kernels"] / table["calls"]
    table = table.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    total = table["total_ns"].sum()
    table["share"] = table["total_ns"] / total if total > 0 else np.nan
    table["cumulative_share"] = table["share"].cumsum()
    return table


def _with_kernels(table: pd.DataFrame, attributed: pd.DataFrame, instances: pd.DataFrame,
                  top: int = 2) -> pd.DataFrame:
    inside = attributed[attributed["range_row"] != NO_RANGE]
    names = instances.set_index("row")[["domain", "name"]]
    joined = inside.join(names, on="range_row")
    sums = joined.groupby(["domain", "name", "kernel"], observed=True, sort=False)["duration_ns"].sum()
    heaviest = (sums.reset_index().sort_values("duration_ns", ascending=False, kind="stable")
                .groupby(["domain", "name"], sort=False)["kernel"]
                .agg(lambda ks: list(ks.astype(str)[:top])))
    table = table.join(heaviest.rename("top_kernels"), on=["domain", "name"])
    table["top_kernels"] = table["top_kernels"].apply(lambda v: v if isinstance(v, list) else [])
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
