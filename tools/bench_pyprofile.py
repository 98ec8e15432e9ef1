"""Cost of gpuprof.profile() (issue 11): per captured inference call, and of the start-up
hook when GPUPROF_OUTPUT_PATH is unset. Goals: at most 10 µs per call (under 1% of a 1 ms
inference); under 1 ms for the hook.

1. wrapper alone: the real ONNX Runtime wrapper (ort_hook) around a do-nothing callable vs
   the bare callable, N calls each, interleaved rounds, best round per side: the per-call
   cost with no inference noise around it;
2. real model: InferenceSession.run on the PP-OCR classifier, profiling off vs on, interleaved
   blocks, median per-call latency of each side (ONNX Runtime's own jitter is far larger
   than the wrapper: this shows the order of magnitude only);
3. hook, variable unset: the .pth line exactly as site.py runs it (exec of the line),
   timed over many executions.

    python tools/bench_pyprofile.py [--calls 200000] [--runs 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wrapper_alone(calls: int, rounds: int) -> tuple[float, float]:
    from gpuprof.capture.pyprofile.ort_hook import OrtHook
    from gpuprof.capture.pyprofile.recorder import Recorder

    def bare(session, *args, **kwargs):
        return None

    best_bare = best_wrapped = float("inf")
    for _ in range(rounds):
        recorder = Recorder()  # fresh rows per round: the list grows as in a real run
        wrapped = OrtHook(recorder)._timed_run(bare)
        best_bare = min(best_bare, _per_call_ns(bare, calls))
        best_wrapped = min(best_wrapped, _per_call_ns(wrapped, calls))
    return best_bare, best_wrapped


def _per_call_ns(func, calls: int) -> float:
    session = object()
    start = time.perf_counter_ns()
    for _ in range(calls):
        func(session, None, None)
    return (time.perf_counter_ns() - start) / calls


def real_model(runs: int, rounds: int) -> tuple[float, float]:
    import numpy as np
    import onnxruntime as ort

    import gpuprof

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread: less jitter on a shared 2-core machine
    session = ort.InferenceSession(str(REPO / "models/ppocr_mobile_v2_cls.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: np.zeros((1, 3, 48, 192), np.float32)}
    for _ in range(20):
        session.run(None, feeds)
    off, on = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            off += _latencies(session, feeds, runs)
            with gpuprof.profile(output=Path(tmp, f"t{round_}.json"), memory_interval_s=0.1):
                on += _latencies(session, feeds, runs)
    return statistics.median(off), statistics.median(on)


def _latencies(session, feeds, runs: int) -> list[int]:
    out = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        out.append(time.perf_counter_ns() - start)
    return out


def hook_unset(executions: int) -> float:
    line = (REPO / "gpuprof/gpuprof_autostart.pth").read_text().strip()
    os.environ.pop("GPUPROF_OUTPUT_PATH", None)
    code = compile(line, "gpuprof_autostart.pth", "exec")
    start = time.perf_counter_ns()
    for _ in range(executions):
        exec(code, {})
    return (time.perf_counter_ns() - start) / executions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bare, wrapped = wrapper_alone(args.calls, args.rounds)
    print(f"wrapper alone: bare {bare:.0f} ns/call, wrapped {wrapped:.0f} ns/call, "
          f"overhead {(wrapped - bare) / 1000:.2f} µs/call")
    off, on = real_model(args.runs, args.rounds)
    print(f"real model (median of {args.runs * args.rounds} calls each): off {off / 1e3:.1f} µs, "
          f"on {on / 1e3:.1f} µs, difference {(on - off) / 1e3:+.1f} µs ({(on - off) / off:+.2%})")
    print(f"start-up hook, variable unset: {hook_unset(100_000) / 1000:.2f} µs per start-up")


if __name__ == "__main__":
    main()
