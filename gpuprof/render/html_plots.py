"""The plots only the HTML page adds: the latency distribution of timed iterations (engine,
trtexec) and the throughput of each measurement window of a load test (perf).

Matplotlib (Agg, no global state) through ``plots``' figure helpers; marked percentiles come
from ``analyze.stats.describe``, the one method every report's table uses, so a line on the
plot sits at the number in the table. Each returns None when this build cannot draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analyze import stats
from .html_visuals import Plot, drawn_plot

MARKED = (50, 99)


def latency_distribution(latency_ns: pd.Series, title: str = "Latency distribution") -> Plot | None:
    values = latency_ns.dropna().to_numpy(dtype="float64")
    if values.size < 2:
        return None
    marks = stats.describe(values, MARKED)
    caption = ", ".join(f"{stats.percentile_label(q)} {marks[stats.percentile_label(q)] / 1e3:.6g} µs"
                        for q in MARKED) + f" of {values.size} samples (dashed and dotted lines)"
    return drawn_plot(title, lambda path: _histogram(values, title, path), caption)


def _histogram(values_ns: np.ndarray, title: str, path) -> None:
    from .plots import _figure, _save

    unit, scale = ("ms", 1e6) if np.median(values_ns) >= 1e6 else ("µs", 1e3)
    marks = stats.describe(values_ns, MARKED)
    fig = _figure((9, 3.6))
    ax = fig.add_subplot()
    ax.hist(values_ns / scale, bins=min(60, max(10, values_ns.size // 5)), color="#4e79a7")
    for q, style in zip(MARKED, ("--", ":"), strict=True):
        label = stats.percentile_label(q)
        ax.axvline(marks[label] / scale, color="#e15759", linestyle=style,
                   label=f"{label} {marks[label] / scale:.4g} {unit}")
    ax.set(xlabel=f"latency ({unit})", ylabel="samples",
           title=f"{title} ({values_ns.size} samples)")
    ax.legend()
    _save(fig, path)


def window_throughput(windows: pd.DataFrame) -> Plot | None:
    """Inferences/s of every window over the run, one series per load level; the windows the
    level's result counts (the stable ones) filled, the others hollow."""
    if windows.empty:
        return None
    return drawn_plot("Throughput per measurement window",
                      lambda path: _windows(windows, path))


def _windows(windows: pd.DataFrame, path) -> None:
    from .plots import _figure, _save

    fig = _figure((9, 3.6))
    ax = fig.add_subplot()
    start_s = (windows["start_ns"] - windows["run_start_ns"]) / 1e9
    for level, part in windows.groupby("level", sort=True):
        x, y = start_s[part.index], part["throughput_infer_s"]
        line = ax.plot(x, y, marker="o", markerfacecolor="none", label=f"level {level:g}")[0]
        counted = part["counted"].astype(bool)
        ax.plot(x[counted], y[counted], "o", color=line.get_color())
    ax.set(xlabel="seconds from the run's start", ylabel="inferences/s",
           title="Throughput per measurement window (filled: counted in the level's result)")
    ax.set_ylim(bottom=0)
    ax.legend()
    _save(fig, path)
