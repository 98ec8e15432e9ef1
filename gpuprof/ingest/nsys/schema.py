"""Names from the Nsight Systems SQLite export, in one place.

Every table is optional (nsys exports only tables that hold data) and column sets vary by
release, so readers ask ``ExportFile.columns`` before selecting.
"""

KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
NVTX = "NVTX_EVENTS"
GPU_MEMORY = "CUDA_GPU_MEMORY_USAGE_EVENTS"
STRINGS = "StringIds"
GPU_INFO = "TARGET_INFO_GPU"
GPU_INFO_OLD = "TARGET_INFO_CUDA_GPU"        # pre-2021.3 exports
SESSION_START = "TARGET_INFO_SESSION_START_TIME"
META_NEW = "META_DATA_EXPORT"                 # 2023.3+
META_OLD = "EXPORT_META_DATA"                 # 2022.1 - 2023.2
MEMCPY_ENUM = "ENUM_CUDA_MEMCPY_OPER"
MEM_KIND_ENUM = "ENUM_CUDA_MEM_KIND"

# Only these keys of the export's own metadata are ever read: the rest (host, user, paths, and
# all of META_DATA_CAPTURE) can identify people and must never reach a report or a log.
META_KEYS = ("EXPORT_PRODUCT_VERSION", "EXPORT_SCHEMA_VERSION")

# Tables whose presence marks a file as an nsys export even when it holds no CUDA data.
MARKER_TABLES = (STRINGS, "ThreadNames", GPU_INFO, GPU_INFO_OLD, SESSION_START, META_NEW,
                 META_OLD, "TARGET_INFO_SYSTEM_ENV", "PROCESSES")

# NVTX_EVENTS.eventType values (ENUM_NSYS_EVENT_TYPE)
NVTX_MARK = 34
NVTX_PUSH_POP = 59
NVTX_START_END = 60
NVTX_DOMAIN_CREATE = 75
NVTX_RANGE_KINDS = {NVTX_PUSH_POP: "push_pop", NVTX_START_END: "start_end", NVTX_MARK: "mark"}

# copyKind values (ENUM_CUDA_MEMCPY_OPER), used when the export lacks the enum table.
MEMCPY_DIRECTIONS = {
    0: "Unknown", 1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD", 7: "DtoA",
    8: "DtoD", 9: "HtoH", 10: "PtoP", 11: "UVM HtoD", 12: "UVM DtoH", 13: "UVM DtoD",
}
# memKind values (ENUM_CUDA_MEM_KIND) for memory usage events, when the enum table is absent.
MEM_KINDS = {0: "pageable", 1: "pinned", 2: "device", 3: "array", 4: "managed",
             5: "device_static", 6: "managed_static", 7: "unknown"}

# globalTid = HW:8 | VM:8 | PID:24 | TID:24 ; globalPid carries the same layout with TID = 0.
PID_SHIFT = 24
ID_MASK = 0xFFFFFF
