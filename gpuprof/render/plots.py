"""PNG charts with matplotlib: memory over time and the heaviest layers (or kernels).

matplotlib is imported inside each function, so importing gpuprof stays fast. Figures are built
with ``matplotlib.figure.Figure`` (rendered by Agg) rather than pyplot: no global backend switch
and no figure registry in the caller's process, and it works on machines without a display.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyze.memory import on_host
from ..errors import NoDataError, require_module
from ..fsutil import atomic_path
from ..units import MIB
from .names import fit_names

MAX_LABEL_CHARS = 60


def plot_memory(timeline: pd.DataFrame, path: str | Path, *, origin_ns: int,
                title: str = "Memory in use: GPU and host, by kind", phases: pd.DataFrame | None = None) -> Path:
    """Memory in use over time (ms from ``origin_ns``, MiB), one step line per
    (device, source, memory kind), host memory dashed, each line's peak annotated. ``timeline`` is ``memory_timeline``'s output.

    ``origin_ns`` is the run's time zero (``Run.time_zero``), so a peak sits at the same ms as
    in the reports and the Chrome trace. ``phases`` (``memory_by_phase``'s table, the one the
    engine report shows) shades the run's phases behind the lines.
    """
    if timeline.empty:
        raise NoDataError("no memory events to plot",
                          "Capture them with: nsys profile --cuda-memory-usage=true ...")
    fig = _figure((10, 4.5))
    ax = fig.add_subplot()
    lines = memory_lines(timeline, origin_ns)
    x_end = max(float(line.x_ms.max()) for line in lines)
    for line in lines:
        ax.step(line.x_ms, line.y_mib, where="post", label=_text(line.label),
                linestyle="--" if line.host else "-")
        # right-aligned near the right edge, so the note stays inside the plot
        right = line.peak_ms > 0.75 * x_end
        ax.annotate(f"peak {_size(line.peak_mib)}", (line.peak_ms, line.peak_mib),
                    textcoords="offset points", xytext=(-4 if right else 4, 6), fontsize=8,
                    ha="right" if right else "left")
    top = max(line.peak_mib for line in lines) * HEADROOM or 1.0
    if phases is not None:
        _shade_phases(ax, phase_spans(phases, origin_ns), top)
    ax.set(xlabel="time since the run's first event (ms)", ylabel="memory in use (MiB)",
           title=_text(title))
    ax.set_ylim(bottom=0, top=top)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _size(mib: float) -> str:
    """A peak in MiB, or in bytes when too small to read in MiB (static variables: 144 B)."""
    return f"{mib:,.1f} MiB" if mib >= 0.1 else f"{round(mib * MIB):,} B"


HEADROOM = 1.2  # room above the highest peak for its note and the phase names


def phase_spans(phases: pd.DataFrame, origin_ns: int) -> list[tuple[str, float, float]]:
    """(phase, start ms, end ms) bands from ``memory_by_phase``'s table: its rows in time order,
    consecutive rows of one phase (other sources or devices in the same phase) as one band. A
    band ends where the next one starts, the last at its last event. Empty without phases."""
    if phases.empty:
        return []
    rows = phases.sort_values("start_ns", kind="stable")
    names = rows["phase"].astype(str).to_numpy()
    starts = (rows["start_ns"].to_numpy(dtype=np.int64) - origin_ns) / 1e6
    ends = (rows["end_ns"].to_numpy(dtype=np.int64) - origin_ns) / 1e6
    first = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    band_ends = np.r_[starts[first[1:]], ends.max()]
    return [(names[i], float(starts[i]), float(end)) for i, end in zip(first, band_ends)]


MIN_LABELLED_SPAN = 0.06  # of the time axis: narrower phases are shaded but not named


def _shade_phases(ax, spans: list[tuple[str, float, float]], top: float) -> None:
    """Alternate light bands behind the lines, phases wide enough named at the top (names of
    short phases would overlap; the report's memory table lists every phase)."""
    if not spans:
        return
    width = max(spans[-1][2] - spans[0][1], 1e-9)
    for i, (name, start, end) in enumerate(spans):
        if i % 2 == 0:
            ax.axvspan(start, end, color="0.5", alpha=0.08, lw=0)
        if (end - start) / width >= MIN_LABELLED_SPAN:
            ax.text((start + end) / 2, top * 0.98, _text(name), ha="center", va="top",
                    fontsize=7, color="0.35", clip_on=True)


@dataclass(frozen=True)
class MemoryLine:
    """One plotted line: x in ms from the time zero, y in MiB, and where its peak is."""

    label: str
    x_ms: np.ndarray
    y_mib: np.ndarray
    peak_ms: float
    peak_mib: float
    host: bool = False  # host memory (pinned, pageable, RSS): drawn dashed, apart from GPU lines


def memory_lines(timeline: pd.DataFrame, origin_ns: int) -> list[MemoryLine]:
    """The lines ``plot_memory`` draws, one per (device, source, memory kind), labelled where the
    memory lives ("GPU 0 device (nsys)", "host pinned (nsys)"): kept apart from the drawing so
    the plotted peak positions can be checked against the reports."""
    from .memory_labels import memory_labels

    lines = []
    groups = timeline.groupby(["device_id", "source", "memory_kind"], observed=True, sort=True)
    keys = pd.DataFrame([key for key, _ in groups], columns=["device_id", "source", "memory_kind"])
    for label, (key, rows) in zip(memory_labels(keys), groups, strict=True):
        x_ms = (rows["time_ns"].to_numpy(dtype=np.int64) - origin_ns) / 1e6
        y_mib = rows["used_bytes"].to_numpy() / MIB
        peak = int(y_mib.argmax())  # argmax: the first time the peak is reached, as the reports
        lines.append(MemoryLine(f"{label} ({key[1]})", x_ms, y_mib, float(x_ms[peak]),
                                float(y_mib[peak]), on_host(int(key[0]), str(key[2]))))
    return lines


def plot_layers(table: pd.DataFrame, path: str | Path, label: str = "layer",
                value: str = "total_ns", top: int = 20,
                title: str = "GPU time by layer", xlabel: str = "GPU time (ms)") -> Path:
    """Horizontal bars of the ``top`` rows by ``value`` (ns, shown in ms), heaviest on top.

    Works for any table with a label column and a value column in ns (layers, kernels).
    """
    if table.empty:
        raise NoDataError("nothing to plot: the table is empty")
    rows = table.nlargest(top, value)[::-1]
    # cut like the terminal's tables: what tells the bars apart stays (never two alike)
    labels = [_text(v) for v in fit_names([str(v) for v in rows[label]], MAX_LABEL_CHARS)]
    fig = _figure((10, 1.2 + 0.32 * len(rows)))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), rows[value].to_numpy() / 1e6)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set(xlabel=_text(xlabel), title=_text(title))
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

