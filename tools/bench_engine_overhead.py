"""Benchmark (not a test): what gpuprof's own measurement costs on the ONNX Runtime backend.

1. Timed-pass overhead: gpuprof's timed loop (per-iteration clock reads, progress callback,
   RSS sampler running) vs a bare ``session.run`` loop timed only at its ends, on the same
   session in the same process, interleaved in rounds so machine noise hits both alike.
   On a shared, busy machine that comparison is noise-bound, so the harness's own cost is also
   measured exactly: both loops around a no-op ``run`` give gpuprof's added ns per iteration,
   which divided by a model's latency is the overhead.
2. RSS sampler cost: seconds per sample, and the CPU share at the default interval.
3. Total wall time of ``gpuprof engine MODEL`` (a subprocess, as a user runs it).

    .venv/bin/python tools/bench_engine_overhead.py [--model models/ppocrv4_det.onnx]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "bench"))

from fresh import run_fresh  # noqa: E402

from gpuprof.capture import onnx_inputs  # noqa: E402
from gpuprof.capture.ort import session as ort_session  # noqa: E402
from gpuprof.capture.ort.rss import DEFAULT_INTERVAL_S, QUIET_INTERVAL_S, RssSampler  # noqa: E402
from gpuprof.capture.ort.runner import OrtRunConfig, timed_loop  # noqa: E402


def bare_loop(session, feeds, n: int) -> float:
    """Mean ns per iteration of the simplest possible loop: one clock read at each end."""
    run = session.run
    t0 = time.perf_counter_ns()
    for _ in range(n):
        run(None, feeds)
    return (time.perf_counter_ns() - t0) / n


def gpuprof_loop(config, session, feeds, n: int, sampler: bool) -> tuple[float, float]:
    """(mean ns per iteration over the whole loop, mean of the per-iteration latencies)."""
    starts: list[int] = []
    ends: list[int] = []
    config.iterations = n
    progress = lambda phase, done, total: None  # noqa: E731 - the CLI's non-tty callback is as cheap
    t0 = time.perf_counter_ns()
    if sampler:
        with RssSampler() as rss:
            rss.set_phase("timed", config.rss_timed_interval_s)  # as the real run does
            timed_loop(config, session, feeds, starts, ends, progress)
    else:
        timed_loop(config, session, feeds, starts, ends, progress)
    wall = (time.perf_counter_ns() - t0) / n
    return wall, statistics.fmean(e - s for s, e in zip(starts, ends, strict=True))


def overhead(model: Path, shapes: str | None, rounds: int, per_round: int) -> float:
    config = OrtRunConfig(model=model, shapes=onnx_inputs.parse_shapes(shapes))
    resolved = onnx_inputs.resolve_shapes(onnx_inputs.read_inputs(onnx_inputs.load_onnx(model)),
                                          config.shapes)
    feeds = onnx_inputs.make_inputs(resolved)
    session = ort_session.create_session(model, ort_session.choose_providers())
    bare_loop(session, feeds, 5)  # warm-up
    ratios, ratios_lat, ratios_rss, bares = [], [], [], []
    for _ in range(rounds):
        bare = bare_loop(session, feeds, per_round)
        wall, lat = gpuprof_loop(config, session, feeds, per_round, sampler=True)
        wall_no_rss, _ = gpuprof_loop(config, session, feeds, per_round, sampler=False)
        bares.append(bare)
        ratios.append(wall / bare - 1)
        ratios_lat.append(lat / bare - 1)
        ratios_rss.append(wall / wall_no_rss - 1)
    print(f"model {model.name} {onnx_inputs.describe_inputs(onnx_inputs.resolved_facts(resolved))}; {rounds} rounds x "
          f"{per_round} iterations, interleaved")
    print(f"  bare session.run loop: median {statistics.median(bares) / 1e6:.3f} ms/iteration")
    print(f"  gpuprof timed loop (wall) vs bare: median {statistics.median(ratios):+.2%} "
          f"(rounds: {', '.join(f'{r:+.1%}' for r in ratios)})")
    print(f"  gpuprof per-iteration latency mean vs bare: median {statistics.median(ratios_lat):+.2%}")
    print(f"  with vs without RSS sampler (wall): median {statistics.median(ratios_rss):+.2%}")
    return min(bares)


class _NoOpSession:
    @staticmethod
    def run(outputs, feeds):
        return None


def harness_cost(iterations: int = 200_000) -> float:
    """gpuprof's added ns per iteration: its loop minus a bare loop, both around a no-op run."""
    config = OrtRunConfig(model=Path("noop.onnx"))
    session = _NoOpSession()
    bare = min(bare_loop(session, {}, iterations) for _ in range(5))
    ours = min(gpuprof_loop(config, session, {}, iterations, sampler=False)[0] for _ in range(5))
    with_rss = min(gpuprof_loop(config, session, {}, iterations, sampler=True)[0] for _ in range(5))
    print(f"harness cost (no-op run, best of 5 x {iterations:,}): bare loop {bare:.0f} ns/iteration, "
          f"gpuprof loop {ours:.0f} ns, with RSS sampler {with_rss:.0f} ns "
          f"-> gpuprof adds {ours - bare:.0f} ns (+{with_rss - ours:.0f} ns sampler) per iteration")
    return with_rss - bare


def sampler_cost(samples: int = 2000) -> None:
    sampler = RssSampler()
    t0 = time.perf_counter_ns()
    for _ in range(samples):
        sampler.sample()  # the same reading the thread takes per tick
    per = (time.perf_counter_ns() - t0) / samples
    print(f"RSS sample: {per / 1e3:.1f} us each; at the default {DEFAULT_INTERVAL_S * 1e3:g} ms "
          f"interval that is {per / (DEFAULT_INTERVAL_S * 1e9):.3%} of one core "
          f"({QUIET_INTERVAL_S * 1e3:g} ms during the timed pass)")


def engine_wall(model: Path) -> None:
    with tempfile.TemporaryDirectory() as out:
        run = run_fresh([sys.executable, "-m", "gpuprof", "engine", str(model), "-o", out], cwd=REPO,
                        check=False)
    print(f"gpuprof engine {model.name} (defaults): {run.seconds:.1f} s wall, exit {run.returncode}, "
          f"peak RSS {run.peak_bytes / 2**20:.0f} MiB (this process's {run.floor_bytes / 2**20:.0f} MiB "
          "is its floor)")
    imports = run_fresh([sys.executable, "-c", "import gpuprof.cli.engine, onnxruntime, pandas, onnx"], cwd=REPO)
    print(f"  of which Python start-up and imports: {imports.seconds:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "ppocrv4_det.onnx")
    parser.add_argument("--shapes", default=None)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--small-model", type=Path, default=REPO / "models" / "ppocr_mobile_v2_cls.onnx",
                        help="also measure a ~1 ms model at 1x3x48x192, where overhead shows most")
    args = parser.parse_args()
    added = harness_cost()
    for model, shapes, per_round in ((args.model, args.shapes, args.per_round),
                                     (args.small_model, "1x3x48x192", 200)):
        if model.exists():
            bare = overhead(model, shapes, args.rounds, per_round)
            print(f"  harness cost / bare latency: {added / bare:.4%}")
    sampler_cost()
    engine_wall(args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
