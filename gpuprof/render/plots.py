"""PNG charts with matplotlib: memory over time and the heaviest layers (or kernels).

matplotlib is imported inside each function, so importing gpuprof stays fast. Figures are built
with ``matplotlib.figure.Figure`` (rendered by Agg) rather than pyplot: no global backend switch
and no figure registry in the caller's process, and it works on machines without a display.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import NoDataError, require_module
from ..fsutil import atomic_path

MIB = 1024 * 1024
MAX_LABEL_CHARS = 60


def plot_memory(timeline: pd.DataFrame, path: str | Path, title: str = "GPU memory in use") -> Path:
    """Memory in use over time (ms from the first event, MiB), one step line per
    (device, source), each line's peak annotated. ``timeline`` is ``memory_timeline``'s output.
    """
    if timeline.empty:
        raise NoDataError("no memory events to plot",
                          "Capture them with: nsys profile --cuda-memory-usage=true ...")
    origin = int(timeline["time_ns"].min())
    fig = _figure((10, 4.5))
    ax = fig.add_subplot()
    groups = timeline.groupby(["device_id", "source"], observed=True, sort=True)
    for (device, source), line in groups:
        x_ms = (line["time_ns"].to_numpy() - origin) / 1e6
        y_mib = line["used_bytes"].to_numpy() / MIB
        where = f"GPU {device}" if device >= 0 else "host"  # device -1: process memory (RSS)
        ax.step(x_ms, y_mib, where="post", label=_text(f"{where} ({source})"))
        peak = int(y_mib.argmax())
        ax.annotate(f"peak {y_mib[peak]:,.1f} MiB", (x_ms[peak], y_mib[peak]),
                    textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set(xlabel="time since first event (ms)", ylabel="memory in use (MiB)", title=_text(title))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_layers(table: pd.DataFrame, path: str | Path, label: str = "layer",
                value: str = "total_ns", top: int = 20,
                title: str = "GPU time by layer") -> Path:
    """Horizontal bars of the ``top`` rows by ``value`` (ns, shown in ms), heaviest on top.

    Works for any table with a label column and a value column in ns (layers, kernels).
    """
    if table.empty:
        raise NoDataError("nothing to plot: the table is empty")
    rows = table.nlargest(top, value)[::-1]
    labels = [_text(_short(str(v))) for v in rows[label]]
    fig = _figure((10, 1.2 + 0.32 * len(rows)))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), rows[value].to_numpy() / 1e6)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set(xlabel="GPU time (ms)", title=_text(title))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _figure(size: tuple[float, float]):
    require_module("matplotlib", "pip install matplotlib")
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)


def _text(text: str) -> str:
    """Names are data: a '$' in a kernel or layer name must not start matplotlib math mode."""
    return text.replace("$", r"\$")


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"
