"""How often `gpuprof perf --trace` (automatic sampling) still crashes or hangs tritonserver 2.51.

Each sweep is the command a user types, in a fresh process: `gpuprof perf --trace
--concurrency-range 1:4` against a server that stays up across sweeps (as in the README). A
sweep that fails, and the server's state afterwards, are told apart:

- ``crash``: the server process is gone (its log's last lines are printed);
- ``hang``: it is live (``/v2/health/live``) but its model answers no request within 10 s;
- ``error``: the sweep failed and the server still answers.

After a crash or a hang the server is replaced, so every sweep starts on a working server.

Models: ``double`` (the issue-9 python-backend model, ~6,000 HTTP requests/s here) or ``cls``
(the README's PP-OCR classifier served by `gpuprof triton serve`, ~900/s here), served with
tracing as the README starts it (``--trace-level TIMESTAMPS``, 1 in 1) or off (``--trace-off``).
Run from the checkout whose gpuprof you want to measure (it puts that checkout first on the
path), e.g. a baseline beside the working tree:

    .venv/bin/python tools/repro/perf_trace_soak.py --model cls --sweeps 20
    git worktree add /tmp/base HEAD~1 && (cd /tmp/base && \\
        /work/main/.venv/bin/python tools/repro/perf_trace_soak.py --model cls --sweeps 20)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gpuprof.capture.triton_server import TraceConfig, TritonServer, serve_onnx  # noqa: E402

HANG_TIMEOUT_S = 10
MODELS = {  # name, perf's --shape, one request's input (name, shape)
    "double": dict(name="double", shape="INPUT0:16", infer=("INPUT0", [1, 16])),
    "cls": dict(name="ppocr_mobile_v2_cls", shape="x:1,3,48,192", infer=("x", [1, 3, 48, 192])),
}


def start_server(model: str, root: Path, traced: bool) -> TritonServer:
    trace_dir = Path(tempfile.mkdtemp(dir=root))
    trace = TraceConfig(trace_dir / "trace.json", levels=("TIMESTAMPS",) if traced else ("OFF",))
    if model == "cls":
        return serve_onnx(ROOT / "models" / "ppocr_mobile_v2_cls.onnx", trace=trace,
                          keep_log=True)
    sys.path.insert(0, str(ROOT / "tools" / "repro"))
    from triton_http_trace_crash import write_repository

    server = TritonServer(write_repository(Path(tempfile.mkdtemp(dir=root))), keep_log=True,
                          trace=trace)
    server.start()
    return server


def answers(server: TritonServer, model: str) -> bool:
    """Whether the model answers one inference within HANG_TIMEOUT_S."""
    name, shape = MODELS[model]["infer"]
    count = int(np.prod(shape))
    body = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                   "data": [0.0] * count}]}).encode()
    url = f"http://{server.http_url}/v2/models/{MODELS[model]['name']}/infer"
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HANG_TIMEOUT_S) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def sweep(server: TritonServer, model: str, out: Path, extra: list[str]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", MODELS[model]["name"],
           "-u", server.http_url, "--shape", MODELS[model]["shape"], "--concurrency-range",
           "1:4:1", "--trace", "--measurement-interval", "1000", "--no-live",
           "-f", str(out / "perf.csv"), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return -1, "the sweep ran past 300 s"
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    return done.returncode, errors[-1] if errors else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cls")
    parser.add_argument("--sweeps", type=int, default=12)
    parser.add_argument("--trace-off", action="store_true",
                        help="start the server with tracing off (perf --trace switches it on)")
    parser.add_argument("perf_args", nargs="*", help="more `gpuprof perf` options (after --)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gpuprof-soak-"))
    tally: collections.Counter = collections.Counter()
    server = start_server(args.model, root, not args.trace_off)
    try:
        for number in range(1, args.sweeps + 1):
            started = time.monotonic()
            rc, error = sweep(server, args.model, root, args.perf_args)
            if rc == 0:
                verdict = "ok"
            elif not server.running():
                verdict = "crash"
            elif not answers(server, args.model):
                verdict = "hang"
            else:
                verdict = "error"
            tally[verdict] += 1
            load = os.getloadavg()[0]
            print(f"{time.strftime('%H:%M:%S')} sweep {number}: {verdict} rc={rc} "
                  f"{time.monotonic() - started:.0f} s load {load:.1f} {error}", flush=True)
            if verdict in ("crash", "hang"):
                print(server.log_tail(), flush=True)
                server.stop()
                server = start_server(args.model, root, not args.trace_off)
    finally:
        server.stop()
    print(f"{args.model}: {dict(tally)} in {args.sweeps} sweeps (gpuprof from {ROOT}, "
          f"files in {root})")


if __name__ == "__main__":
    main()
