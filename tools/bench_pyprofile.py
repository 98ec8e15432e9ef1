"""Cost of gpuprof.profile() (issue 11): per captured inference call, and of the start-up
hook when GPUPROF_OUTPUT_PATH is unset. Goals: at most 10 µs per call (under 1% of a 1 ms
inference); under 1 ms for the hook.

1. wrapper alone: the real ONNX Runtime wrapper (ort_hook) around a do-nothing callable vs
   the bare callable, N calls each, interleaved rounds, best round per side: the per-call
   cost with no inference noise around it;
2. real model: InferenceSession.run on the PP-OCR classifier, profiling off vs on, interleaved
   blocks, median per-call latency of each side (ONNX Runtime's own jitter is far larger
   than the wrapper: this shows the order of magnitude only);
3. hook, variable unset, in fresh processes: ``python -c pass`` started (tools/bench/fresh.py)
   from two bare virtual environments of this interpreter, one whose site-packages holds
   gpuprof_autostart.pth and one without, alternating in many rounds; the median of the
   paired differences is what the hook adds to an interpreter start, as users pay it;
4. hook, variable unset, in-process: the .pth line exactly as site.py runs it (exec of the
   line), timed over many executions (the line alone, without site.py reading the file).

    python tools/bench_pyprofile.py [--calls 200000] [--runs 400] [--rounds 5] [--starts 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK = REPO / "gpuprof/gpuprof_autostart.pth"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "bench"))

from fresh import run_fresh  # noqa: E402


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


def hook_in_process(executions: int) -> float:
    line = HOOK.read_text().strip()
    os.environ.pop("GPUPROF_OUTPUT_PATH", None)
    code = compile(line, HOOK.name, "exec")
    start = time.perf_counter_ns()
    for _ in range(executions):
        exec(code, {})
    return (time.perf_counter_ns() - start) / executions


def hook_fresh(starts: int) -> dict[str, tuple[float, float, float]]:
    """For wall time and for CPU time (user + system, which waiting for a busy core does not
    inflate): the median interpreter start without and with the hook (variable unset), and the
    median of the paired differences, in ns."""
    env = {name: value for name, value in os.environ.items() if name != "GPUPROF_OUTPUT_PATH"}
    with tempfile.TemporaryDirectory() as tmp:
        bare, hooked = _bare_venv(Path(tmp, "bare")), _bare_venv(Path(tmp, "hooked"), hook=True)
        _check_hook_is_read(hooked)
        runs: dict[Path, list] = {bare: [], hooked: []}
        for round_ in range(starts):
            # alternate which goes first, so a drift in load hits both sides alike
            for python in (bare, hooked) if round_ % 2 == 0 else (hooked, bare):
                runs[python].append(run_fresh([str(python), "-c", "pass"], env=env))
    out = {}
    for clock in ("seconds", "cpu_seconds"):
        without = [getattr(run, clock) * 1e9 for run in runs[bare]]
        with_hook = [getattr(run, clock) * 1e9 for run in runs[hooked]]
        paired = [h - b for b, h in zip(without, with_hook)]
        out[clock] = statistics.median(without), statistics.median(with_hook), statistics.median(paired)
    return out


def _bare_venv(folder: Path, hook: bool = False) -> Path:
    """A virtual environment of this interpreter with nothing installed (and the .pth file)."""
    venv.create(folder, with_pip=False)
    if hook:
        site = sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)})
        shutil.copy(HOOK, site)
    return folder / "bin" / "python"


def _check_hook_is_read(python: Path) -> None:
    """With the variable set and no gpuprof to import, site.py reports the hook's line: so
    the timed starts do read the file."""
    run = run_fresh([str(python), "-c", "pass"], env=dict(os.environ, GPUPROF_OUTPUT_PATH="x"), check=False)
    if HOOK.name not in run.stderr:
        raise SystemExit(f"{python} did not read {HOOK.name}: {run.stderr[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starts", type=int, default=300, help="interpreter starts per side")
    parser.add_argument("--hook-only", action="store_true", help="only the start-up hook (3 and 4)")
    args = parser.parse_args()
    if not args.hook_only:
        bare, wrapped = wrapper_alone(args.calls, args.rounds)
        print(f"wrapper alone: bare {bare:.0f} ns/call, wrapped {wrapped:.0f} ns/call, "
              f"overhead {(wrapped - bare) / 1000:.2f} µs/call")
        off, on = real_model(args.runs, args.rounds)
        print(f"real model (median of {args.runs * args.rounds} calls each): off {off / 1e3:.1f} µs, "
              f"on {on / 1e3:.1f} µs, difference {(on - off) / 1e3:+.1f} µs ({(on - off) / off:+.2%})")
    for clock, (without, with_hook, added) in hook_fresh(args.starts).items():
        print(f"start-up hook, variable unset, fresh processes ({args.starts} starts per side, "
              f"{'wall' if clock == 'seconds' else 'CPU'} time, medians): without {without / 1e6:.2f} ms, "
              f"with {with_hook / 1e6:.2f} ms, added {added / 1000:+.0f} µs per interpreter start "
              "(median of paired differences)")
    print(f"start-up hook, variable unset, the line exec'd in-process: "
          f"{hook_in_process(100_000) / 1000:.2f} µs")

if __name__ == "__main__":
    main()
