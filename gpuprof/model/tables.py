"""The typed tables at the centre of gpuprof, all on one clock.

Every source (nsys export, TensorRT run, ONNX Runtime, Triton trace, bpftrace) is ingested into
these tables. Times are integer nanoseconds on the run's reference clock (see ``ClockDomain`` in
``meta.py``); columns carry their unit in the name. String columns are pandas categoricals
because names repeat millions of times in large exports.

A table that a source did not provide is empty (right columns, zero rows), never missing, and
``RunMeta.absent`` says why it is empty.
"""

from __future__ import annotations

import pandas as pd

CAT = "category"
I64 = "int64"
I32 = "int32"
F64 = "float64"
STR = "object"  # free text that rarely repeats (e.g. a request id)

# name -> {column: dtype}. Optional columns may be absent from old exports; they are created
# filled with -1 (ids) or NA so that analysis code never has to test for a column.
SCHEMAS: dict[str, dict[str, str]] = {
    # GPU kernels (CUPTI_ACTIVITY_KIND_KERNEL, ONNX Runtime CUDA kernels, ...)
    "kernels": {
        "start_ns": I64, "end_ns": I64, "device_id": I32, "stream_id": I32,
        "correlation_id": I64, "pid": I64, "name": CAT, "demangled_name": CAT,
    },
    # launch configuration of kernels (row = position in ``kernels``). Kept apart because it
    # only annotates traces, and reading and holding it doubles the cost of huge exports; an
    # nsys export is read with it on request (read_nsys(..., details=True)).
    "kernel_launches": {
        "kernel_row": I64, "context_id": I32, "grid_x": I32, "grid_y": I32, "grid_z": I32,
        "block_x": I32, "block_y": I32, "block_z": I32, "registers_per_thread": I32,
        "shared_memory_bytes": I64, "graph_node_id": I64,
    },
    # CUDA runtime/driver API calls on the host (CUPTI_ACTIVITY_KIND_RUNTIME)
    "api_calls": {
        "start_ns": I64, "end_ns": I64, "pid": I64, "tid": I64, "global_tid": I64,
        "correlation_id": I64, "name": CAT, "return_value": I64,
    },
    # memory copies and sets on the GPU; kind is "memcpy" or "memset"
    "copies": {
        "start_ns": I64, "end_ns": I64, "device_id": I32, "context_id": I32, "stream_id": I32,
        "correlation_id": I64, "pid": I64, "kind": CAT, "direction": CAT, "bytes": I64,
    },
    # NVTX ranges and marks. range_kind: "push_pop", "start_end" or "mark" (end_ns == start_ns)
    "nvtx_ranges": {
        "start_ns": I64, "end_ns": I64, "pid": I64, "tid": I64, "global_tid": I64,
        "range_kind": CAT, "domain": CAT, "text": CAT, "payload": F64,
    },
    # memory over time: one row per allocation or free. bytes is positive for an allocation
    # and negative for a free, so a cumulative sum per (source, device_id, memory_kind) is the
    # usage. kind is the event's kind (alloc, free, a sample...); memory_kind the kind of memory
    # (nsys memKind: device, pinned, pageable, array, managed, device_static, ...; a free carries
    # its allocation's), NA where the source has one kind only (an allocator's device memory on
    # device_id >= 0, process memory on device_id -1).
    "memory_events": {
        "time_ns": I64, "device_id": I32, "pid": I64, "source": CAT, "kind": CAT,
        "bytes": I64, "address": I64, "phase": CAT, "detail": CAT, "memory_kind": CAT,
    },
    # per-layer timings from a layer profiler (TensorRT IProfiler, ONNX Runtime, trtexec);
    # provider: where the layer ran when the profiler says (ONNX Runtime's execution provider)
    "layer_timings": {
        "iteration": I64, "layer": CAT, "layer_type": CAT, "duration_ns": I64,
        "start_ns": I64, "source": CAT, "provider": CAT,
    },
    # a built engine's layers: from TensorRT's engine inspector (the engine as it runs: fused
    # layers, reformats, precision, tactic) or, where no GPU can load the plan, the parsed
    # network before optimisation (info_kind says which)
    "engine_layers": {
        "index": I64, "layer": STR, "layer_type": CAT, "precision": CAT, "tactic": STR,
        "onnx_nodes": STR, "info_kind": CAT,
    },
    # one row per timed inference of a driven run or of a program under gpuprof.profile()
    # (host clock and CUDA events); tid: the calling thread where known (profile())
    "iterations": {
        "iteration": I64, "start_ns": I64, "end_ns": I64, "latency_ns": I64,
        "h2d_ns": I64, "compute_ns": I64, "d2h_ns": I64, "source": CAT, "tid": I64,
    },
    # server-side request stages (Triton traces): one row per (request, stage)
    "requests": {
        "request_id": STR, "trace_id": I64, "parent_id": I64, "model": CAT, "model_version": CAT,
        "stage": CAT, "start_ns": I64, "end_ns": I64, "source": CAT,
    },
    # Triton trace records as written, which ``requests`` is derived from: every timestamp
    # (unknown names too), one header per request, and TENSORS-level tensor records
    "triton_timestamps": {"source": CAT, "trace_id": I64, "name": CAT, "ns": I64},
    "triton_headers": {
        "source": CAT, "trace_id": I64, "model": CAT, "model_version": CAT, "request_id": STR,
        "parent_id": I64,
    },
    "triton_tensors": {
        "source": CAT, "trace_id": I64, "activity": CAT, "tensor": CAT, "dtype": CAT,
        "shape": STR,
    },
    # network events (bpftrace TCP send/recv): one row per call that moved data. direction is
    # "send" or "recv"; time_ns (CLOCK_MONOTONIC) and bytes are -1 in the seed tracer's layout,
    # which has neither (ingest/net_capture.py)
    # A row can also be a run of same-direction calls on one socket (the runs program that
    # `gpuprof perf --net` uses): time_ns is its first call, last_ns its last, calls how many,
    # bytes their sum; a single call has last_ns == time_ns and calls == 1.
    "network_events": {
        "time_ns": I64, "pid": I64, "tid": I64, "comm": CAT, "local_addr": CAT, "local_port": I32,
        "remote_addr": CAT, "remote_port": I32, "direction": CAT, "bytes": I64,
        "last_ns": I64, "calls": I64,
    },
}

