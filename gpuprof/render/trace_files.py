"""One place that picks a trace's format and tells the user whether viewers will open it.

``.pftrace`` (or ``.perfetto-trace``) writes Perfetto's protobuf trace, ``.pftrace.gz`` the
same gzip-compressed (about 4x smaller; Perfetto's trace processor and UI read gzip
natively), anything else the Chrome Trace Event JSON. ``--out-dir`` writes JSON for small runs (every viewer opens it,
and it carries per-slice arguments) and protobuf once a run has more slices than
``LARGE_RUN_SLICES``, where JSON stops being openable.
"""

from __future__ import annotations

from pathlib import Path

from ..units import MIB

PROTOBUF_SUFFIXES = (".pftrace", ".perfetto-trace", ".pftrace.gz", ".perfetto-trace.gz")
LARGE_RUN_SLICES = 500_000
# chrome://tracing reads a JSON trace as one string and fails near 256 MB (trace-viewer #627)
JSON_VIEWER_LIMIT = 256 * MIB
# Perfetto's UI holds about 2 GB in the browser and a proto trace takes 2-4x its size there
# (perfetto.dev/docs/visualization/large-traces)
BROWSER_PROTOBUF_LIMIT = 512 * MIB


def is_protobuf(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(PROTOBUF_SUFFIXES)


def write_trace(run, path: str | Path, origin_ns: int | None = None) -> Path:
    """Write ``run``'s timeline to ``path`` in the format its suffix names. JSON counts time
    from ``origin_ns`` (default: the run's time zero); protobuf keeps the run's own ns."""
    if is_protobuf(path):
        from .perfetto_trace import write_perfetto_trace

        return write_perfetto_trace(run, path)
    from .chrome_trace import write_chrome_trace

    return write_chrome_trace(run, path, origin_ns=run.time_zero if origin_ns is None
                              else origin_ns)


def out_dir_trace_name(run) -> str:
    """trace.json for runs every viewer opens, trace.pftrace for large ones."""
    slices = sum(run.num_rows(t) for t in ("kernels", "copies", "api_calls", "nvtx_ranges"))
    return "trace.pftrace" if slices > LARGE_RUN_SLICES else "trace.json"


def describe_trace(path: Path) -> str:
    """"Wrote PATH (SIZE)", and what opens it when its size is past a viewer's limit."""
    size = path.stat().st_size
    line = f"Wrote {path} ({_size(size)})"
    if not is_protobuf(path) and size > JSON_VIEWER_LIMIT:
        return (line + ": too big for chrome://tracing and slow in Perfetto's UI; write a "
                ".pftrace instead (same tracks, a fraction of the size)")
    if is_protobuf(path) and size > BROWSER_PROTOBUF_LIMIT:
        return (line + ": may exceed what Perfetto's UI holds in a browser; write .pftrace.gz "
                "(4x smaller) or open it through `trace_processor --httpd FILE` and "
                "ui.perfetto.dev")
    return line + "; open it in ui.perfetto.dev"


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
