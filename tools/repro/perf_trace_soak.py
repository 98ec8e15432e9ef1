"""How often `gpuprof perf --trace` (automatic sampling) still crashes tritonserver 2.51.

The issue-9 `double` model answers ~6,000 HTTP requests a second here; each run below is a
four-level traced sweep (what `gpuprof perf --trace --concurrency-range 1:4` does) against
one server, printing each sweep's requests, errors and per-level sampling rates, and whether
the server is alive at the end. Measured on the 2-core dev machine (docs/BENCHMARKS.md):
1 crash in 12 sweeps over three servers. Run from the repository root:

    .venv/bin/python tools/repro/perf_trace_soak.py
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gpuprof.capture.loadgen import LoadSpec
from gpuprof.capture.triton_server import TraceConfig, TritonServer
from gpuprof.pipeline.sweep import run_sweep
from tests.test_loadgen_soak import _model_source, _repro  # noqa: E402


def main(runs: int = 4) -> None:
    root = Path(tempfile.mkdtemp())
    model = root / "repo" / "double"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(_repro().CONFIG)
    (model / "1" / "model.py").write_text(_model_source())
    (root / "trace").mkdir()
    trace = TraceConfig(root / "trace" / "trace.json", levels=("OFF",))
    srv = TritonServer(root / "repo", keep_log=True, trace=trace)
    srv.start()
    try:
        for run in range(runs):
            result = run_sweep(LoadSpec(model="double", url=srv.http_url, levels=[1, 2, 3, 4],
                                        measurement_interval_ms=400, max_trials=3,
                                        warmup_ms=100, max_duration_s=30, trace=True))
            table = result.requests_table()
            errors = table[~table["ok"]]
            print(run, len(table), "errors:", len(errors),
                  errors["error"].value_counts().to_dict(), "rates",
                  [level.trace_rate for level in result.levels], "partial", result.partial,
                  result.reason, flush=True)
    finally:
        print("alive" if srv.running() else f"CRASHED (log {srv.log_path})")
        srv.stop()


if __name__ == "__main__":
    main()
