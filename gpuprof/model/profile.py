"""``Profile``: the tables of one run plus its metadata, saved and loaded as one file.

A saved run (``.gpuprof``) is an uncompressed zip of one Parquet file per non-empty table and a
``meta.json``. It can be re-analysed later, on another machine, without the original export.
It may also hold derived tables (``derived/NAME.parquet``, listed in the header with the
version of the analysis that made them) so that a re-analysis can skip expensive steps; a
reader that does not know a derived table, or finds another version, ignores it.
Loading is lazy (``saved.LazyTables``): tables are decoded when first used.
"""

from __future__ import annotations

import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..fsutil import atomic_path
from .meta import RunMeta
from .saved import LazyTables, SavedRunFile, table_columns, unreadable
from .tables import SCHEMAS, TABLE_NAMES, conform, empty_table

FORMAT_NAME = "gpuprof-run"
FORMAT_VERSION = 1
SUFFIX = ".gpuprof"


class SpentTables(dict):
    """A run's tables once ``Run.release`` has dropped some: reading a released table raises,
    so an analysis run after a releasing report fails loudly instead of reading it as empty
    (which would print zeros as if they were measured)."""

    def __init__(self, tables: dict[str, pd.DataFrame]):
        super().__init__(tables)
        self.released: set[str] = set()

    def release(self, name: str) -> None:
        self.released.add(name)
        super().__setitem__(name, empty_table(name))  # the rows' memory goes now

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name in self.released:
            raise RuntimeError(f"table '{name}' was released after the report that last read "
                               "it (Run.report(release=True)); load the run again to read it")
        return super().__getitem__(name)

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def items(self):
        return ((name, self[name]) for name in self)

    def values(self):
        return (self[name] for name in self)


@dataclass
class Profile:
    """All tables of a run (every name in ``SCHEMAS``, possibly empty) and its ``RunMeta``."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: RunMeta = field(default_factory=RunMeta)

    def __post_init__(self) -> None:
        if isinstance(self.tables, LazyTables):
            return  # conformed as each table is decoded
        unknown = set(self.tables) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"unknown tables: {sorted(unknown)}")
        for name in TABLE_NAMES:
            frame = self.tables.get(name)
            self.tables[name] = empty_table(name) if frame is None else conform(name, frame)

    def __getattr__(self, name: str) -> pd.DataFrame:
        # Tables read as attributes: profile.kernels, profile.nvtx_ranges, ...
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def num_rows(self, name: str) -> int:
        """Rows of table ``name``; from a saved run, without decoding the table."""
        tables = self.tables
        return tables.num_rows(name) if isinstance(tables, LazyTables) else len(tables[name])

    def frame(self, name: str, columns: list[str]) -> pd.DataFrame:
        """Only ``columns`` of table ``name``: from a saved run, decodes just those columns."""
        return table_columns(self.tables, name, columns)

    def save(self, path: str | Path, derived: dict[str, tuple[int, pd.DataFrame]] | None = None) -> Path:
        """Write the run; ``derived`` maps a name to (analysis version, table) to store beside it."""
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_name(path.name + SUFFIX)
        derived = derived or {}
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": self.meta.to_dict(),
                  "derived": {name: version for name, (version, _) in derived.items()},
                  "derived_basis": self._derived_basis()}
        members = [(f"{name}.parquet", frame) for name, frame in self.tables.items() if len(frame)]
        members += [(f"{DERIVED}{name}.parquet", frame) for name, (_, frame) in derived.items()]
        ahead = self.__dict__.pop("_encoded_ahead", {})
        pool = ThreadPoolExecutor(ENCODERS)
        try:
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr("meta.json", json.dumps(header, indent=1, default=str))
                # encoded side by side (Arrow releases the GIL), written in order: the file is
                # the same whichever encoder finishes first. A table encoded ahead is used only
                # if it is still the very frame that was encoded.
                encoded = [ahead[member][1] if member in ahead and ahead[member][0] is frame
                           else pool.submit(_parquet_bytes, frame) for member, frame in members]
                for (member, _), data in zip(members, encoded, strict=True):
                    zf.writestr(member, data.result())
        finally:
            # a failed or interrupted save (Ctrl-C) encodes nothing more before exiting
            pool.shutdown(wait=False, cancel_futures=True)
            _cancel(ahead)
        return path

    def encode_ahead(self) -> None:
        """Start encoding the event tables for a ``save`` to come, in a background thread: a
        command that reports and then saves encodes while its report is computed (the report
        is one thread; Arrow's encoder runs beside it). The tables must not change meanwhile;
        one that is replaced is encoded again by ``save``."""
        if "_encoded_ahead" in self.__dict__ or isinstance(self.tables, LazyTables):
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="gpuprof-encode")
        self.__dict__["_encoded_ahead"] = {
            f"{name}.parquet": (frame, pool.submit(_parquet_bytes, frame))
            for name, frame in self.tables.items() if len(frame)}
        pool.shutdown(wait=False)  # the thread ends once its queue is done

    def cancel_encoding(self) -> None:
        """Drop what ``encode_ahead`` has not started: a command that fails or is interrupted
        before saving then exits after the one table being encoded, not after all of them."""
        _cancel(self.__dict__.pop("_encoded_ahead", {}))

    def derived(self, name: str, version: int) -> pd.DataFrame | None:
        """A derived table saved with the run by analysis ``version``; None if absent, stale,
        or made from tables of other sizes than the run's (a table replaced since loading)."""
        tables = self.tables
        if not isinstance(tables, LazyTables) or tables.derived_versions.get(name) != version \
                or not tables.source.has(f"{DERIVED}{name}.parquet"):
            return None
        if tables.derived_basis is not None and tables.derived_basis != self._derived_basis():
            return None
        return tables.source.read(f"{DERIVED}{name}.parquet")

    def _derived_basis(self) -> dict[str, int]:
        """Row counts of the tables derived tables are made from, checked again on reading."""
        return {name: self.num_rows(name) for name in DERIVED_FROM}

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                header = json.loads(zf.read("meta.json"))
                if header.get("format") != FORMAT_NAME:
                    raise KeyError("format")
                source = SavedRunFile(path, zf.infolist())
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise unreadable(path, exc) from exc
        source.check()
        tables = LazyTables(source)
        tables.derived_versions = dict(header.get("derived") or {})
        tables.derived_basis = header.get("derived_basis")  # None in runs saved before it existed
        return cls(tables=tables, meta=RunMeta.from_dict(header["meta"]))


DERIVED = "derived/"
# every table a stored section summarises (kernels, copies, NVTX, API calls, memory)
DERIVED_FROM = ("kernels", "nvtx_ranges", "api_calls", "copies", "memory_events")


def _cancel(ahead: dict) -> None:
    for _, future in ahead.values():
        future.cancel()


ENCODERS = 2  # tables encoded at once when saving (the three big ones dominate)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    """One table as Parquet. Dictionary pages only for the categoricals (for ids and times
    they cost time and bytes: 5M kernels' times rarely repeat) and no column statistics
    (nothing reads them: a saved run is decoded whole columns at a time); at 5M kernels
    this halves the encoding time and the file is 12% smaller."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    names = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=names, write_statistics=False)
    return buf.getvalue()
