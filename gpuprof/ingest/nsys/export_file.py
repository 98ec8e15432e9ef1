"""Opening an nsys export safely: checks that turn every bad file into one clear error."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa

from ...errors import BadInputError
from . import schema
from .columns import StreamedColumns

LOG = logging.getLogger(__name__)
SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite reports some damage with messages that are themselves invalid UTF-8.
CORRUPTION = (sqlite3.DatabaseError, UnicodeDecodeError)
# rows per streamed batch: what each big read holds beyond its result, three reads at once.
# At 5M kernels read_nsys peaked at 1,444-1,560 MiB with 1M-row batches and 1,241-1,446 MiB
# with 250k (5 runs each, same CPU time; the peak varies with how the reads overlap); 100k
# cost more CPU.
BATCH_ROWS = 250_000
MAX_PREALLOCATED_ROWS = 1 << 28  # address space reserved per column at most (2 GiB, untouched)
REEXPORT_HINT = "Re-export it with: nsys export --type sqlite --force-overwrite true REPORT.nsys-rep"


def check_path(path: Path) -> None:
    if not path.exists():
        raise BadInputError(f"{path} does not exist", "Check the path and try again")
    if path.is_dir():
        raise BadInputError(f"{path} is a directory, not an nsys export",
                            "Pass the .sqlite file that 'nsys export --type sqlite' wrote")
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise BadInputError(f"{path.name} is not an SQLite file",
                            "gpuprof nsys reads nsys SQLite exports (.sqlite) and .nsys-rep reports")


class ExportFile:
    """A read-only nsys export: which tables and columns it has, and fast reads as Arrow.

    Safe to read from several threads at once (``read_nsys`` reads its big tables
    concurrently): each DuckDB read runs on its own cursor; the standard-library and ADBC
    connections, which must not run two statements at once, are used under a lock.
    """

    def __init__(self, path: Path):
        self.path = path
        check_path(path)
        uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            # Corrupt or foreign files can hold invalid UTF-8; never let decoding crash a read.
            self._db.text_factory = lambda raw: raw.decode("utf-8", "replace")
            rows = self._db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            self.tables: set[str] = {name for (name,) in rows}
        except CORRUPTION as exc:
            raise corrupt(path, exc) from exc
        if not self.tables & set(schema.MARKER_TABLES):
            raise BadInputError(f"{path.name} is an SQLite database but not an Nsight Systems export",
                                "Export the report with: nsys export --type sqlite REPORT.nsys-rep")
        self._columns: dict[str, list[str]] = {}
        self._adbc = None
        self._duck = None  # a DuckDB connection, or False once it proved unavailable
        self._lock = threading.RLock()  # guards the sqlite3 and ADBC connections, and opening
        self.closed = False  # set by interrupt()/close(): no read starts, no fallback is tried
        self._reading: set = set()  # DuckDB cursors with a read running, for interrupt()

    def has(self, table: str) -> bool:
        return table in self.tables

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            info = self.rows(f"PRAGMA table_info('{table}')")
            self._columns[table] = [row[1] for row in info]
        return self._columns[table]

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Small reads (metadata, enums, strings) through the standard library."""
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except CORRUPTION as exc:
            raise corrupt(self.path, exc) from exc

    def arrow(self, sql: str) -> pa.Table:
        """Bulk reads straight into Arrow columns: no Python object per row (small tables)."""
        return self._first_reader(
            [lambda: _checked(self._arrow_via_duckdb(sql)), lambda: _checked(self._arrow_via_adbc(sql))],
            lambda: self._arrow_via_sqlite3(sql), sql)

    def read_columns(self, sql: str, table: str, narrow: Collection[str] = ()) -> StreamedColumns:
        """A big read of ``table``, streamed: batches are copied into columns and released
        one by one; integer columns named in ``narrow`` held as int32 where they fit (see
        ``StreamedColumns``)."""
        capacity = self.row_bound(table)

        def via_sqlite3() -> StreamedColumns:
            result = self._arrow_via_sqlite3(sql)
            return StreamedColumns(result.schema, result.to_batches(), capacity=capacity,
                                   narrow=narrow)

        return self._first_reader([lambda: self._stream_duckdb(sql, capacity, narrow),
                                   lambda: self._stream_adbc(sql, capacity, narrow)],
                                  via_sqlite3, sql)

    def _first_reader(self, readers: list, tolerant, sql: str):
        """The first of ``readers`` that succeeds, else ``tolerant``.

        Readers are tried fastest first: DuckDB's SQLite scanner, then ADBC's SQLite driver.
        Both infer or enforce column types and check text encoding, so a file with mixed
        types (mutated by a post-processing tool) or invalid UTF-8 (damage) fails there and
        is read again through the standard library: slower, but tolerant."""
        for read in readers:
            try:
                return read()
            except Exception as exc:  # noqa: BLE001 - any failure falls back to the next reader
                if self.closed:  # interrupted by interrupt()/close(): no fallback read
                    raise
                LOG.debug("a reader failed on %s (%s); trying the next one", sql, exc)
        return tolerant()

    def row_bound(self, table: str) -> int:
        """An upper bound of the rows of ``table`` from its rowid span (two index lookups),
        capped: a damaged file may hold any rowid; 0 when unknown (columns then grow)."""
        try:
            low, high = self.rows(row_span_sql(table))[0]
        except BadInputError:
            return 0
        if not isinstance(low, int) or not isinstance(high, int) or high < low:
            return 0
        return min(high - low + 1, MAX_PREALLOCATED_ROWS)

    def _stream_duckdb(self, sql: str, capacity: int, narrow: Collection[str]) -> StreamedColumns:
        with self._duck_cursor() as cursor:
            reader = cursor.execute(sql).to_arrow_reader(BATCH_ROWS)
            return StreamedColumns(reader.schema, reader, check=_check_utf8, capacity=capacity,
                                   narrow=narrow)

    def _stream_adbc(self, sql: str, capacity: int, narrow: Collection[str]) -> StreamedColumns:
        with self._adbc_cursor(sql) as cursor:
            reader = cursor.fetch_record_batch()
            return StreamedColumns(reader.schema, reader, check=_check_utf8, capacity=capacity,
                                   narrow=narrow)

    @contextlib.contextmanager
    def _duck_cursor(self):
        """A DuckDB cursor of its own for one read (reads may run in several threads),
        registered so that ``interrupt`` can stop it."""
        with self._lock:
            if self.closed:
                raise RuntimeError("export closed")
            if self._duck is None:
                self._duck = open_duckdb(self.path)
            if self._duck is False:
                raise RuntimeError("DuckDB SQLite scanner not available")
            cursor = self._duck.cursor()
            self._reading.add(cursor)
        try:
            cursor.execute(f"USE {DUCKDB_SCHEMA}")  # a cursor does not inherit USE
            yield cursor
        finally:
            with self._lock:
                self._reading.discard(cursor)
            cursor.close()

    def interrupt(self) -> None:
        """Stop the DuckDB reads running in other threads (their callers get an error) and
        start no other read: what Ctrl-C or a failed sibling read needs."""
        with self._lock:
            self.closed = True
            for cursor in self._reading:
                cursor.interrupt()

    def _arrow_via_duckdb(self, sql: str) -> pa.Table:
        with self._duck_cursor() as cursor:
            return cursor.execute(sql).to_arrow_table()

    def _arrow_via_adbc(self, sql: str) -> pa.Table:
        with self._adbc_cursor(sql) as cursor:
            return cursor.fetch_arrow_table()

    @contextlib.contextmanager
    def _adbc_cursor(self, sql: str):
        """An ADBC cursor that has run ``sql``, held under the lock: one ADBC connection
        must not run two statements at once."""
        with self._lock:
            cursor = self._adbc_connection().cursor()
            try:
                cursor.execute(sql)
                yield cursor
            finally:
                cursor.close()

    def _adbc_connection(self):
        if self._adbc is None:
            import adbc_driver_sqlite.dbapi as adbc

            uri = f"file:{self.path.resolve().as_posix()}?mode=ro&immutable=1"
            self._adbc = adbc.connect(uri)
        return self._adbc

    def _arrow_via_sqlite3(self, sql: str) -> pa.Table:
        try:
            with self._lock:
                cursor = self._db.execute(sql)
                names = [d[0] for d in cursor.description]
                columns = list(zip(*cursor.fetchall())) or [[] for _ in names]
        except CORRUPTION as exc:
            raise corrupt(self.path, exc) from exc
        arrays = [_to_arrow(col) for col in columns]
        return pa.table(dict(zip(names, arrays)))

    def close(self) -> None:
        """Close every connection; call it once no read runs (``interrupt`` stops them)."""
        self.closed = True
        if self._duck:
            self._duck.close()
        self._duck = None
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None
        self._db.close()


