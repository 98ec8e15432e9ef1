"""What a load test does: the options of ``gpuprof perf`` as plain data, and their parsers.

The names and defaults follow perf_analyzer (5 s windows, stability within 10 % over the last
3 windows, at most 10 trials per level) so its users can carry their command lines over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import BadInputError

MODES = ("concurrency", "request_rate")
MEASUREMENT_MODES = ("time_windows", "count_windows")
DISTRIBUTIONS = ("constant", "poisson")
PROTOCOLS = ("http", "grpc")
TRACE_LEVELS = ("TIMESTAMPS", "TENSORS")  # what --trace can ask Triton to record
STABILITY_PERCENTILES = (50, 90, 95, 99)


@dataclass
class LoadSpec:
    model: str
    url: str = "127.0.0.1:8000"
    protocol: str = "http"
    model_version: str = ""
    mode: str = "concurrency"
    levels: list[float] = field(default_factory=lambda: [1])
    distribution: str = "constant"
    batch_size: int = 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_data: str = "random"              # random | zero | path to a JSON file
    measurement_mode: str = "time_windows"
    measurement_interval_ms: float = 5000
    measurement_request_count: int = 50
    stability_pct: float = 10.0
    percentile: float | None = None         # stabilise on this latency percentile, not the mean
    max_trials: int = 10
    warmup_ms: float = 500
    max_threads: int = 16                   # request-rate mode: requests in flight at most
    max_duration_s: float = 600             # the whole run stops by itself after this
    max_requests: int = 5_000_000           # ... or after this many requests
    request_timeout_s: float = 30
    trace: bool = False
    trace_rate: int | None = None           # trace 1 in N requests; None: chosen per level
    trace_level: tuple[str, ...] = ("TIMESTAMPS",)  # Triton's levels: TIMESTAMPS, TENSORS
    seed: int = 0

    @property
    def count_window_cap_s(self) -> float:
        """A count window still ends after this long, so a slow server cannot stall a level."""
        return max(10.0, 10 * self.measurement_interval_ms / 1000)

    def validate(self) -> LoadSpec:
        _one_of("protocol", self.protocol, PROTOCOLS)
        _one_of("mode", self.mode, MODES)
        _one_of("measurement mode", self.measurement_mode, MEASUREMENT_MODES)
        _one_of("request distribution", self.distribution, DISTRIBUTIONS)
        for level in self.trace_level:
            _one_of("trace level", level, TRACE_LEVELS)
        _positive("batch size", self.batch_size)
        _positive("measurement interval", self.measurement_interval_ms)
        _positive("measurement request count", self.measurement_request_count)
        _positive("max trials", self.max_trials)
        _positive("max threads", self.max_threads)
        _positive("max duration", self.max_duration_s)
        if not self.levels or any(level <= 0 for level in self.levels):
            raise BadInputError("every load level must be positive",
                                "Use e.g. --concurrency-range 1:4:1")
        if self.percentile is not None and self.percentile not in STABILITY_PERCENTILES:
            raise BadInputError(f"--percentile {self.percentile:g} is not offered",
                                f"Use one of {', '.join(f'{q:g}' for q in STABILITY_PERCENTILES)}")
        if self.stability_pct <= 0:
            raise BadInputError("--stability-percentage must be positive", "Use e.g. 10")
        return self


def parse_range(text: str, integer: bool = True) -> list[float]:
    """perf_analyzer's ``start[:end[:step]]`` (end and step default to start and 1)."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or any(p.strip() == "" for p in parts):
        raise BadInputError(f"bad range '{text}'", "Use start:end:step, e.g. 1:8:1")
    try:
        nums = [int(p) if integer else float(p) for p in parts]
    except ValueError as exc:
        kind = "whole numbers" if integer else "numbers"
        raise BadInputError(f"bad range '{text}': use {kind}", "e.g. 1:8:1") from exc
    start = nums[0]
    end = nums[1] if len(nums) > 1 else start
    step = nums[2] if len(nums) > 2 else 1
    if start <= 0 or step <= 0 or end < start:
        raise BadInputError(f"bad range '{text}'", "Need 0 < start <= end and step > 0")
    count = int((end - start) / step + 1e-9) + 1
    if count > 1000:
        raise BadInputError(f"range '{text}' has {count} levels", "Use at most 1000 levels")
    return [start + i * step for i in range(count)]


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``name:1,3,64,64`` -> ("name", (1, 3, 64, 64)). The name may itself contain colons."""
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d < 0 for d in shape):
        raise BadInputError(f"bad --shape '{text}'", "Use NAME:DIM,DIM,..., e.g. x:1,3,64,64")
    return name, shape


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInputError(f"unknown {what} '{value}'", f"Choose one of: {', '.join(allowed)}")


def _positive(what: str, value: float) -> None:
    if value <= 0:
        raise BadInputError(f"{what} must be positive (got {value})", "Pass a positive number")
