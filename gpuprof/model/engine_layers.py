"""Lookups over the ``engine_layers`` table (a TensorRT engine's layers: type, precision,
tactic), for every stage that joins layer rows on their name: ingest (IProfiler rows get their
types) and render (the reconciliation table)."""

from __future__ import annotations

import pandas as pd

LAYER_INFO_COLUMNS = ("layer_type", "precision", "tactic")


def layer_info_by_name(engine_layers: pd.DataFrame,
                       columns: tuple[str, ...] = LAYER_INFO_COLUMNS) -> pd.DataFrame:
    """``columns`` of ``engine_layers`` indexed by layer name, one row per name, for every join
    of layer rows on ``layer`` (IProfiler times, the reconciliation table).

    A name the engine lists more than once keeps one of its rows whole: the one with the most of
    ``columns`` recorded, the first in engine order on a tie. Values are objects (not
    categoricals), so a join keeps them whatever the other side's categories.
    """
    frame = engine_layers[["layer", *columns]].astype(object)
    missing = frame[list(columns)].isna().sum(axis=1)
    best = frame.iloc[missing.to_numpy().argsort(kind="stable")]
    return best.drop_duplicates("layer").set_index("layer")[list(columns)]
