"""One warning line before reading exports that will not fit in the memory left: past what it
can get, the process is killed (the kernel's OOM killer, a container's limit) without a word."""

from __future__ import annotations

from pathlib import Path

import click


def warn_if_too_big(files: list[Path], factor: float = 1.0, at_once: int = 1) -> None:
    """Warn when the ``at_once`` biggest of ``files`` (nsys exports read side by side, e.g.
    by a local Dask cluster's workers) need more than is available here. ``factor``: what the
    options add to the default report's peak (--save, a trace: about 1.3x at 5M kernels;
    --out-dir 1.9x)."""
    from ..capture.host import available_memory_bytes

    sized = []
    for path in files:
        found = _sized(path)
        if found is not None:
            sized.append((found[0] * factor, found[1], path))
    sized.sort(key=lambda item: item[0], reverse=True)
    chosen = sized[:max(at_once, 1)]
    if not chosen:
        return
    needed, available = sum(peak for peak, _, _ in chosen), available_memory_bytes()
    if available is None or needed <= available:
        return
    if len(files) == 1:
        _, rows, path = chosen[0]
        what, advice = f"{path.name} holds {_rows_text(rows)}: reading it", \
            "Free memory, or run it where more is available."
    else:
        what = (f"reading {len(chosen)} of these exports at once (the biggest: "
                f"{', '.join(path.name for _, _, path in chosen)})")
        advice = "Run fewer at once (--workers), free memory, or run them where more is available."
    click.echo(f"Warning: {what} needs about {needed / 2**30:.1f} GiB and "
               f"{available / 2**30:.1f} GiB is available here, so the system may kill gpuprof "
               f"before it reports. {advice}", err=True)


def _sized(path: Path) -> tuple[int, dict[str, int]] | None:
    """(estimated peak bytes, rows of the big tables) of an nsys SQLite export; None for a saved
    run, a report still to be exported, or anything the read itself will refuse."""
    if path.suffix in (".gpuprof", ".nsys-rep") or not path.is_file():
        return None  # before the import: a saved run's report imports no export reader
    from ..ingest.nsys.size import event_rows, report_peak_bytes

    try:
        rows = event_rows(path)
    except Exception:  # noqa: BLE001 - only a size: the read itself says what is wrong
        return None
    return report_peak_bytes(rows), rows


def _rows_text(rows: dict[str, int]) -> str:
    from ..ingest.nsys import schema

    names = {schema.KERNEL: "kernels", schema.RUNTIME: "CUDA API calls", schema.NVTX: "NVTX events"}
    return ", ".join(f"up to {n:,} {names[table]}" for table, n in rows.items())
