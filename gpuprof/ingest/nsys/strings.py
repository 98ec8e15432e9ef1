"""Decoding nsys string ids into pandas categoricals without a Python string per row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from . import schema
from .columns import to_int64
from .export_file import ExportFile


class StringTable:
    """``StringIds`` as a sorted id array plus values; looked up only for ids that are used."""

    def __init__(self, export: ExportFile):
        if export.has(schema.STRINGS):
            table = export.arrow(f"SELECT id, value FROM {schema.STRINGS}")
            ids = table.column("id").to_numpy(zero_copy_only=False)
            order = np.argsort(ids, kind="stable")
            self.ids = ids[order]
            self.values = table.column("value").take(pa.array(order))
        else:
            self.ids = np.empty(0, dtype=np.int64)
            self.values = pa.array([], type=pa.string())

    def lookup(self, ids: np.ndarray) -> list[str | None]:
        """Strings for a (small) array of ids; None where an id is unknown."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0:
            return [None] * len(ids)
        found = self.ids[pos] == ids
        values = self.values.take(pa.array(pos)).to_pylist()
        return [v if ok else None for v, ok in zip(values, found)]

    def categorical(self, ids) -> pd.Categorical:
        """Map a column of string ids (Arrow or numpy, may hold nulls) to a categorical."""
        ids = _as_int_array(ids)
        codes, uniques = pd.factorize(ids, use_na_sentinel=True)
        names = self.lookup(np.asarray(uniques, dtype=np.int64))
        return _categorical(codes, names)


def _as_int_array(column) -> np.ndarray:
    """Ids as int64 (int32 as a narrow read gives them) with nulls as -1 (no string has a
    negative id, so -1 decodes to missing)."""
    if isinstance(column, (pa.ChunkedArray, pa.Array)):
        return to_int64(column, -1)
    arr = np.asarray(column)
    if arr.dtype == np.int32:  # a narrow read's ids: factorized as they are, no int64 copy
        return arr
    if arr.dtype.kind == "f":
        arr = np.where(np.isnan(arr), -1, arr)
    return arr.astype(np.int64, copy=False)


def _categorical(codes: np.ndarray, names: list[str | None]) -> pd.Categorical:
    """codes index ``names`` (-1 = missing); names may repeat or be None."""
    name_codes, categories = pd.factorize(pd.Series(names, dtype=object), use_na_sentinel=True)
    name_codes = np.append(name_codes, -1)  # index -1 (missing id) -> missing
    # in the codes dtype pandas keeps anyway, so the per-row gather is the only copy
    name_codes = name_codes.astype(code_dtype(len(categories)))
    return pd.Categorical.from_codes(name_codes[codes], categories=pd.Index(categories, dtype=object))


def code_dtype(n_categories: int) -> type:
    """The integer dtype pandas gives the codes of a categorical with this many categories."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


def text_categorical(column) -> pd.Categorical:
    """A column of free text (Arrow) as a categorical."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column.dictionary_encode().to_pandas().astype("category").array


def coalesce(first: pd.Categorical, second: pd.Categorical) -> pd.Categorical:
    """``first`` where it has a value, else ``second`` (nsys rows carry text OR textId)."""
    categories = first.categories.append(second.categories).unique()
    a = first.set_categories(categories)
    b = second.set_categories(categories)
    codes = np.where(a.codes >= 0, a.codes, b.codes)
    return pd.Categorical.from_codes(codes, categories=categories)
