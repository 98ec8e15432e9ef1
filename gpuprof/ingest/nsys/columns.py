"""Arrow columns from an export as numpy, tolerant of damaged or post-processed files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def to_int64(column: pa.ChunkedArray | pa.Array, fill: int = -1) -> np.ndarray:
    """An integer column as int64, with ``fill`` where it is NULL or not a number at all."""
    if pa.types.is_integer(column.type):
        if column.null_count:  # filling copies every value: only when there is something to fill
            column = pc.fill_null(column, fill)
        return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    # Text or reals where nsys writes integers: keep what is a number, the rest is missing.
    values = pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce")
    values = values.where(np.isfinite(values) & (values.abs() < 2.0**63))
    return values.fillna(fill).to_numpy().astype(np.int64)


def to_float64(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64, NaN where it is NULL or not a number."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
