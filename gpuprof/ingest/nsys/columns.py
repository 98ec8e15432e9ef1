"""Arrow columns from an export as numpy, tolerant of damaged or post-processed files."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import NamedTuple

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


def filled(n: int, fill: int) -> np.ndarray:
    """An int64 column of ``fill`` (a column an export lacks)."""
    # np.zeros maps zero pages lazily: a column of zeros costs no memory until written
    return np.zeros(n, dtype=np.int64) if fill == 0 else np.full(n, fill, dtype=np.int64)


class StreamedColumns:
    """A query result collected batch by batch, each batch released as soon as it is copied.

    Arrow batches imported from DuckDB or ADBC are freed as a whole, only once every column
    of the batch is released; holding a whole result while converting it doubles the memory
    of a read. Here integer columns are copied straight into one numpy array each (sized by
    ``capacity``, an upper bound of the rows, when known: no per-batch pieces and no final
    concatenation), other columns into detached Arrow copies; readers then take each column
    once (``ints`` / ``pop``), so a column's memory is held once. Integer columns named in
    ``narrow`` (ids the model keeps as 32-bit or as categorical codes) are collected as int32
    while their values fit, halving what the read holds before converting them.
    """

    def __init__(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 check: Callable[[pa.RecordBatch], None] = lambda batch: None,
                 capacity: int = 0, narrow: Collection[str] = ()):
        # A reader's batches share its schema, so each column's kind is known up front.
        builders = {field.name: _IntBuilder(capacity, field.name in narrow)
                    if pa.types.is_integer(field.type) else _ArrowBuilder(field.type)
                    for field in schema}
        self.num_rows = 0
        for batch in batches:
            check(batch)
            for builder, column in zip(builders.values(), batch.columns):
                builder.append(column, self.num_rows)
            self.num_rows += batch.num_rows
            del batch
        self._columns = {name: builders.pop(name).finish(self.num_rows) for name in schema.names}

    def __contains__(self, name: str) -> bool:
        return name in self._columns

    def pop(self, name: str) -> pa.ChunkedArray:
        """A column as Arrow (text, reals); an integer column is turned back into Arrow."""
        column = self._columns.pop(name)
        if isinstance(column, _Ints):
            return pa.chunked_array([pa.array(column.values, mask=column.nulls)])
        return column

    def ints(self, name: str, fill: int = -1) -> np.ndarray:
        """A column as int64 (int32 if collected ``narrow``) with ``fill`` where it is NULL or
        not a number; a column the query did not select is all ``fill``."""
        column = self._columns.pop(name, None)
        if column is None:
            return filled(self.num_rows, fill)
        if isinstance(column, _Ints):
            if column.nulls is not None:
                column.values[column.nulls] = fill
            return column.values
        return to_int64(column, fill)


class _Ints(NamedTuple):
    values: np.ndarray  # int64 or int32, owned (not a view of an Arrow batch)
    nulls: np.ndarray | None  # True where NULL; None when there is none


class _IntBuilder:
    """An integer column collected into one int64 array, or int32 while every value fits when
    ``narrow`` (np.empty pages are not resident until written, so an upper-bound capacity
    costs only what is filled)."""

    def __init__(self, capacity: int, narrow: bool = False):
        self.values = np.empty(capacity, np.int32 if narrow else np.int64)
        self.nulls: np.ndarray | None = None

    def append(self, column: pa.Array, at: int) -> None:
        end = at + len(column)
        if self.values.dtype == np.int32 and not _fits_int32(column):
            self.values = _widened(self.values, at)
        if end > len(self.values):
            self.values = _grown(self.values, end)
            if self.nulls is not None:  # rows added later are not NULL unless a batch says so
                self.nulls = _grown(self.nulls, end, fill=False)
        if column.null_count:
            if self.nulls is None:
                self.nulls = np.zeros(len(self.values), bool)
            self.nulls[at:end] = column.is_null().to_numpy(zero_copy_only=False)
            column = pc.fill_null(column, 0)
        self.values[at:end] = column.to_numpy()  # a view of the batch, copied here

    def finish(self, rows: int) -> _Ints:
        return _Ints(self.values[:rows], None if self.nulls is None else self.nulls[:rows])


class _ArrowBuilder:
    """Any other column, as copies of each batch's piece (so no batch stays alive)."""

    def __init__(self, arrow_type: pa.DataType):
        self.type = arrow_type
        self.pieces: list[pa.Array] = []

    def append(self, column: pa.Array, at: int) -> None:
        self.pieces.append(pa.concat_arrays([column]))  # copies the buffers

    def finish(self, rows: int) -> pa.ChunkedArray:
        return pa.chunked_array(self.pieces, type=self.type)


def _fits_int32(column: pa.Array) -> bool:
    low, high = pc.min_max(column).values()
    return low is None or (low.as_py() >= -(2**31) and high.as_py() < 2**31)


def _widened(values: np.ndarray, filled: int) -> np.ndarray:
    """An int32 column as int64, copying only the ``filled`` rows (the rest stays untouched)."""
    wide = np.empty(len(values), np.int64)
    wide[:filled] = values[:filled]
    return wide


def _grown(values: np.ndarray, needed: int, fill=None) -> np.ndarray:
    """``values`` in a larger array; the new tail is uninitialised unless ``fill`` is given
    (a NULL mask must be: only batches with NULLs write their part of it)."""
    size = max(needed, 2 * len(values))
    grown = np.empty(size, values.dtype) if fill is None else np.full(size, fill, values.dtype)
    grown[:len(values)] = values
    return grown