TABLE_NAMES: tuple[str, ...] = tuple(SCHEMAS)
# columns that hold instants (moved when a source is put on another clock); every other
# ``*_ns`` column is a duration
INSTANT_COLUMNS = frozenset({"start_ns", "end_ns", "time_ns", "ns", "last_ns"})


def time_columns(name: str) -> list[str]:
    """The instant columns of table ``name``."""
    return [c for c in SCHEMAS[name] if c in INSTANT_COLUMNS]


def empty_table(name: str) -> pd.DataFrame:
    """A zero-row DataFrame with the table's columns and dtypes."""
    schema = SCHEMAS[name]
    return pd.DataFrame({col: pd.Series(dtype=dtype) for col, dtype in schema.items()})


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns, in order, with the schema's dtypes.

    Missing optional columns are filled: -1 for integer ids, NA otherwise. Extra columns are
    dropped so that every table of a given name looks the same whatever produced it.
    """
    schema = SCHEMAS[name]
    if _already(frame, schema):
        return frame
    out = {}
    for col, dtype in schema.items():
        if col in frame.columns:
            series = frame[col]
            out[col] = series if str(series.dtype) == dtype else _cast(series, dtype)
        else:
            out[col] = _filler(len(frame), dtype, frame.index)
    return pd.DataFrame(out, index=frame.index, copy=False).reset_index(drop=True)


def _already(frame: pd.DataFrame, schema: dict[str, str]) -> bool:
    """True when ``frame`` has exactly the schema's columns and dtypes and a default index."""
    return (list(frame.columns) == list(schema)
            and all(str(frame[c].dtype) == d for c, d in schema.items())
            and isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
            and frame.index.step == 1)


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    if dtype in (I64, I32):
        return series.fillna(-1).astype(dtype)
    return series.astype(dtype)


def _filler(n: int, dtype: str, index) -> pd.Series:
    if dtype in (I64, I32):
        return pd.Series(-1, index=index, dtype=dtype)
    if dtype == F64:
        return pd.Series(float("nan"), index=index, dtype=dtype)
    return pd.Series(pd.NA, index=index, dtype=dtype if dtype == CAT else "object")
