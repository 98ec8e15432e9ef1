"""What TREx showed for a trtexec run: the layer table with precision, tactic and formats,
reformat layers and their cost, time by layer type, the Pareto line and latency percentiles.

Times per layer are trtexec's mean per inference (``averageMs``); shares are of their sum,
i.e. of one inference's profiled GPU time. Raw units (ns); render/ names and formats them.
"""

from __future__ import annotations

import pandas as pd

from ..model.engine_layers import layer_info_by_name
from . import stats
from .layers import REFORMAT

LAYER_COLUMNS = ["layer", "layer_type", "precision", "tactic", "inputs", "outputs", "reformat",
                 "mean_ns", "median_ns", "total_ns", "share", "cumulative_share", "onnx_nodes"]
# iterations column -> the stage name reports show (trtexec's own words)
INFO_COLUMNS = ["layer", "layer_type", "precision", "tactic", "onnx_nodes"]
FORMAT_COLUMNS = ["inputs", "outputs"]   # trtexec's layer information only
LATENCY_STAGES = {"latency_ns": "Latency", "h2d_ns": "H2D", "compute_ns": "GPU compute", "d2h_ns": "D2H"}
LATENCY_PERCENTILES = (50, 90, 95, 99)


def layer_table(layer_profile: pd.DataFrame, engine_layers: pd.DataFrame,
                formats: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled layer, heaviest mean time first, with what the engine says of it."""
    table = layer_profile.merge(layer_info(engine_layers, formats), on="layer", how="left")
    by_name = table["layer"].str.contains(REFORMAT)
    table["reformat"] = by_name | (table["layer_type"].astype(object) == "Reformat")
    table = table.sort_values("mean_ns", ascending=False, kind="stable").reset_index(drop=True)
    table["share"], table["cumulative_share"] = stats.shares(table["mean_ns"])
    return table.reindex(columns=LAYER_COLUMNS)   # without formats their columns stay, empty


def layer_info(engine_layers: pd.DataFrame, formats: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per engine layer: type, precision, tactic, ONNX nodes and, where trtexec's layer
    information gave them, input and output formats (the report's and the diff's one source).
    A layer listed twice keeps its most complete row, as every other layer join does."""
    info = (pd.DataFrame(columns=INFO_COLUMNS) if engine_layers.empty else
            layer_info_by_name(engine_layers, tuple(INFO_COLUMNS[1:])).reset_index())
    if formats is not None and not formats.empty:
        info = info.merge(_first_per_layer(formats, ["layer", *FORMAT_COLUMNS]), on="layer", how="left")
    return info.reset_index(drop=True)


def _first_per_layer(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=columns)
    # objects, not categoricals: the merge then keeps values whatever the categories
    return frame[columns].astype(object).drop_duplicates("layer")


def time_by_type(layers: pd.DataFrame) -> pd.DataFrame:
    """Mean time per inference summed per layer type ("(unknown)" without layer info)."""
    return _time_by(layers, "layer_type")


def precision_split(layers: pd.DataFrame) -> pd.DataFrame:
    """Mean time per inference summed per output precision."""
    return _time_by(layers, "precision")


def _time_by(layers: pd.DataFrame, column: str) -> pd.DataFrame:
    """Layers and mean time per inference per value of ``column``, heaviest first, with shares."""
    kinds = layers.assign(**{column: layers[column].fillna("(unknown)").astype(str)})
    out = kinds.groupby(column, sort=False).agg(layers=("layer", "size"), mean_ns=("mean_ns", "sum"))
    out = out.sort_values("mean_ns", ascending=False, kind="stable").reset_index()
    out["share"], _ = stats.shares(out["mean_ns"])
    return out


def reformat_cost(layers: pd.DataFrame) -> dict[str, float]:
    """How many reformat layers the engine runs, their time per inference and its share."""
    reformats = layers[layers["reformat"]]
    total = layers["mean_ns"].sum()
    cost = float(reformats["mean_ns"].sum())
    return {"count": int(len(reformats)), "mean_ns": cost,
            "share": cost / total if total > 0 else float("nan")}


def pareto_line(layers: pd.DataFrame, share: float = 0.8) -> tuple[int, float]:
    """Fewest layers (heaviest first) whose time reaches ``share`` of the total, and theirs."""
    if layers.empty or not layers["mean_ns"].sum():
        return 0, float("nan")
    n = stats.count_to_reach(layers["cumulative_share"], share)
    return n, float(layers["cumulative_share"].iloc[n - 1])


def latency_table(iterations: pd.DataFrame) -> pd.DataFrame:
    """Percentiles of end-to-end latency, H2D, GPU compute and D2H over the timed inferences."""
    rows = []
    for column, stage in LATENCY_STAGES.items():
        described = stats.describe(iterations[column].to_numpy(), LATENCY_PERCENTILES)
        rows.append({"stage": stage, **described})
    return pd.DataFrame(rows)
