"""Reading a saved run (``.gpuprof``) lazily: a table is decoded when an analysis first asks
for it, and an analysis that needs a few columns decodes only those.

A saved run is an uncompressed zip, so each member's Parquet bytes lie contiguous in the file:
the file is memory-mapped once and Parquet reads only the column chunks asked for. Re-analysing
millions of kernels then costs the columns the analysis touches, not the whole run.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BadInputError
from .tables import TABLE_NAMES, conform, empty_table

# pandas conversion that keeps one block per column (no consolidation copy of millions of
# rows) and frees each Arrow buffer as soon as it is converted.
TO_PANDAS = {"split_blocks": True, "self_destruct": True}


class SavedRunFile:
    """The members of one saved-run zip, each readable as Parquet without extracting it."""

    def __init__(self, path: Path, members: list[zipfile.ZipInfo]):
        self.path = path
        self._members = {info.filename: info for info in members}
        self._mapped: pa.Buffer | None = None
        self._files: dict[str, pq.ParquetFile] = {}

    def has(self, member: str) -> bool:
        return member in self._members

    def check(self) -> None:
        """Read every member's Parquet footer: a truncated or damaged file fails now, not
        halfway through an analysis."""
        for member in self._members:
            if member.endswith(".parquet"):
                self._parquet(member)

    def columns(self, member: str) -> set[str]:
        """The column names stored in a member (from its Parquet footer)."""
        return set(self._parquet(member).schema_arrow.names)

    def num_rows(self, member: str) -> int:
        """A member's row count, from its Parquet footer (no column decoded)."""
        return self._parquet(member).metadata.num_rows

    def read(self, member: str, columns: list[str] | None = None) -> pd.DataFrame:
        with self._reading(member):
            table = self._parquet(member).read(columns=columns)
        frame = table.to_pandas(**TO_PANDAS)
        # Decoding buffers are freed by now; hand their pages back instead of keeping them pooled.
        pa.default_memory_pool().release_unused()
        return frame

    def _parquet(self, member: str) -> pq.ParquetFile:
        """The member opened as Parquet, its footer parsed once and kept."""
        if member not in self._files:
            with self._reading(member):
                self._files[member] = pq.ParquetFile(self._source(member))
        return self._files[member]

    @contextlib.contextmanager
    def _reading(self, member: str):
        try:
            yield
        except (pa.ArrowException, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise unreadable(self.path, exc) from exc

    def _source(self, member: str):
        info = self._members[member]
        if info.compress_type != zipfile.ZIP_STORED:  # not written by gpuprof, but valid
            with zipfile.ZipFile(self.path) as zf:
                return pa.BufferReader(zf.read(member))
        if self._mapped is None:
            self._mapped = pa.memory_map(str(self.path), "r").read_buffer()
        return pa.BufferReader(self._mapped.slice(_data_offset(self._mapped, info), info.file_size))


def _data_offset(mapped: pa.Buffer, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start: after its local header, whose name and extra
    field lengths (bytes 26-29) may differ from the central directory's copy."""
    header = memoryview(mapped)[info.header_offset:info.header_offset + 30]
    if bytes(header[:4]) != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


class LazyTables(MutableMapping):
    """The model's tables of a saved run, decoded on first access (whole or by column).

    Behaves as the plain dict a ``Profile`` holds: every model table is present (empty when
    the run had none); assigning a table replaces it.
    """

    def __init__(self, source: SavedRunFile):
        self.source = source
        self.derived_versions: dict[str, int] = {}  # derived table name -> analysis version
        self.derived_basis: dict[str, int] | None = None  # row counts they were made from
        self._loaded: dict[str, pd.DataFrame] = {}
        self._partial: dict[str, dict[str, pd.Series]] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._loaded:
            if name not in TABLE_NAMES:
                raise KeyError(name)
            self._loaded[name] = self._load(name, None)
            self._partial.pop(name, None)
        return self._loaded[name]

    def __setitem__(self, name: str, frame: pd.DataFrame) -> None:
        self._loaded[name] = frame
        self._partial.pop(name, None)

    def __delitem__(self, name: str) -> None:
        raise TypeError("a run's tables cannot be removed; assign an empty table instead")

    def __contains__(self, name: object) -> bool:
        return name in TABLE_NAMES  # without decoding anything

    def __iter__(self) -> Iterator[str]:
        return iter(TABLE_NAMES)

    def __len__(self) -> int:
        return len(TABLE_NAMES)

    def num_rows(self, name: str) -> int:
        """Rows of table ``name`` without decoding it."""
        if name in self._loaded:
            return len(self._loaded[name])
        member = f"{name}.parquet"
        return self.source.num_rows(member) if self.source.has(member) else 0

    def columns(self, name: str, columns: list[str]) -> pd.DataFrame:
        """Only ``columns`` of table ``name``, decoding just those when it is not loaded."""
        if name in self._loaded:
            return self._loaded[name][columns]
        cached = self._partial.setdefault(name, {})
        missing = [c for c in columns if c not in cached]
        if missing:
            cached.update(self._load(name, missing).items())
        return pd.DataFrame({c: cached[c] for c in columns}, copy=False)

    def _load(self, name: str, columns: list[str] | None) -> pd.DataFrame:
        member = f"{name}.parquet"
        if not self.source.has(member):
            frame = empty_table(name)
            return frame if columns is None else frame[columns]
        stored = self.source.columns(member)
        if columns is None or not set(columns) <= stored:
            # a whole table, or a run saved before a column existed: conform fills it in
            whole = conform(name, self.source.read(member))
            return whole if columns is None else whole[columns]
        return self.source.read(member, columns)


def unreadable(path: Path, exc: Exception) -> BadInputError:
    return BadInputError(
        f"{path.name} is not a readable gpuprof run file ({exc.__class__.__name__})",
        "Re-create it with 'gpuprof nsys EXPORT --save RUN.gpuprof'",
    )


def table_columns(tables, name: str, columns: list[str]) -> pd.DataFrame:
    """``tables[name][columns]``, decoding only those columns where ``tables`` is lazy."""
    if isinstance(tables, LazyTables):
        return tables.columns(name, columns)
    return tables[name][columns]
