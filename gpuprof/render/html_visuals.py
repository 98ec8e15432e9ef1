"""What only the HTML page shows: plots (PNG bytes, inlined as data: URIs) and a timeline of
the run's main tracks (drawn by the page's script, zoomable).

They go in ``Report.visuals``; the text formats ignore them. The timeline's spans come from
the same tables as the trace (kernels per GPU stream, NVTX ranges per thread, timed
iterations, Triton request stages), counted from the run's time zero like every report time.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import GpuprofError

MAX_SPANS_PER_TRACK = 4000  # the longest ones: a page stays a few MB even for huge runs
MAX_TRACKS = 40


@dataclass
class Plot:
    title: str
    png: bytes
    caption: str = ""  # the plotted numbers in words (the marked percentiles)


@dataclass
class Track:
    name: str
    spans: list[tuple[float, float, str]]  # (start ms from time zero, duration ms, name)
    total: int                              # spans the source had (more than shown when cut)


@dataclass
class Timeline:
    tracks: list[Track] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def end_ms(self) -> float:
        return max((s[0] + s[1] for t in self.tracks for s in t.spans), default=1.0)


def plot_file(path: str | Path, title: str) -> Plot:
    return Plot(title, Path(path).read_bytes())


def drawn_plot(title: str, draw, caption: str = "") -> Plot | None:
    """A plot made by ``draw(path)`` (one of ``plots``' writers) into a temporary file; None
    where this build cannot draw (no matplotlib) or there is nothing to draw."""
    with tempfile.TemporaryDirectory(prefix="gpuprof-plot-") as folder:
        path = Path(folder) / "plot.png"
        try:
            draw(path)
        except (ImportError, GpuprofError):
            return None
        return Plot(title, path.read_bytes(), caption)


def run_timeline(run, origin_ns: int) -> Timeline:
    """Kernels per GPU stream, NVTX ranges per thread and timed iterations of an ``api.Run``."""
    timeline = Timeline()
    kernels = run.frame("kernels", ["start_ns", "end_ns", "device_id", "stream_id", "name"])
    for (device, stream), part in _groups(kernels, ["device_id", "stream_id"]):
        timeline.tracks.append(_track(f"GPU {device} stream {stream}", part, origin_ns, "name"))
    ranges = run.frame("nvtx_ranges", ["start_ns", "end_ns", "tid", "text"])
    for (tid,), part in _groups(ranges, ["tid"]):
        timeline.tracks.append(_track(f"NVTX thread {tid}", part, origin_ns, "text"))
    iterations = run.frame("iterations", ["start_ns", "end_ns", "iteration"])
    if len(iterations):
        named = iterations.assign(label="iteration " + iterations["iteration"].astype(str))
        timeline.tracks.append(_track("timed iterations", named, origin_ns, "label"))
    return _capped(timeline)


def request_timeline(requests: pd.DataFrame) -> Timeline:
    """Triton's request stages, one track per (model, stage), from the first request."""
    timeline = Timeline()
    if requests.empty:
        return timeline
    origin = int(requests["start_ns"].min())
    named = requests.assign(label="request " + requests["request_id"].astype(str))
    for (model, stage), part in _groups(named, ["model", "stage"]):
        timeline.tracks.append(_track(f"{model}: {stage}", part, origin, "label"))
    return _capped(timeline)


def _groups(frame: pd.DataFrame, keys: list[str]):
    if frame.empty:
        return []
    return frame.groupby(keys, observed=True, sort=True)


def _track(name: str, part: pd.DataFrame, origin_ns: int, label: str) -> Track:
    durations = part["end_ns"] - part["start_ns"]
    kept = part.loc[durations.nlargest(MAX_SPANS_PER_TRACK).index].sort_values("start_ns")
    spans = [(round((s - origin_ns) / 1e6, 6), round((e - s) / 1e6, 6), str(n))
             for s, e, n in zip(kept["start_ns"], kept["end_ns"], kept[label], strict=True)]
    return Track(name, spans, len(part))


def _capped(timeline: Timeline) -> Timeline:
    cut = [t for t in timeline.tracks if len(t.spans) < t.total]
    if cut:
        timeline.notes.append(f"{len(cut)} track(s) show their {MAX_SPANS_PER_TRACK} longest "
                              "spans only; the trace file holds every one")
    if len(timeline.tracks) > MAX_TRACKS:
        timeline.notes.append(f"showing the first {MAX_TRACKS} of {len(timeline.tracks)} tracks")
        timeline.tracks = timeline.tracks[:MAX_TRACKS]
    return timeline
