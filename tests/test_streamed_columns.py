"""StreamedColumns: a query result collected batch by batch gives the same columns as the
whole result read at once, whatever the batch boundaries, NULLs and capacity hint."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gpuprof.ingest.nsys.columns import StreamedColumns, to_int64
from gpuprof.ingest.nsys.export_file import ExportFile

from .conftest import fixture_path

SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int32()), ("text", pa.string())])


def _batches():
    return [
        pa.record_batch([pa.array([1, 2, 3]), pa.array([10, 20, 30], pa.int32()),
                         pa.array(["x", None, "y"])], schema=SCHEMA),
        pa.record_batch([pa.array([4, None]), pa.array([None, 50], pa.int32()),
                         pa.array([None, "z"])], schema=SCHEMA),
    ]


@pytest.mark.parametrize("capacity", [0, 1, 5, 1000])
def test_batches_join_into_the_whole_columns(capacity):
    columns = StreamedColumns(SCHEMA, _batches(), capacity=capacity)
    whole = pa.Table.from_batches(_batches())
    assert columns.num_rows == 5
    assert columns.ints("a", -7).tolist() == to_int64(whole.column("a"), -7).tolist() == [1, 2, 3, 4, -7]
    assert columns.ints("b", 0).tolist() == [10, 20, 30, 0, 50]
    assert columns.pop("text").to_pylist() == ["x", None, "y", None, "z"]
    assert columns.ints("missing", -1).tolist() == [-1] * 5


def test_integer_columns_do_not_keep_the_batches_alive():
    """The point of streaming: what a reader keeps owns its memory (no view of a batch)."""
    values = StreamedColumns(SCHEMA, _batches(), capacity=8).ints("a")
    assert values.flags.writeable
    assert values.base is None or isinstance(values.base, np.ndarray)


def test_an_empty_result_has_typed_empty_columns():
    columns = StreamedColumns(SCHEMA, [], capacity=0)
    assert columns.num_rows == 0
    assert columns.ints("a").dtype == np.int64 and len(columns.ints("b")) == 0
    assert columns.pop("text").type == pa.string()


def test_integers_popped_as_arrow_keep_their_nulls():
    columns = StreamedColumns(SCHEMA, _batches())
    assert columns.pop("b").to_pylist() == [10, 20, 30, None, 50]


def test_streamed_read_of_a_real_export_equals_the_whole_read():
    path = fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite")
    export = ExportFile(path)
    try:
        sql = 'SELECT start, "end", textId, text, globalTid FROM NVTX_EVENTS'
        streamed = export.read_columns(sql, "NVTX_EVENTS")
        whole = export.arrow(sql)
    finally:
        export.close()
    assert streamed.num_rows == whole.num_rows
    for name in ("start", "end", "textId", "globalTid"):
        assert streamed.ints(name).tolist() == to_int64(whole.column(name), -1).tolist()
    assert streamed.pop("text").to_pylist() == whole.column("text").to_pylist()


def test_row_bound_reads_two_index_entries_not_the_table():
    """The capacity hint must cost two b-tree lookups: a plain "MIN(rowid), MAX(rowid)"
    makes SQLite scan the whole table (about 1 s per 5M rows, serialising the reads)."""
    import sqlite3

    from gpuprof.ingest.nsys.export_file import row_span_sql

    path = fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table in ("CUPTI_ACTIVITY_KIND_KERNEL", "NVTX_EVENTS"):
            plan = [row[3] for row in con.execute(f"EXPLAIN QUERY PLAN {row_span_sql(table)}")]
            assert not any(step.startswith("SCAN " + table) for step in plan), plan
            bounds = con.execute(row_span_sql(table)).fetchone()
            assert bounds == con.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}").fetchone()
    finally:
        con.close()


@pytest.mark.parametrize("batch_rows", [50, 100, 1000])
def test_nulls_stay_where_they_are_when_columns_grow(batch_rows):
    """Regression: with no capacity hint (a damaged file's rowids) columns grow batch by
    batch; the NULL mask grew with an uninitialised tail, so a later batch without NULLs
    inherited whatever that memory held and real values were replaced by ``fill``. The real
    export's first NVTX rows have NULL ends and text ids, the rest mostly none."""
    path = fixture_path("nsys", "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite")
    export = ExportFile(path)
    try:
        whole = export.arrow('SELECT start, "end", textId, domainId FROM NVTX_EVENTS')
    finally:
        export.close()
    for _ in range(3):  # garbage differs from one allocation to the next
        # dirty the heap, so that an uninitialised mask is not all zeros by luck
        junk = [np.ones(n, bool) for n in (batch_rows, 2 * batch_rows, 4 * batch_rows)]
        del junk
        streamed = StreamedColumns(whole.schema, whole.to_batches(max_chunksize=batch_rows))
        for name in ("end", "textId", "domainId"):
            expected = to_int64(whole.column(name), -9)
            assert (streamed.ints(name, -9) == expected).all(), name
        again = StreamedColumns(whole.schema, whole.to_batches(max_chunksize=batch_rows))
        assert again.pop("textId").to_pylist() == whole.column("textId").to_pylist()


def test_narrow_columns_are_int32_while_they_fit_and_widen_when_not():
    """Ids read ``narrow`` halve what a read holds; a value beyond int32 (a damaged or
    post-processed file) widens the column to int64 with every earlier value kept."""
    schema = pa.schema([("small", pa.int64()), ("big", pa.int64())])
    batches = [pa.record_batch([pa.array([1, None, -3]), pa.array([5, 6, None])], schema=schema),
               pa.record_batch([pa.array([2**31 - 1, 7]), pa.array([2**40, -(2**33)])],
                               schema=schema)]
    for capacity in (0, 5, 100):
        columns = StreamedColumns(schema, batches, capacity=capacity, narrow={"small", "big"})
        small, big = columns.ints("small", -1), columns.ints("big", -9)
        assert small.dtype == np.int32 and small.tolist() == [1, -1, -3, 2**31 - 1, 7]
        assert big.dtype == np.int64 and big.tolist() == [5, 6, -9, 2**40, -(2**33)]