def row_span_sql(table: str) -> str:
    # One subquery per bound: SQLite answers a lone MIN(rowid) or MAX(rowid) from the b-tree's
    # first or last entry, but "SELECT MIN(rowid), MAX(rowid)" scans the whole table (0.9 s
    # at 5M rows, and under the lock that the side-by-side reads share).
    return f"SELECT (SELECT MIN(rowid) FROM {table}), (SELECT MAX(rowid) FROM {table})"


def open_duckdb(path: Path):
    """A DuckDB connection with the export attached read-only as the default schema, or False.

    The scanner extension comes from the duckdb-extension-sqlite-scanner package; DuckDB is
    told never to download or auto-load anything.
    """
    try:
        import duckdb
        import duckdb_extension_sqlite_scanner as scanner
    except ImportError:
        return False
    found = sorted(Path(scanner.__file__).parent.glob(f"extensions/v{duckdb.__version__}/*.duckdb_extension"))
    if not found:
        return False
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False, "threads": DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"LOAD '{_sql_str(found[0])}'")
        con.execute(f"ATTACH '{_sql_str(path.resolve())}' AS {DUCKDB_SCHEMA} (TYPE sqlite, READ_ONLY)")
        con.execute(f"USE {DUCKDB_SCHEMA}")
    except Exception:  # noqa: BLE001 - an unusable scanner just means the slower readers
        con.close()
        return False
    return con


DUCKDB_SCHEMA = "export"


def _sql_str(value) -> str:
    return str(value).replace("'", "''")


# One thread per query: read_nsys runs its big reads side by side instead, which costs less
# CPU than DuckDB splitting each scan (measured: docs/BENCHMARKS.md).
DUCKDB_THREADS = 1


def _checked(table: pa.Table) -> pa.Table:
    _check_utf8(table)
    return table


def _check_utf8(table: pa.Table | pa.RecordBatch) -> None:
    """Raise ArrowInvalid if a text column holds invalid UTF-8 or BLOBs (only text is scanned).

    No column gpuprof reads is a BLOB in a sound export, so a binary column means damage.
    """
    for column in table.columns:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise pa.ArrowInvalid("binary data in a text column")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column.validate(full=True)


def _to_arrow(values) -> pa.Array:
    # A BLOB where nsys writes text (damage): decode it like text, replacing invalid bytes.
    values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # Mixed types in one column: keep numbers, turn the rest into nulls.
        return pa.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                         for v in values], type=pa.float64())


def corrupt(path: Path, exc: Exception) -> BadInputError:
    return BadInputError(f"{path.name} is a damaged or truncated SQLite file ({exc})", REEXPORT_HINT)
