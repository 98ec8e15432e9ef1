"""The data model: typed tables on one clock plus run metadata. Imports nothing else of gpuprof
except errors and fsutil."""

from .meta import ClockDomain, GpuInfo, RunMeta, SourceFile
from .profile import Profile
from .tables import SCHEMAS, TABLE_NAMES, conform, empty_table

__all__ = [
    "SCHEMAS", "TABLE_NAMES", "ClockDomain", "GpuInfo", "Profile", "RunMeta", "SourceFile",
    "conform", "empty_table",
]
