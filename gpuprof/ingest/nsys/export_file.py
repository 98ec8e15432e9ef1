"""Opening an nsys export safely: checks that turn every bad file into one clear error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa

from ...errors import BadInputError
from . import schema

SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite reports some damage with messages that are themselves invalid UTF-8.
CORRUPTION = (sqlite3.DatabaseError, UnicodeDecodeError)
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
    """A read-only nsys export: which tables and columns it has, and fast reads as Arrow."""

    def __init__(self, path: Path):
        self.path = path
        check_path(path)
        uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True)
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

    def has(self, table: str) -> bool:
        return table in self.tables

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            try:
                info = self._db.execute(f"PRAGMA table_info('{table}')").fetchall()
            except CORRUPTION as exc:
                raise corrupt(self.path, exc) from exc
            self._columns[table] = [row[1] for row in info]
        return self._columns[table]

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Small reads (metadata, enums, strings) through the standard library."""
        try:
            return self._db.execute(sql, params).fetchall()
        except CORRUPTION as exc:
            raise corrupt(self.path, exc) from exc

    def arrow(self, sql: str) -> pa.Table:
        """Bulk reads straight into Arrow columns: no Python object per row.

        ADBC's SQLite driver infers column types from the data and does not check text
        encoding. A file with mixed types (mutated by a post-processing tool) or invalid UTF-8
        (damage) is read again through the standard library: slower, but tolerant.
        """
        try:
            cursor = self._adbc_connection().cursor()
            try:
                cursor.execute(sql)
                table = cursor.fetch_arrow_table()
            finally:
                cursor.close()
            _check_utf8(table)
            return table
        except Exception:  # noqa: BLE001 - any driver failure falls back to the robust reader
            return self._arrow_via_sqlite3(sql)

    def _adbc_connection(self):
        if self._adbc is None:
            import adbc_driver_sqlite.dbapi as adbc

            uri = f"file:{self.path.resolve().as_posix()}?mode=ro&immutable=1"
            self._adbc = adbc.connect(uri)
        return self._adbc

    def _arrow_via_sqlite3(self, sql: str) -> pa.Table:
        try:
            cursor = self._db.execute(sql)
            names = [d[0] for d in cursor.description]
            columns = list(zip(*cursor.fetchall())) or [[] for _ in names]
        except CORRUPTION as exc:
            raise corrupt(self.path, exc) from exc
        arrays = [_to_arrow(col) for col in columns]
        return pa.table(dict(zip(names, arrays)))

    def close(self) -> None:
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None
        self._db.close()


def _check_utf8(table: pa.Table) -> None:
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
