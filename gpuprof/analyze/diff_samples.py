"""One run reduced to what `gpuprof diff` compares: per-call samples (ns) by category and name.

Categories, each a frame of ``name, value_ns`` with one row per call:
- ``layer``: a layer profiler's per-iteration layer times (TensorRT IProfiler, ONNX Runtime,
  trtexec's means) when the run has them, else the GPU time of each TensorRT NVTX layer range
  (the kernels it launched, by the NVTX projection);
- ``range``: for exports without TensorRT layers, each NVTX push/pop range's own GPU time
  (kernels attributed to it as the innermost range);
- ``kernel``: each GPU kernel's duration, by kernel name;
- ``stage``: H2D, compute and D2H per timed inference; Triton's server stages per request;
- ``latency``: end-to-end latency per inference or per Triton request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..model import Profile
from ..model.triton_stages import END_TO_END
from .layers import ENGINE_WRAPPER, TENSORRT_DOMAIN, is_tensorrt, kernel_ranges, layer_name
from .trtexec import layer_info

CATEGORIES = ("layer", "range", "kernel", "stage", "latency")
ITERATION_STAGES = {"h2d_ns": "H2D", "compute_ns": "compute", "d2h_ns": "D2H"}


@dataclass
class RunSamples:
    label: str
    samples: dict[str, pd.DataFrame] = field(default_factory=dict)   # category -> name, value_ns
    # per layer name: precision, tactic, formats where the run's engine information has them
    layer_info: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["layer"]))
    notes: list[str] = field(default_factory=list)
    # category -> name, count, total, mean, p50, p90, p99 given as statistics (load-test CSVs)
    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    # categories whose values are not per-call samples (one mean per name, or summaries)
    unsampled: set[str] = field(default_factory=set)


def run_samples(profile: Profile, label: str, formats: pd.DataFrame | None = None,
                summaries: dict[str, pd.DataFrame] | None = None) -> RunSamples:
    out = RunSamples(label=label, summaries=dict(summaries or {}), unsampled=set(summaries or {}))
    if summaries:
        out.notes.append(f"{label}: summary statistics only (no per-call samples, so no significance verdict)")
    _layers_or_ranges(profile, out)
    _add(out, "kernel", _kernels(profile))
    _stages_and_latency(profile, out)
    out.layer_info = layer_info(profile.engine_layers, formats)
    return out


def _add(out: RunSamples, category: str, frame: pd.DataFrame | None) -> None:
    if frame is not None and not frame.empty:
        out.samples[category] = frame.reset_index(drop=True)


def _frame(names, values) -> pd.DataFrame:
    return pd.DataFrame({"name": pd.Series(names, dtype=object).to_numpy(),
                         "value_ns": np.asarray(values, dtype=np.int64)})


def _layers_or_ranges(profile: Profile, out: RunSamples) -> None:
    timings = profile.layer_timings
    if not timings.empty:
        _add(out, "layer", _frame(timings["layer"].astype(object), timings["duration_ns"]))
        sources = ", ".join(sorted(map(str, timings["source"].dropna().unique())))
        if (timings["iteration"] == -1).all():
            out.unsampled.add("layer")
            out.notes.append(f"{out.label}: layer times are per-layer means ({sources}), no per-call samples")
        else:
            out.notes.append(f"{out.label}: layer times per iteration from {sources}")
        return
    if profile.num_rows("kernels") == 0 or profile.num_rows("nvtx_ranges") == 0:
        return
    if is_tensorrt(profile):
        _add(out, "layer", _range_instances(profile, TENSORRT_DOMAIN, skip_wrappers=True))
        out.notes.append(f"{out.label}: layer times are each TensorRT NVTX layer range's kernel GPU time")
    else:
        _add(out, "range", _range_instances(profile, None, skip_wrappers=False))
        out.notes.append(f"{out.label}: range times are each NVTX range's own kernel GPU time")


def _range_instances(profile: Profile, domain: str | None, skip_wrappers: bool) -> pd.DataFrame:
    """One sample per push/pop range instance: GPU time of the kernels projected onto it."""
    attributed = kernel_ranges(profile, domain)
    ranges = profile.frame("nvtx_ranges", ["range_kind", "domain", "text"])
    inside = attributed["range_row"].to_numpy() >= 0
    per_row = np.bincount(attributed["range_row"].to_numpy()[inside],
                          weights=attributed["duration_ns"].to_numpy()[inside], minlength=len(ranges))
    keep = (ranges["range_kind"] == "push_pop").to_numpy().copy()
    if domain is not None:
        keep &= (ranges["domain"] == domain).to_numpy()
    rows = np.flatnonzero(keep)
    names = pd.Series(ranges["text"].to_numpy()[rows], dtype=object).map(layer_name)
    frame = _frame(names, per_row[rows].round())
    if skip_wrappers:  # whole-inference ranges are not layers
        frame = frame[~frame["name"].str.match(ENGINE_WRAPPER)]
    return frame


def _kernels(profile: Profile) -> pd.DataFrame | None:
    if profile.num_rows("kernels") == 0:
        return None
    k = profile.frame("kernels", ["start_ns", "end_ns", "name"])
    return _frame(k["name"].astype(object), k["end_ns"].to_numpy() - k["start_ns"].to_numpy())


def _stages_and_latency(profile: Profile, out: RunSamples) -> None:
    iterations = profile.iterations
    stages, latency = [], []
    if not iterations.empty:
        for column, name in ITERATION_STAGES.items():
            values = iterations[column].dropna()
            values = values[values >= 0]
            stages.append(_frame([name] * len(values), values))
        latency.append(_frame(["latency"] * len(iterations), iterations["latency_ns"]))
    requests = profile.requests
    if not requests.empty:
        durations = requests["end_ns"] - requests["start_ns"]
        end_to_end = (requests["stage"] == END_TO_END).to_numpy()
        stages.append(_frame(requests["stage"].astype(object)[~end_to_end], durations[~end_to_end]))
        latency.append(_frame(["latency"] * int(end_to_end.sum()), durations[end_to_end]))
    _add(out, "stage", pd.concat(stages) if stages else None)
    _add(out, "latency", pd.concat(latency) if latency else None)
