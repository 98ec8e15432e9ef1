"""One reader per model table. Each selects only the columns the export has and returns a
DataFrame in the model's units, or None when the export lacks the source table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from . import schema
from .columns import StreamedColumns, filled, to_float64, to_int64
from .export_file import ExportFile
from .strings import StringTable, coalesce, code_dtype, text_categorical


def _select(export: ExportFile, table: str, fields: dict[str, tuple[str, ...]],
            where: str = "", computed: dict[str, str | None] | None = None) -> pa.Table:
    """SELECT each alias from the first candidate column the table has (omitted if none),
    plus ``computed`` SQL expressions (skipped when None)."""
    return export.arrow(_select_sql(export, table, fields, where, computed))


# ids the model keeps as int32 columns or categorical codes: read as int32 where they fit
NARROW = frozenset({"device", "stream", "short", "demangled", "name", "type", "text_id",
                    "domain", "context", "gx", "gy", "gz", "bx", "by", "bz", "regs"})


def _select_big(export: ExportFile, table: str, fields: dict[str, tuple[str, ...]],
                where: str = "", computed: dict[str, str | None] | None = None) -> StreamedColumns:
    """``_select`` for the tables of millions of rows: streamed, column by column."""
    return export.read_columns(_select_sql(export, table, fields, where, computed), table,
                               narrow=NARROW)


def _select_sql(export: ExportFile, table: str, fields: dict[str, tuple[str, ...]],
                where: str, computed: dict[str, str | None] | None) -> str:
    have = set(export.columns(table))
    parts = []
    for alias, candidates in fields.items():
        column = next((c for c in candidates if c in have), None)
        if column is not None:
            parts.append(f'"{column}" AS {alias}')
    parts += [f"{expr} AS {alias}" for alias, expr in (computed or {}).items() if expr]
    return f"SELECT {', '.join(parts)} FROM {table} {where}"


def _ints(table: pa.Table, name: str, fill: int = -1) -> np.ndarray:
    if name not in table.column_names:
        return filled(table.num_rows, fill)
    return to_int64(table.column(name), fill)


def _release() -> None:
    """Hand Arrow's freed pages back to the system: a read's buffers are done with by now,
    and numpy, allocating elsewhere, cannot reuse them."""
    pa.default_memory_pool().release_unused()


def _positions(keep: np.ndarray) -> slice | np.ndarray:
    """Where ``keep`` is True, as a slice when that is one run (then rows are taken as views,
    not copies: an export's NVTX domain creations, the rows dropped, usually come first)."""
    where = np.flatnonzero(keep)
    if len(where) and where[-1] - where[0] + 1 == len(where):
        return slice(int(where[0]), int(where[-1]) + 1)
    return where


def _frame(columns: dict) -> pd.DataFrame:
    # copy=False keeps one block per column: consolidating millions of rows costs seconds.
    return pd.DataFrame(columns, copy=False)


def _pid(global_id: np.ndarray, reuse: bool = False) -> np.ndarray:
    """The PID field of serialized global ids; ``reuse`` overwrites ``global_id`` when it can."""
    if reuse and global_id.flags.writeable and global_id.dtype == np.int64:
        np.right_shift(global_id, schema.PID_SHIFT, out=global_id)
        np.bitwise_and(global_id, schema.ID_MASK, out=global_id)
        return global_id
    pid = global_id >> schema.PID_SHIFT
    pid &= schema.ID_MASK
    return pid


def _drop_open(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose end is missing or before their start cannot be placed in time."""
    ok = (frame["end_ns"] >= frame["start_ns"]) & (frame["start_ns"] >= 0)
    return frame if ok.all() else frame[ok]


# Reading cost grows with every column, so the launch configuration (used only to annotate
# traces) is read on request: read_nsys(..., details=True).
KERNEL_FIELDS = {
    "start": ("start",), "end": ("end",), "device": ("deviceId",),
    "stream": ("streamId",), "corr": ("correlationId",), "gpid": ("globalPid",),
    "short": ("shortName",), "demangled": ("demangledName",),
}
KERNEL_DETAIL_FIELDS = {
    "context": ("contextId",), "gx": ("gridX",), "gy": ("gridY",), "gz": ("gridZ",),
    "bx": ("blockX",), "by": ("blockY",), "bz": ("blockZ",), "regs": ("registersPerThread",),
    "smem_static": ("staticSharedMemory",), "smem_dynamic": ("dynamicSharedMemory",),
    "graph_node": ("graphNodeId",),
}


def read_kernels(export: ExportFile, strings: StringTable,
                 details: bool = False) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The kernels table, and with ``details`` their launch configurations."""
    if not export.has(schema.KERNEL):
        return None, None
    t = _select_big(export, schema.KERNEL,
                         KERNEL_FIELDS | (KERNEL_DETAIL_FIELDS if details else {}))
    start, end = t.ints("start"), t.ints("end")
    keep = (end >= start) & (start >= 0)  # rows that cannot be placed in time are dropped
    kept = None if keep.all() else _positions(keep)
    del keep

    def col(name, fill=-1, dtype=None, values=None):  # dtype None: as read (ids may be int32)
        values = t.ints(name, fill) if values is None else values
        values = values if kept is None else values[kept]
        return values if dtype is None else values.astype(dtype, copy=False)

    kernels = _frame({
        "start_ns": col("start", values=start), "end_ns": col("end", values=end),
        "device_id": col("device", dtype=np.int32),
        "stream_id": col("stream", dtype=np.int32), "correlation_id": col("corr"),
        "pid": _pid(col("gpid", 0), reuse=True),
        "name": strings.categorical(col("short")), "demangled_name": strings.categorical(col("demangled")),
    })
    del start, end
    if not details:
        t = None  # drop the Arrow columns before returning (col() is done with them)
        _release()
        return kernels, None
    launches = _frame({
        "kernel_row": np.arange(len(kernels), dtype=np.int64),
        "context_id": col("context", dtype=np.int32),
        **{f"{axis}_{d}": col(f"{axis[0]}{d}", dtype=np.int32)
           for axis in ("grid", "block") for d in "xyz"},
        "registers_per_thread": col("regs", dtype=np.int32),
        "shared_memory_bytes": col("smem_static", 0) + col("smem_dynamic", 0),
        "graph_node_id": col("graph_node"),
    })
    t = None
    _release()
    return kernels, launches


def read_api_calls(export: ExportFile, strings: StringTable, details: bool = False) -> pd.DataFrame | None:
    if not export.has(schema.RUNTIME):
        return None
    fields = {"start": ("start",), "end": ("end",), "gtid": ("globalTid",),
              "corr": ("correlationId",), "name": ("nameId",)}
    t = _select_big(export, schema.RUNTIME, fields | ({"ret": ("returnValue",)} if details else {}))
    gtid = t.ints("gtid", 0)
    frame = _frame({
        "start_ns": t.ints("start"), "end_ns": t.ints("end"), "pid": _pid(gtid),
        "tid": gtid & schema.ID_MASK, "global_tid": gtid, "correlation_id": t.ints("corr"),
        "name": strings.categorical(t.ints("name")), "return_value": t.ints("ret"),  # -1: NULL or unread
    })
    del t
    _release()
    return _drop_open(frame)


COPY_FIELDS = {
    "start": ("start",), "end": ("end",), "device": ("deviceId",), "context": ("contextId",),
    "stream": ("streamId",), "corr": ("correlationId",), "gpid": ("globalPid",),
    "bytes": ("bytes",), "copy_kind": ("copyKind",), "mem_kind": ("memKind",),
}


def read_copies(export: ExportFile) -> pd.DataFrame | None:
    parts = []
    if export.has(schema.MEMCPY):
        t = _select(export, schema.MEMCPY, COPY_FIELDS)
        names = _enum(export, schema.MEMCPY_ENUM, schema.MEMCPY_DIRECTIONS)
        parts.append(_copy_frame(t, "memcpy", _labels(_ints(t, "copy_kind"), names)))
    if export.has(schema.MEMSET):
        t = _select(export, schema.MEMSET, COPY_FIELDS)
        kinds = _enum(export, schema.MEM_KIND_ENUM, schema.MEM_KINDS)
        parts.append(_copy_frame(t, "memset", _labels(_ints(t, "mem_kind"), kinds)))
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    for col in ("kind", "direction"):
        frame[col] = frame[col].astype("category")
    return _drop_open(frame)


def _copy_frame(t: pa.Table, kind: str, direction) -> pd.DataFrame:
    return _frame({
        "start_ns": _ints(t, "start"), "end_ns": _ints(t, "end"),
        "device_id": _ints(t, "device").astype(np.int32),
        "context_id": _ints(t, "context").astype(np.int32),
        "stream_id": _ints(t, "stream").astype(np.int32), "correlation_id": _ints(t, "corr"),
        "pid": _pid(_ints(t, "gpid", 0)), "kind": pd.Categorical([kind] * t.num_rows),
        "direction": direction, "bytes": _ints(t, "bytes", 0),
    })


def _enum(export: ExportFile, table: str, fallback: dict[int, str]) -> dict[int, str]:
    """An export's own enum labels where it has the table, else our copy of them."""
    if not export.has(table) or not {"id", "name"} <= set(export.columns(table)):
        return dict(fallback)
    names = dict(fallback)
    for ident, name in export.rows(f"SELECT id, name FROM {table}"):
        if isinstance(ident, int) and isinstance(name, str):
            short = name.rsplit("_KIND_", 1)[-1]
            names[ident] = fallback.get(ident, short)
    return names


def _labels(codes: np.ndarray, names: dict[int, str]) -> pd.Categorical:
    uniques, inverse = np.unique(codes, return_inverse=True)
    labels = [names.get(int(u), f"kind {int(u)}") for u in uniques]
    return pd.Categorical(np.asarray(labels, dtype=object)[inverse])


def read_nvtx(export: ExportFile, strings: StringTable,
              details: bool = False) -> tuple[pd.DataFrame | None, int]:
    """NVTX ranges and marks; also returns how many ranges were dropped for having no end.

    Payloads (a union of six columns, about 40% of the read's cost) are read with ``details``;
    unread, they are NaN."""
    if not export.has(schema.NVTX):
        return None, 0
    kinds = ", ".join(str(k) for k in (*schema.NVTX_RANGE_KINDS, schema.NVTX_DOMAIN_CREATE))
    t = _select_big(export, schema.NVTX, {
        "start": ("start",), "end": ("end",), "type": ("eventType",), "text": ("text",),
        "text_id": ("textId",), "domain": ("domainId",), "gtid": ("globalTid",),
    }, where=f"WHERE eventType IN ({kinds})", computed={"payload": _payload_sql(export) if details else None})
    event_type = t.ints("type")
    gtid = t.ints("gtid", 0)
    pid = _pid(gtid)
    text = _nvtx_text(t, strings)
    domains = _domain_names(event_type, t.ints("domain", 0), pid, text)
    keep = event_type != schema.NVTX_DOMAIN_CREATE
    start, end = t.ints("start"), t.ints("end")
    is_mark = event_type == schema.NVTX_MARK
    if is_mark.any():  # a mark is an instant: it ends where it starts (in place: millions of rows)
        end = end if end.flags.writeable else end.copy()
        np.copyto(end, start, where=is_mark)
    open_range = keep & ~is_mark & (end < start)
    keep &= ~open_range
    del is_mark
    payload = _payload(t)
    # Keep rows before building the frame: filtering numpy arrays and codes is far cheaper
    # than filtering a DataFrame of categoricals.
    kept = None if keep.all() else _positions(keep)

    def rows(values):
        return values if kept is None else values[kept]

    def categorical_rows(values: pd.Categorical) -> pd.Categorical:
        if kept is None:
            return values
        return pd.Categorical.from_codes(values.codes[kept], categories=values.categories,
                                         ordered=values.ordered)

    frame = _frame({
        "start_ns": rows(start), "end_ns": rows(end), "pid": rows(pid),
        "tid": rows(gtid) & schema.ID_MASK, "global_tid": rows(gtid),
        "range_kind": pd.Categorical.from_codes(_range_kind_codes(rows(event_type)),
                                                categories=["mark", "push_pop", "start_end"]),
        "domain": categorical_rows(domains), "text": categorical_rows(text), "payload": rows(payload),
    })
    del t
    _release()
    return frame, int(open_range.sum())


RANGE_KIND_TYPES = np.array([schema.NVTX_MARK, schema.NVTX_PUSH_POP, schema.NVTX_START_END])


def _range_kind_codes(event_type: np.ndarray) -> np.ndarray:
    """Position of each event type among RANGE_KIND_TYPES (as searchsorted gives it)."""
    if len(event_type) and event_type.min() >= 0 and event_type.max() < 256:
        table = np.searchsorted(RANGE_KIND_TYPES, np.arange(256)).astype(np.int8)
        return table[event_type]  # one small lookup instead of a binary search per row
    return np.searchsorted(RANGE_KIND_TYPES, event_type)


def _nvtx_text(t: StreamedColumns, strings: StringTable) -> pd.Categorical:
    has_text, has_id = "text" in t, "text_id" in t
    by_id = strings.categorical(t.ints("text_id", -1)) if has_id else None
    inline = text_categorical(t.pop("text")) if has_text else None
    if inline is not None and by_id is not None:
        return coalesce(inline, by_id)
    if inline is not None or by_id is not None:
        return inline if inline is not None else by_id
    return pd.Categorical([None] * t.num_rows)


def _domain_names(event_type, domain_id, pid, text) -> pd.Categorical:
    """Domain ids are per process and differ between files: name them from creation events."""
    created = np.flatnonzero(event_type == schema.NVTX_DOMAIN_CREATE)
    texts = np.asarray(text.take(created), dtype=object)
    names = {(int(pid[i]), int(domain_id[i])): str(n) for i, n in zip(created, texts)}
    by_id = {d: n for (_, d), n in names.items()}
    key = (pid.astype(np.int64) << 32) | (domain_id.astype(np.int64) & 0xFFFFFFFF)
    codes, uniques = pd.factorize(key)
    labels = []
    for k in uniques:
        p, d = int(k) >> 32, int(k) & 0xFFFFFFFF
        labels.append(names.get((p, d), by_id.get(d, "default" if d == 0 else f"domain {d}")))
    return _categorical_from(codes, labels)


def _categorical_from(codes: np.ndarray, labels: list[str]) -> pd.Categorical:
    label_codes, categories = pd.factorize(pd.Series(labels, dtype=object))
    label_codes = label_codes.astype(code_dtype(len(categories)))  # gather straight into final codes
    return pd.Categorical.from_codes(label_codes[codes], categories=pd.Index(categories, dtype=object))


def _payload(t: StreamedColumns) -> np.ndarray:
    if "payload" not in t:
        return np.full(t.num_rows, np.nan)
    return to_float64(t.pop("payload"))


# NVTX payload: a union stored as one column per member; at most one is set per row.
PAYLOAD_COLUMNS = ("doubleValue", "int64Value", "uint64Value", "int32Value", "uint32Value", "floatValue")


def _payload_sql(export: ExportFile) -> str | None:
    present = [c for c in PAYLOAD_COLUMNS if c in set(export.columns(schema.NVTX))]
    if not present:
        return None
    # CAST each member to DOUBLE (REAL is 32-bit in DuckDB) so one column has one type whatever the reader.
    return "COALESCE(" + ", ".join(f'CAST("{c}" AS DOUBLE)' for c in present) + ", NULL)"


def read_memory_events(export: ExportFile) -> pd.DataFrame | None:
    if not export.has(schema.GPU_MEMORY):
        return None
    t = _select(export, schema.GPU_MEMORY, {
        "start": ("start", "timestamp"), "device": ("deviceId",), "gpid": ("globalPid",),
        "bytes": ("bytes",), "op": ("memoryOperationType",), "mem_kind": ("memKind",),
        "address": ("address",)})
    size = _ints(t, "bytes", 0)
    is_free = _ints(t, "op", 0) == 1
    kinds = _enum(export, schema.MEM_KIND_ENUM, schema.MEM_KINDS)
    return _frame({
        "time_ns": _ints(t, "start"), "device_id": _ints(t, "device").astype(np.int32),
        "pid": _pid(_ints(t, "gpid", 0)), "source": pd.Categorical(["nsys"] * t.num_rows),
        "kind": pd.Categorical(np.where(is_free, "free", "alloc")),
        "bytes": np.where(is_free, -size, size), "address": _ints(t, "address", 0),
        "phase": pd.Categorical([None] * t.num_rows),
        # a free carries its allocation's memKind (checked on the real exports), so the running
        # sum per kind needs no address matching
        "memory_kind": _labels(_ints(t, "mem_kind"), kinds),
    }).sort_values("time_ns", kind="stable").reset_index(drop=True)
