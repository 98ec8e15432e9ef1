"""Run metadata: what was captured, by which tool version, on which GPUs, on which clock."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ClockDomain:
    """How one source's timestamps were put on the run's reference clock.

    ``offset_ns`` was added to the source's raw timestamps; ``method`` says how it was found
    (e.g. "identity", "nvtx-mark", "utc-anchor") and ``error_ns`` bounds the uncertainty.
    """

    name: str
    offset_ns: int = 0
    method: str = "identity"
    error_ns: int = 0


@dataclass
class SourceFile:
    """A file a run was ingested from. Only the base name is kept: paths can identify people."""

    kind: str
    name: str
    size_bytes: int = 0
    sha256: str = ""


@dataclass
class GpuInfo:
    device_id: int
    name: str
    sm_count: int | None = None
    memory_bytes: int | None = None
    compute_capability: str | None = None
    clock_khz: int | None = None
    memory_bandwidth_bytes_per_s: int | None = None


@dataclass
class RunMeta:
    """Everything about a run that is not a table row."""

    tool: str = ""                      # "nsys", "tensorrt", "onnxruntime", "triton", ...
    tool_version: str | None = None     # e.g. nsys "2025.1.3.140"; None when the export lacks it
    schema_version: str | None = None
    session_start_utc_ns: int | None = None
    gpus: list[GpuInfo] = field(default_factory=list)
    sources: list[SourceFile] = field(default_factory=list)
    clocks: dict[str, ClockDomain] = field(default_factory=dict)
    # table name -> why it is empty ("export has no CUPTI_ACTIVITY_KIND_KERNEL table", ...)
    absent: dict[str, str] = field(default_factory=dict)
    # free-form facts for reports: backend, model name, precision, versions, ...
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        data = dict(data)
        data["gpus"] = [GpuInfo(**g) for g in data.get("gpus", [])]
        data["sources"] = [SourceFile(**s) for s in data.get("sources", [])]
        data["clocks"] = {k: ClockDomain(**v) for k, v in data.get("clocks", {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
