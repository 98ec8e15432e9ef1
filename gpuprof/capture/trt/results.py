"""The runner's output folder and its loader into a ``gpuprof.model.Profile``.

The folder holds plain files, so a run can be inspected without gpuprof:

- ``memory_events.csv``: allocator events (table ``memory_events``, source "trt_allocator"),
- ``iterations.csv``: per-iteration CUDA-event and host-clock times (table ``iterations``,
  source "cuda_events"; ``host_latency_ns`` is the host clock's end-to-end time),
- ``layer_timings.csv``: IProfiler per-layer times (table ``layer_timings``, source "iprofiler"),
- ``run.json``: versions, GPUs and clocks before and after the timed pass, settings, the plan's sidecar, the NVTX clock marks
  and how the run measured (``runner.run_facts``: warm-up, iterations, timer, layer profiler).

All times are ``time.monotonic_ns()`` of the runner process (CLOCK_MONOTONIC), the clock the
Triton and bpftrace sources use too; the NVTX marks in ``run.json`` carry the same values, so an
nsys export of the run can be put on this clock exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import BadInputError
from ...fsutil import atomic_write
from ...model import ClockDomain, GpuInfo, Profile, RunMeta, SourceFile

TABLE_FILES = {"memory_events": "memory_events.csv", "iterations": "iterations.csv",
               "layer_timings": "layer_timings.csv"}
META_FILE = "run.json"
FORMAT = "gpuprof-trt-run"
CLOCK = "host_monotonic"
# NVML's reading of the GPUs just before the timed pass: the run's GPUs (``RunMeta.gpus``); the
# SM clocks of it and of "gpus_after_timed_pass" stay in ``extra`` for the report.
GPUS_KEY = "gpus_before_timed_pass"


def write_results(out_dir: str | os.PathLike, tables: Mapping[str, Sequence[dict[str, Any]]],
                  meta: dict[str, Any]) -> list[Path]:
    """Write each table as CSV and the metadata as JSON, each file by atomic rename."""
    out = Path(out_dir)
    written = []
    for name, filename in TABLE_FILES.items():
        frame = pd.DataFrame(list(tables.get(name, ())))
        with atomic_write(out / filename, newline="") as handle:
            frame.to_csv(handle, index=False)
        written.append(out / filename)
    with atomic_write(out / META_FILE) as handle:
        json.dump({"format": FORMAT, "version": 1, **meta}, handle, indent=1, default=str)
    return [*written, out / META_FILE]


def load_results(out_dir: str | os.PathLike) -> Profile:
    """Read a runner folder into a ``Profile`` (tables on the host monotonic clock)."""
    out = Path(out_dir)
    meta = _read_meta(out)
    tables = {name: _read_table(out / filename) for name, filename in TABLE_FILES.items()}
    return Profile(tables=tables, meta=_run_meta(out, meta, tables))


def _read_meta(out: Path) -> dict[str, Any]:
    try:
        meta = json.loads((out / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{out.name} holds no readable {META_FILE} ({exc.__class__.__name__})",
                            "Point at the --out folder of a finished TensorRT run") from exc
    if meta.get("format") != FORMAT:
        raise BadInputError(f"{out.name}/{META_FILE} is not a gpuprof TensorRT run",
                            "Point at the --out folder of a TensorRT run")
    return meta


def _read_table(path: Path) -> pd.DataFrame | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None


def _run_meta(out: Path, meta: dict[str, Any], tables: dict[str, pd.DataFrame | None]) -> RunMeta:
    trt = meta.get("tensorrt", {})
    return RunMeta(
        tool="tensorrt", tool_version=trt.get("version"),
        gpus=[_gpu(g) for g in meta.get(GPUS_KEY) or []],
        sources=[SourceFile("trt_runner", f.name, f.stat().st_size)
                 for f in sorted(out.iterdir()) if f.name in (*TABLE_FILES.values(), META_FILE)],
        clocks={CLOCK: ClockDomain(CLOCK, 0, "identity", 0)},
        absent={name: meta.get("absent", {}).get(name, "the run recorded no rows")
                for name, frame in tables.items() if frame is None or frame.empty},
        extra={k: v for k, v in meta.items() if k not in ("format", "version", "absent")},
    )


def _gpu(g: dict[str, Any]) -> GpuInfo:
    clock = g.get("max_sm_clock_mhz") or g.get("sm_clock_mhz")
    return GpuInfo(device_id=int(g.get("device_id", 0)), name=str(g.get("name", "")),
                   memory_bytes=g.get("memory_bytes"),
                   compute_capability=g.get("compute_capability"),
                   clock_khz=int(clock) * 1000 if clock else None)
