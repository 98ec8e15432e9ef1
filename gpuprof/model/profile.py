"""``Profile``: the tables of one run plus its metadata, saved and loaded as one file.

A saved run (``.gpuprof``) is an uncompressed zip of one Parquet file per non-empty table and a
``meta.json``. It can be re-analysed later, on another machine, without the original export.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import BadInputError
from ..fsutil import atomic_path
from .meta import RunMeta
from .tables import SCHEMAS, TABLE_NAMES, conform, empty_table

FORMAT_NAME = "gpuprof-run"
FORMAT_VERSION = 1
SUFFIX = ".gpuprof"


@dataclass
class Profile:
    """All tables of a run (every name in ``SCHEMAS``, possibly empty) and its ``RunMeta``."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: RunMeta = field(default_factory=RunMeta)

    def __post_init__(self) -> None:
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

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_name(path.name + SUFFIX)
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": self.meta.to_dict()}
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("meta.json", json.dumps(header, indent=1, default=str))
            for name, frame in self.tables.items():
                if len(frame):
                    buf = io.BytesIO()
                    frame.to_parquet(buf, index=False, compression="zstd")
                    zf.writestr(f"{name}.parquet", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                header = json.loads(zf.read("meta.json"))
                if header.get("format") != FORMAT_NAME:
                    raise KeyError("format")
                names = set(zf.namelist())
                tables = {
                    name: _read_table(zf.read(f"{name}.parquet"))
                    for name in TABLE_NAMES
                    if f"{name}.parquet" in names
                }
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise BadInputError(
                f"{path.name} is not a readable gpuprof run file ({exc.__class__.__name__})",
                "Re-create it with 'gpuprof nsys EXPORT --save RUN.gpuprof'",
            ) from exc
        return cls(tables=tables, meta=RunMeta.from_dict(header["meta"]))


def _read_table(data: bytes) -> pd.DataFrame:
    # One block per column and Arrow buffers released as they are converted: no consolidation
    # copy of millions of rows and no moment where both copies of a table are held.
    frame = pd.read_parquet(io.BytesIO(data),
                            to_pandas_kwargs={"split_blocks": True, "self_destruct": True})
    # Decoding buffers are freed by now; hand their pages back instead of keeping them pooled.
    pa.default_memory_pool().release_unused()
    return frame
