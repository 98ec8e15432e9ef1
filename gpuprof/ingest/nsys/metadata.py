"""Run metadata from an export: versions, GPUs and the session clock anchor.

Only whitelisted keys are read (``schema.META_KEYS``); host, user and path fields and the whole
of META_DATA_CAPTURE never leave the file.
"""

from __future__ import annotations

from ...model import ClockDomain, GpuInfo, RunMeta, SourceFile
from . import schema
from .export_file import ExportFile


def read_meta(export: ExportFile) -> RunMeta:
    versions = _versions(export)
    meta = RunMeta(
        tool="nsys",
        tool_version=versions.get("EXPORT_PRODUCT_VERSION"),
        schema_version=versions.get("EXPORT_SCHEMA_VERSION"),
        session_start_utc_ns=_session_start(export),
        gpus=_gpus(export),
        sources=[SourceFile(kind="nsys-sqlite", name=export.path.name,
                            size_bytes=export.path.stat().st_size)],
    )
    # nsys timestamps are on the session clock; TARGET_INFO_SESSION_START_TIME anchors it to UTC.
    meta.clocks["nsys"] = ClockDomain("nsys-session", offset_ns=0, method="identity")
    if meta.tool_version is None:
        meta.extra["nsys_version_note"] = "export predates version tables (nsys 2021.x or older)"
    return meta


def _versions(export: ExportFile) -> dict[str, str]:
    table = schema.META_NEW if export.has(schema.META_NEW) else schema.META_OLD
    if not export.has(table) or not {"name", "value"} <= set(export.columns(table)):
        return {}
    marks = ", ".join("?" for _ in schema.META_KEYS)
    rows = export.rows(f"SELECT name, value FROM {table} WHERE name IN ({marks})", schema.META_KEYS)
    return {str(name): str(value) for name, value in rows}


def _session_start(export: ExportFile) -> int | None:
    if not export.has(schema.SESSION_START) or "utcEpochNs" not in export.columns(schema.SESSION_START):
        return None
    rows = export.rows(f"SELECT utcEpochNs FROM {schema.SESSION_START} LIMIT 1")
    return int(rows[0][0]) if rows and isinstance(rows[0][0], int) else None


# (model field, candidate columns) for TARGET_INFO_GPU (2021.3+) and TARGET_INFO_CUDA_GPU (older)
GPU_FIELDS = {
    "device_id": ("cuDevice", "id", "deviceId"),
    "name": ("name",),
    "sm_count": ("smCount", "numMultiprocessors"),
    "memory_bytes": ("totalMemory",),
    "major": ("computeMajor", "computeCapabilityMajor"),
    "minor": ("computeMinor", "computeCapabilityMinor"),
    "clock_khz": ("clockRate", "coreClockRate"),
    "bandwidth": ("memoryBandwidth",),
}


def _gpus(export: ExportFile) -> list[GpuInfo]:
    table = schema.GPU_INFO if export.has(schema.GPU_INFO) else schema.GPU_INFO_OLD
    if not export.has(table):
        return []
    have = set(export.columns(table))
    chosen = {k: next((c for c in cands if c in have), None) for k, cands in GPU_FIELDS.items()}
    cols = [c for c in chosen.values() if c]
    rows = export.rows(f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {table}")
    gpus = {}
    for row in rows:
        rec = dict(zip([k for k, c in chosen.items() if c], row))
        gpu = _gpu_from(rec, chosen)
        gpus.setdefault(gpu.device_id, gpu)
    return [gpus[k] for k in sorted(gpus)]


def _gpu_from(rec: dict, chosen: dict) -> GpuInfo:
    def num(key):
        value = rec.get(key)
        return int(value) if isinstance(value, (int, float)) and value > 0 else None

    major, minor = num("major"), rec.get("minor")
    clock = num("clock_khz")
    if clock and chosen["clock_khz"] == "clockRate" and clock > 10_000_000:
        clock //= 1000  # newer exports store Hz, older ones kHz
    return GpuInfo(
        device_id=num("device_id") or 0,
        name=str(rec.get("name") or "unknown GPU"),
        sm_count=num("sm_count"), memory_bytes=num("memory_bytes"),
        compute_capability=f"{major}.{minor}" if major is not None and minor is not None else None,
        clock_khz=clock, memory_bandwidth_bytes_per_s=num("bandwidth"),
    )
